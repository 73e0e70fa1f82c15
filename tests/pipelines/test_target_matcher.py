import pytest

from pipelines.target_matcher import TargetRule, load_finding_patterns


@pytest.mark.parametrize(
    ("text", "concept", "assertion"),
    [
        ("The heart is mildly enlarged.", "cardiomegaly", "present"),
        ("Heart size is moderately enlarged for technique.", "cardiomegaly", "present"),
        ("The cardiac silhouette remains enlarged.", "cardiomegaly", "present"),
        ("Borderline heart size.", "cardiomegaly", "present"),
        ("The lungs are hyperexpanded.", "hyperinflation", "present"),
        ("The mediastinum is widened.", "mediastinal widening", "present"),
        ("The cardiomediastinal silhouette is mildly enlarged.", "cardiomegaly", "present"),
        ("Heart is mild enlarged.", "cardiomegaly", "present"),
        ("Lung volumes are low.", "low lung volumes", "present"),
        ("The thoracic aorta is mildly tortuous.", "tortuous aorta", "present"),
        ("Elevated right hemidiaphragm.", "elevated hemidiaphragm", "present"),
        ("The left hemidiaphragm is again elevated.", "elevated hemidiaphragm", "present"),
        ("Stable elevation of the right hemidiaphragm.", "elevated hemidiaphragm", "present"),
        ("Right middle lobe infiltrate.", "infiltrate", "present"),
        ("Emphysematous changes in both upper lobes.", "emphysema", "present"),
        ("Stable fibrotic changes at the lung bases.", "fibrosis", "present"),
    ],
)
def test_findings_stated_as_predicates_or_new_terms(analyze, text, concept, assertion):
    findings = [f for f in analyze(text).findings if f.concept and f.concept.name == concept]
    assert [f.assertion for f in findings] == [assertion]


@pytest.mark.parametrize("text", ["The heart is not enlarged.", "Heart size is normal.",
                                  "The lungs are clear."])
def test_normal_statements_are_not_findings(analyze, text):
    assert analyze(text).findings == []


def test_pattern_rules_round_trip_and_reject_empty_patterns():
    rules = load_finding_patterns()
    assert rules and all(TargetRule.from_dict(r.to_dict()) == r for r in rules)
    with pytest.raises(ValueError, match="pattern"):
        TargetRule.from_dict({"literal": "x", "label": "FINDING", "pattern": []})
