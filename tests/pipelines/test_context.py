import pytest

from pipelines.context import ContextRule, load_context_rules


@pytest.mark.parametrize(
    ("text", "target", "expected"),
    [
        ("No pneumothorax, effusion, or consolidation.", "consolidation", "absent"),
        ("No pneumothorax, effusion, or consolidation.", "effusion", "absent"),
        ("There is no evidence of pneumothorax.", "pneumothorax", "absent"),
        ("Pneumothorax is not seen.", "pneumothorax", "absent"),
        ("No effusion, but there is a small left pneumothorax.", "pneumothorax", "present"),
        ("No effusion; small right pneumothorax.", "pneumothorax", "present"),
        ("No change in the right lower lobe consolidation.", "consolidation", "present"),
        ("No significant change in the pleural effusion.", "pleural effusion", "present"),
        ("Possible small left pleural effusion.", "pleural effusion", "possible"),
        ("Pneumothorax cannot be excluded.", "pneumothorax", "possible"),
        ("Findings suspicious for pneumonia.", "pneumonia", "possible"),
        ("Atelectasis versus pneumonia at the left base.", "pneumonia", "possible"),
        ("The previously seen pneumothorax has resolved.", "pneumothorax", "absent"),
        ("Interval resolution of the pleural effusion.", "pleural effusion", "absent"),
        ("Small pneumothorax.", "pneumothorax", "present"),
    ],
)
def test_assertions(analyze, finding, text, target, expected):
    assert finding(analyze(text), target).assertion == expected


def test_negation_does_not_leak_into_the_next_sentence(analyze, finding):
    analysis = analyze("No pneumothorax. Large pleural effusion.")
    assert finding(analysis, "pleural effusion").assertion == "present"


def test_historical_and_hypothetical(analyze, finding):
    analysis = analyze("HISTORY: History of pneumonia. Rule out pneumothorax.\n"
                       "FINDINGS: If symptoms persist, consider pleural effusion.")
    assert finding(analysis, "pneumonia").historical
    assert finding(analysis, "pneumothorax").hypothetical
    assert not finding(analysis, "pneumonia").hypothetical


def test_resolved_sets_change(analyze, finding):
    analysis = analyze("Previously seen right middle lobe atelectasis has resolved.")
    atelectasis = finding(analysis, "atelectasis")
    assert (atelectasis.assertion, atelectasis.change) == ("absent", "resolved")


def test_rules_round_trip_and_reject_bad_rules():
    rules = load_context_rules()
    assert len(rules) > 150
    assert all(ContextRule.from_dict(r.to_dict()) == r for r in rules)
    with pytest.raises(ValueError, match="direction"):
        ContextRule("no", "NEGATED_EXISTENCE", "sideways")
    with pytest.raises(ValueError, match="category"):
        ContextRule("no", "NEGATED", "forward")
