"""Base for components that run a model over a batch of docs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from spacy.tokens import Doc


def add_error(doc: Doc, message: str) -> None:
    """Record a failure on a doc; the pipeline turns it into that report's error."""
    doc._.errors = [*(doc._.errors or []), message]


class BatchedComponent:
    """Runs ``process_batch`` on batches of docs.

    spaCy hands failures inside ``pipe()`` to no error handler, so a batch that raises is
    retried doc by doc, and a doc that still fails records its error instead of sinking the
    others.
    """

    name: str

    def __call__(self, doc: Doc) -> Doc:
        return next(iter(self.pipe([doc])))

    def pipe(self, docs: Iterable[Doc], batch_size: int = 64) -> Iterator[Doc]:
        batch: list[Doc] = []
        for doc in docs:
            batch.append(doc)
            if len(batch) >= batch_size:
                yield from self._process_safely(batch)
                batch = []
        if batch:
            yield from self._process_safely(batch)

    def _process_safely(self, docs: list[Doc]) -> list[Doc]:
        try:
            return self.process_batch(docs)
        except Exception as exc:
            if len(docs) > 1:
                return [d for doc in docs for d in self._process_safely([doc])]
            add_error(docs[0], f"{self.name}: {type(exc).__name__}: {exc}")
            return docs

    def process_batch(self, docs: list[Doc]) -> list[Doc]:
        raise NotImplementedError
