"""Assertion classifier over (sentence, marked finding), combined with ConText.

Combination policy: ConText's verdict stands unless the classifier disagrees with probability at
least ``override_threshold``; then the classifier's verdict is used. ``policy="model"`` uses the
classifier alone and ``policy="context"`` ConText alone (for comparison).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from spacy.language import Language
from spacy.tokens import Doc, Span

from pipelines.components import BatchedComponent
from pipelines.training import ASSERTION_LABELS, assertion_input

POLICIES = ("combined", "model", "context")


class AssertionClassifier(BatchedComponent):
    """``radnlp_assertion_model``: runs after ConText and may override its verdict."""

    def __init__(self, nlp: Language, name: str, *, model: str = "default",
                 policy: str = "combined", override_threshold: float = 0.9,
                 batch_tokens: int = 8192) -> None:
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
        self._loaded: tuple[Any, Any] | None = None

    def _load(self) -> tuple[Any, Any]:
        if self._loaded is None:
            from pipelines.batching import default_encoder_path
            from pipelines.models import model_dir
            from pipelines.training import load_overlay_model

            model, tokenizer, _ = load_overlay_model(model_dir(self.model) / "assertion",
                                                     default_encoder_path())
            self._loaded = (model, tokenizer)
        return self._loaded

    def process_batch(self, docs: list[Doc]) -> list[Doc]:
        if self.policy == "context":
            return docs
        findings: list[Span] = [ent for doc in docs for ent in doc.ents]
        inputs = [assertion_input(ent) for ent in findings]
        for ent, probs in zip(findings, self.classify(inputs), strict=True):
            scores = dict(zip(ASSERTION_LABELS, (float(p) for p in probs), strict=True))
            ent._.assertion_scores = scores
            verdict = ASSERTION_LABELS[int(np.argmax(probs))]
            context_verdict = ent._.assertion
            if self.policy == "model" or (verdict != context_verdict
                                          and scores[verdict] >= self.override_threshold):
                ent._.assertion_override = verdict
        return docs

    def classify(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities for each input, batched by a token budget in length order."""
        if not texts:
            return np.zeros((0, len(ASSERTION_LABELS)), dtype=np.float32)
        model, tokenizer = self._load()
        encoded = tokenizer(list(texts), truncation=True, max_length=128)["input_ids"]
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
        out = np.zeros((len(texts), len(ASSERTION_LABELS)), dtype=np.float32)
        start = 0
        while start < len(order):
            end = start + 1
            while end < len(order) and (end - start + 1) * len(encoded[order[end]]) <= \
                    self.batch_tokens:
                end += 1
            rows = order[start:end]
            width = max(len(encoded[i]) for i in rows)
            ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, i in enumerate(rows):
                ids[r, :len(encoded[i])] = torch.tensor(encoded[i])
                mask[r, :len(encoded[i])] = 1
            with torch.inference_mode():
                logits = model(input_ids=ids, attention_mask=mask).logits
            out[rows] = torch.softmax(logits.float(), dim=-1).numpy()
            start = end
        return out
