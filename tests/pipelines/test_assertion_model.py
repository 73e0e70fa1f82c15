"""The assertion classifier through the batch engine: same scores as the model run directly."""

import numpy as np
import pytest
import torch

from pipelines.assertion_model import AssertionClassifier
from pipelines.batching import default_encoder_path
from pipelines.models import model_dir
from pipelines.training import load_overlay_model

TEXTS = ["No [E] pneumothorax [/E] is seen.", "Small left [E] pleural effusion [/E].",
         "Right basilar opacity may represent [E] atelectasis [/E] or scarring."]


@pytest.mark.slow
def test_engine_scores_match_the_sequence_classifier(rules_pipeline):
    classifier = AssertionClassifier(rules_pipeline.nlp, "assertion", device="cpu",
                                     precision="fp32")
    through_engine = classifier.classify(TEXTS)
    model, tokenizer, meta = load_overlay_model(model_dir("default") / "assertion",
                                                default_encoder_path())
    assert classifier.labels == tuple(meta["labels"])
    with torch.inference_mode():
        for text, row in zip(TEXTS, through_engine, strict=True):
            encoded = tokenizer(text, return_tensors="pt", truncation=True, max_length=128)
            direct = torch.softmax(model(**encoded).logits[0], dim=-1).numpy()
            np.testing.assert_allclose(row, direct, atol=1e-4)
    assert classifier.classify([]).shape == (0, len(classifier.labels))


def test_bad_options_fail_early(rules_pipeline):
    with pytest.raises(ValueError, match="policy"):
        AssertionClassifier(rules_pipeline.nlp, "assertion", policy="vote")
    with pytest.raises(ValueError, match="override_threshold"):
        AssertionClassifier(rules_pipeline.nlp, "assertion", override_threshold=1.5)
