import spacy
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.tokenizer import LongRunTokenizer


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab.,- \n\t(")), max_size=150).map(
    lambda s: s.replace("a", "a" * 40)))
def test_text_is_preserved(text):
    tokenizer = LongRunTokenizer(spacy.blank("en").tokenizer, chunk=16)
    assert tokenizer(text).text == text


def test_long_runs_are_cut_and_short_text_untouched():
    base = spacy.blank("en").tokenizer
    tokenizer = LongRunTokenizer(base, chunk=64)
    text = "No effusion. " + "x" * 1000 + " Small pneumothorax."
    doc = tokenizer(text)
    assert doc.text == text
    assert max(len(t.text) for t in doc) == 64
    assert [t.text for t in doc][-3:] == ["Small", "pneumothorax", "."]
    short = "No effusion, small pneumothorax."
    assert [t.text for t in tokenizer(short)] == [t.text for t in base(short)]
