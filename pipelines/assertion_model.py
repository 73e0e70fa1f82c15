"""Assertion classifier over (sentence, marked finding), combined with ConText.

Combination policy: ConText's verdict stands unless the classifier disagrees with probability at
least ``override_threshold``; then the classifier's verdict is used. ``policy="model"`` uses the
classifier alone and ``policy="context"`` ConText alone (for comparison).

The classifier runs through the batch engine (``pipelines/batching.py``), so its device,
precision and token budget are the engine's settings: the encoder is the engine's model and the
classification head (pooler + classifier of the sequence model) is the engine's head, which
writes the sentence's class scores at every token position; the first position is read.
The label order is the one saved with the model version.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from spacy.language import Language
from spacy.tokens import Doc, Span

from pipelines.components import BatchedComponent
from pipelines.training import assertion_input

# The classifier was trained on inputs cut at 128 tokens; longer ones are read from their
# first window.
MAX_INPUT_TOKENS = 128
INPUT_STRIDE = 32


class SentenceHead(torch.nn.Module):
    """A sequence classifier's head as a token-level head: the sentence's class scores (from the
    pooled first token) at every position, so the batch engine can run it like a token head."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        base = model.base_model
        pooler = getattr(base, "pooler", None)
        classifier = getattr(model, "classifier", None)
        if pooler is None or classifier is None:
            raise ValueError(f"{type(model).__name__}: expected a BERT-style sequence "
                             f"classifier with a pooler and a classifier")
        self.pooler = pooler
        self.classifier = classifier

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.classifier(self.pooler(hidden))
        return logits.unsqueeze(1).expand(-1, hidden.shape[1], -1)

POLICIES = ("combined", "model", "context")


class AssertionClassifier(BatchedComponent):
    """``radnlp_assertion_model``: runs after ConText and may override its verdict."""

    def __init__(self, nlp: Language, name: str, *, model: str = "default",
                 policy: str = "combined", override_threshold: float = 0.9,
                 batch_tokens: int = 8192, device: str = "auto",
                 precision: str = "auto") -> None:
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        if not 0.0 <= override_threshold <= 1.0:
            raise ValueError(f"override_threshold must be within [0, 1], got "
                             f"{override_threshold}")
        self.name = name
        self.model = model
        self.policy = policy
        self.override_threshold = override_threshold
        self.batch_tokens = batch_tokens
        self.engine_options = {"max_batch_tokens": batch_tokens, "device": device,
                               "precision": precision, "max_length": MAX_INPUT_TOKENS,
                               "stride": INPUT_STRIDE}
        self._engine: Any = None
        self.labels: tuple[str, ...] = ()

    @property
    def engine(self) -> Any:
        """The batch engine over the classifier, loaded on first use."""
        if self._engine is None:
            from pipelines.batching import BatchEngine, BatchEngineConfig, default_encoder_path
            from pipelines.models import model_dir
            from pipelines.training import load_overlay_model

            model, tokenizer, meta = load_overlay_model(model_dir(self.model) / "assertion",
                                                        default_encoder_path())
            self.labels = tuple(meta["labels"])
            self._engine = BatchEngine(
                model.base_model, tokenizer,  # type: ignore[arg-type]
                BatchEngineConfig(**self.engine_options),  # type: ignore[arg-type]
                head=SentenceHead(model))
        return self._engine

    def process_batch(self, docs: list[Doc]) -> list[Doc]:
        if self.policy == "context":
            return docs
        findings: list[Span] = [ent for doc in docs for ent in doc.ents]
        inputs = [assertion_input(ent) for ent in findings]
        for ent, probs in zip(findings, self.classify(inputs), strict=True):
            scores = dict(zip(self.labels, (float(p) for p in probs), strict=True))
            ent._.assertion_scores = scores
            verdict = self.labels[int(np.argmax(probs))]
            context_verdict = ent._.assertion
            if self.policy == "model" or (verdict != context_verdict
                                          and scores[verdict] >= self.override_threshold):
                ent._.assertion_override = verdict
        return docs

    def classify(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities for each input (columns in the model's label order)."""
        from pipelines.batching import TextError

        engine = self.engine
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        for row, result in enumerate(engine.run(list(texts)) if texts else ()):
            if isinstance(result, TextError) or not len(result.vectors):
                out[row] = 1.0 / len(self.labels)  # no verdict: ConText's stands
                continue
            logits = torch.from_numpy(result.vectors[0])
            out[row] = torch.softmax(logits, dim=-1).numpy()
        return out
