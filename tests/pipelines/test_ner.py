"""Transformer NER: BIO decoding and the merge policy with the lexicon's findings."""

import numpy as np
import pytest

from pipelines.ner import PredictedSpan, TransformerNER, decode_bio
from pipelines.training import BIO_TAGS


def logits_for(tags):
    out = np.full((len(tags), len(BIO_TAGS)), -5.0, dtype=np.float32)
    for row, tag in enumerate(tags):
        out[row, BIO_TAGS.index(tag)] = 5.0
    return out


def test_decode_bio_joins_b_and_i_and_opens_on_stray_i():
    offsets = np.array([[0, 2], [3, 8], [9, 14], [15, 17], [18, 24], [25, 29]])
    tags = ["O", "B-FINDING", "I-FINDING", "O", "I-ANATOMY", "B-FINDING"]
    spans = decode_bio(offsets, logits_for(tags), BIO_TAGS)
    assert [(s.start_char, s.end_char, s.label) for s in spans] == [
        (3, 14, "FINDING"), (18, 24, "ANATOMY"), (25, 29, "FINDING")]
    assert all(0.99 < s.score <= 1.0 for s in spans)


def test_decode_bio_reads_the_models_own_label_set():
    offsets = np.array([[0, 2], [3, 8], [9, 14]])
    own_tags = ("O", "B-FINDING", "I-FINDING")  # a model version trained on findings alone
    logits = np.full((3, 3), -5.0, dtype=np.float32)
    for row, column in enumerate((0, 1, 2)):
        logits[row, column] = 5.0
    spans = decode_bio(offsets, logits, own_tags)
    assert [(s.start_char, s.end_char, s.label) for s in spans] == [(3, 14, "FINDING")]
    with pytest.raises(ValueError, match="label set"):
        decode_bio(offsets, logits, BIO_TAGS)


def test_merge_keeps_lexicon_hits_and_adds_what_the_lexicon_lacks(rules_pipeline):
    nlp = rules_pipeline.nlp
    text = "Small pneumothorax. Tiny focus of zebra sign in the left apex."
    doc = nlp.make_doc(text)
    for _name, component in nlp.pipeline[:3]:  # sections, sentences, lexicon targets
        doc = component(doc)
    ner = TransformerNER(nlp, "ner", min_score=0.5)
    zebra = text.index("zebra sign")
    pneumo = text.index("pneumothorax")
    starts = np.array([pneumo, zebra, zebra + 6])
    probs = np.array([0.9, 0.8, 0.7])
    ner.merge(doc, [PredictedSpan(pneumo, pneumo + 12, "FINDING", 0.9),
                    PredictedSpan(zebra, zebra + 10, "FINDING", 0.75),
                    PredictedSpan(0, 5, "FINDING", 0.2)], (starts, probs))
    by_text = {e.text: e for e in doc.ents}
    assert by_text["pneumothorax"]._.sources == ["rules", "transformer"]
    assert by_text["pneumothorax"]._.score == pytest.approx(0.9)
    assert by_text["zebra sign"]._.sources == ["transformer"]
    assert by_text["zebra sign"]._.score == pytest.approx(0.75)
    assert "Small" not in by_text  # below min_score


def test_min_score_is_checked(rules_pipeline):
    with pytest.raises(ValueError, match="min_score"):
        TransformerNER(rules_pipeline.nlp, "ner", min_score=1.5)
