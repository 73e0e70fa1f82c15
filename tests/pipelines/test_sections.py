import pytest

from pipelines.sections import Sectionizer, SectionRule, load_section_rules


@pytest.fixture(scope="module")
def sectionizer():
    import spacy

    return Sectionizer(spacy.blank("en"), "sections")


def names(sectionizer, text):
    return [s.name for s in sectionizer.find(text)]


def test_headers_in_many_spellings(sectionizer):
    text = ("EXAMINATION: CT chest\nReason for exam: cough\nTechnique: axial\nComparisons: none\n"
            "Findings: clear\nIMPRESSION:\nNormal.\nRecommendations: none\nADDENDUM: called\n")
    assert names(sectionizer, text) == ["exam", "indication", "technique", "comparison",
                                        "findings", "impression", "recommendation", "addendum"]


def test_all_caps_header_alone_on_a_line(sectionizer):
    text = "FINDINGS\nThe lungs are clear.\n\nIMPRESSION\nNormal chest."
    sections = sectionizer.find(text)
    assert [s.name for s in sections] == ["findings", "impression"]
    assert text[sections[1].body_start:].startswith("Normal chest.")
    assert sections[0].end == sections[1].start


def test_prose_that_starts_like_a_header_is_not_one(sectionizer):
    # "History of ..." in mixed case without a colon is a sentence, not a header.
    assert names(sectionizer, "History of asthma.\nImpression: clear lungs.") == ["impression"]


def test_indication_findings_are_flagged(analyze):
    analysis = analyze("INDICATION: Pneumothorax?\nFINDINGS: No pneumothorax.")
    flagged = [f.in_indication for f in analysis.findings]
    assert flagged == [True, False]


def test_rule_round_trip_and_validation():
    rules = load_section_rules()
    assert all(SectionRule.from_dict(r.to_dict()) == r for r in rules)
    with pytest.raises(ValueError, match="literals"):
        SectionRule.from_dict({"name": "findings"})
