import pytest


@pytest.fixture(scope="module")
def sentences(rules_pipeline):
    return lambda text: [s.text.strip() for s in rules_pipeline.nlp(text).sents if s.text.strip()]


def test_numbered_list_items_are_sentences(sentences):
    text = "IMPRESSION: 1. No focal pneumonia. 2. Mild wedging of T7. 3. Stable nodule."
    assert sentences(text)[1:] == ["1. No focal pneumonia.", "2. Mild wedging of T7.",
                                   "3. Stable nodule."]


def test_line_breaks_end_unpunctuated_lines_but_not_wrapped_text(sentences):
    text = ("FINDINGS:\nNo pneumothorax\nHeart size normal\n"
            "There is a small effusion in the\nleft costophrenic angle.")
    assert sentences(text) == ["FINDINGS:", "No pneumothorax", "Heart size normal",
                               "There is a small effusion in the\nleft costophrenic angle."]


def test_decimals_abbreviations_and_all_caps(sentences):
    text = "A 1.2 cm NODULE IS SEEN, E.G. IN THE RUL. Dr. Smith was called. NO EFFUSION."
    assert sentences(text) == ["A 1.2 cm NODULE IS SEEN, E.G. IN THE RUL.",
                               "Dr. Smith was called.", "NO EFFUSION."]
