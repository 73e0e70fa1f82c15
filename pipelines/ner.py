"""Transformer token classification, merged with the lexicon matches.

Merge policy: a lexicon finding is kept as the rules found it (rules win on exact lexicon hits);
a transformer FINDING span that overlaps it adds "transformer" to its sources; a transformer span
that overlaps no lexicon finding and no lexicon anatomy, modality or body-region mention is
added as a new finding (the transformer adds what the lexicon lacks), with a concept from the
fuzzy normalizer when one clears its threshold. Every
finding's ``score`` is the transformer's mean probability that its tokens belong to a finding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from pipelines._extensions import ANATOMY_GROUP, BODY_REGION_GROUP, MODALITY_GROUP
from pipelines.components import BatchedComponent, add_error
from pipelines.spans import overlapping
from pipelines.target_matcher import FINDING


@dataclass(frozen=True)
class PredictedSpan:
    start_char: int
    end_char: int
    label: str
    score: float


def decode_bio(offsets: np.ndarray, logits: np.ndarray,
               tags: Sequence[str]) -> list[PredictedSpan]:
    """Character spans from per-token BIO logits (an I- without its B- opens a span); ``tags``
    names the logits' columns: the label set saved with the model version."""
    if logits.shape[-1] != len(tags):
        raise ValueError(f"the model gives {logits.shape[-1]} scores per token but its label "
                         f"set has {len(tags)} tags")
    probs = _softmax(logits)
    best = probs.argmax(axis=1)
    spans: list[PredictedSpan] = []
    current: tuple[str, int, int, list[float]] | None = None
    for (start, end), tag_id, row in zip(offsets, best, probs, strict=True):
        tag = tags[int(tag_id)]
        prefix, _, label = tag.partition("-")
        continues = (current is not None and prefix == "I" and label == current[0])
        if current is not None and not continues:
            spans.append(PredictedSpan(current[1], current[2], current[0],
                                       float(np.mean(current[3]))))
            current = None
        if prefix == "O":
            continue
        if continues and current is not None:
            current = (label, current[1], int(end), [*current[3], float(row[tag_id])])
        else:
            current = (label, int(start), int(end), [float(row[tag_id])])
    if current is not None:
        spans.append(PredictedSpan(current[1], current[2], current[0], float(np.mean(current[3]))))
    return spans


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return np.asarray(exp / exp.sum(axis=1, keepdims=True))


class TransformerNER(BatchedComponent):
    """``radnlp_transformer_ner``: adds transformer findings to the lexicon's, per the policy."""

    def __init__(self, nlp: Language, name: str, *, model: str = "default",
                 min_score: float = 0.8, max_batch_tokens: int = 2048, device: str = "auto",
                 precision: str = "auto") -> None:
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be within [0, 1], got {min_score}")
        self.name = name
        self.model = model
        self.min_score = min_score
        self.engine_options = {"max_batch_tokens": max_batch_tokens, "device": device,
                               "precision": precision}
        self._engine: Any = None
        self.tags: tuple[str, ...] = ()

    @property
    def engine(self) -> Any:
        """The batch engine, loaded on first use (never at import or construction)."""
        if self._engine is None:
            from pipelines.batching import BatchEngine, BatchEngineConfig, default_encoder_path
            from pipelines.models import model_dir
            from pipelines.training import load_overlay_model

            folder = model_dir(self.model) / "ner"
            model, tokenizer, meta = load_overlay_model(folder, default_encoder_path())
            self.tags = tuple(meta["labels"])
            self._engine = BatchEngine(model, tokenizer,
                                       BatchEngineConfig(**self.engine_options))  # type: ignore[arg-type]
        return self._engine

    def process_batch(self, docs: list[Doc]) -> list[Doc]:
        from pipelines.batching import TextError

        results = self.engine.run([doc.text for doc in docs])
        for doc, result in zip(docs, results, strict=True):
            if isinstance(result, TextError):
                add_error(doc, f"{self.name}: {result.message}")
                continue
            self.merge(doc, decode_bio(result.offsets, result.vectors, self.tags),
                       _finding_probability(result.offsets, result.vectors, self.tags))
        return docs

    def merge(self, doc: Doc, predicted: list[PredictedSpan],
              finding_prob: tuple[np.ndarray, np.ndarray]) -> None:
        """Apply the merge policy to one doc."""
        from terminology import normalize

        starts, probs = finding_prob
        for ent in doc.ents:
            ent._.sources = ["rules"]
            ent._.score = _mean_probability(starts, probs, ent.start_char, ent.end_char)
        mentions = sorted((s for group in (ANATOMY_GROUP, MODALITY_GROUP, BODY_REGION_GROUP)
                           for s in doc.spans.get(group, [])), key=lambda s: s.start)
        mention_starts = [s.start for s in mentions]
        ents = list(doc.ents)
        ent_starts = [e.start for e in ents]
        longest = max((len(s) for s in [*ents, *mentions]), default=0)
        new_spans = []
        for item in predicted:
            if item.label != FINDING or item.score < self.min_score:
                continue
            span = doc.char_span(item.start_char, item.end_char, alignment_mode="expand")
            if span is None:
                continue
            lexicon_findings = overlapping(ents, ent_starts, span.start, span.end, longest)
            for ent in lexicon_findings:
                if "transformer" not in ent._.sources:
                    ent._.sources = [*ent._.sources, "transformer"]
            if lexicon_findings or overlapping(mentions, mention_starts, span.start, span.end,
                                               longest):
                continue
            added = Span(doc, span.start, span.end, label=FINDING)
            match = normalize(added.text, kind="finding")
            added._.concept = match.concept if match is not None else None
            added._.sources = ["transformer"]
            added._.score = item.score
            new_spans.append(added)
        if new_spans:
            doc.ents = filter_spans([*doc.ents, *new_spans])


def _finding_probability(offsets: np.ndarray, logits: np.ndarray,
                         tags: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(token start offsets, probability that each token is part of a finding)."""
    finding_columns = [i for i, tag in enumerate(tags) if tag.endswith(f"-{FINDING}")]
    probs = _softmax(logits)[:, finding_columns].sum(axis=1)
    return offsets[:, 0], probs


def _mean_probability(starts: np.ndarray, probs: np.ndarray, start: int, end: int) -> float:
    inside = (starts >= start) & (starts < end)
    return float(probs[inside].mean()) if inside.any() else 0.0

