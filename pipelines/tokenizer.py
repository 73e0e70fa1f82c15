"""Tokenizer guard: spaCy's tokenizer is quadratic on very long whitespace-free runs."""

from __future__ import annotations

import re
from collections.abc import Callable

from spacy.tokens import Doc

LONG_RUN = re.compile(r"\S{256,}")


class LongRunTokenizer:
    """Wraps a tokenizer; cuts whitespace-free runs of 256+ characters into fixed-size tokens.

    Such runs (base64 blobs, line art, binary noise) hold no findings; cutting them keeps
    tokenization linear. The text of the ``Doc`` is unchanged.
    """

    def __init__(self, tokenizer: Callable[[str], Doc], *, chunk: int = 64) -> None:
        self.tokenizer = tokenizer
        self.chunk = chunk

    def __call__(self, text: str) -> Doc:
        if not LONG_RUN.search(text):
            return self.tokenizer(text)
        words: list[str] = []
        spaces: list[bool] = []
        position = 0
        for match in LONG_RUN.finditer(text):
            self._extend(words, spaces, text[position:match.start()])
            run = match.group()
            for offset in range(0, len(run), self.chunk):
                words.append(run[offset:offset + self.chunk])
                spaces.append(False)
            position = match.end()
        self._extend(words, spaces, text[position:])
        doc = Doc(self.tokenizer.vocab, words=words, spaces=spaces)  # type: ignore[attr-defined]
        if doc.text != text:
            raise ValueError("tokenizer guard changed the text")  # a bug, never expected
        return doc

    def _extend(self, words: list[str], spaces: list[bool], segment: str) -> None:
        if not segment:
            return
        if words and spaces[-1] is False and segment[0] == " ":
            # A single space after a cut run belongs to the run's last token.
            spaces[-1] = True
            segment = segment[1:]
            if not segment:
                return
        for token in self.tokenizer(segment):
            words.append(token.text)
            spaces.append(bool(token.whitespace_))
