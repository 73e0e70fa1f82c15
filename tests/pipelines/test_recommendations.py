import pytest

from pipelines.recommendations import parse_interval


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("follow-up CT in 3 months", (90, 90)),
        ("repeat in 3-6 months", (90, 180)),
        ("CT chest in 6 to 12 months", (180, 365)),
        ("ultrasound in 1 year", (365, 365)),
        ("in one year", (365, 365)),
        ("chest radiograph in 4-6 weeks", (28, 42)),
        ("annual low-dose CT", (365, 365)),
        ("a 12-month follow-up", (365, 365)),
        ("18-24 months", (540, 730)),
        ("MRI for further characterization", (None, None)),
    ],
)
def test_intervals(text, expected):
    assert parse_interval(text) == expected


def test_recommendation_attributes(analyze):
    analysis = analyze(
        "IMPRESSION: 1. 1.4 cm left adrenal nodule. 2. Mild hepatic steatosis.\n"
        "3. Recommend follow-up CT abdomen and pelvis in 12 months per ACR guidelines."
    )
    (rec,) = analysis.recommendations
    assert (rec.modality, rec.body_region) == ("CT", "abdomen/pelvis")
    assert (rec.interval_min_days, rec.interval_max_days) == (365, 365)
    assert rec.guideline == "ACR" and not rec.conditional
    assert rec.text.startswith("Recommend follow-up CT")
    assert analysis.findings[rec.finding_index].text == "adrenal nodule"


@pytest.mark.parametrize(
    ("sentence", "conditional", "guideline", "interval"),
    [
        ("Consider CT chest if clinically indicated.", True, None, (None, None)),
        ("Recommend short-term follow-up CT chest.", False, None, (None, None)),
        ("Follow-up CT in 6-12 months per Fleischner Society guidelines.", False, "Fleischner",
         (180, 365)),
        ("Recommend annual low-dose CT screening (Lung-RADS 2).", False, "Lung-RADS", (365, 365)),
    ],
)
def test_recommendation_variants(analyze, sentence, conditional, guideline, interval):
    analysis = analyze(f"6 mm nodule in the right upper lobe. {sentence}")
    (rec,) = analysis.recommendations
    assert rec.conditional is conditional
    assert rec.guideline == guideline
    assert (rec.interval_min_days, rec.interval_max_days) == interval
    assert rec.modality == "CT"


def test_statements_that_are_not_recommendations(analyze):
    analysis = analyze(
        "INDICATION: Follow-up CT for nodule.\nFINDINGS: No pneumothorax. The nodule suggested on "
        "the prior study is not seen.\nIMPRESSION: No follow-up imaging is needed."
    )
    assert analysis.recommendations == []
