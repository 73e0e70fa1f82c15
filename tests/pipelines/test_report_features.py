"""Descriptors, clinical context and recommendation readings that guideline checks use."""

import ast
from pathlib import Path

import pytest

from pipelines.report_features import read_clinical_context


def _descriptors(finding):
    return {(d.name, d.value) for d in finding.descriptors}


@pytest.mark.parametrize(("sentence", "expected"), [
    ("7 mm part-solid nodule in the right upper lobe.", {("texture", "part-solid")}),
    ("5 mm ground-glass nodule in the left lower lobe.", {("texture", "ground-glass")}),
    ("Calcified 4 mm nodule in the right lower lobe.", {("benign_feature", "calcified")}),
    ("8 mm nodule in the right lower lobe without calcification.", set()),
    ("Multiple nodules in both lungs, the largest 6 mm.", {("multiple", "multiple")}),
])
def test_nodule_descriptors(analyze, finding, sentence, expected):
    analysis = analyze(f"FINDINGS: {sentence}")
    nodule = next(f for f in analysis.findings if "nodule" in f.text.lower())
    found = _descriptors(nodule) - {("organ", "lung")}
    assert found == expected
    assert ("organ", "lung") in _descriptors(nodule)


def test_descriptor_offsets_point_at_their_words(analyze):
    text = "FINDINGS: 1.8 cm left adrenal nodule measuring 8 HU, consistent with adenoma."
    (nodule,) = analyze(text).findings[:1]
    for descriptor in nodule.descriptors:
        assert text[descriptor.start:descriptor.end] == descriptor.text
    assert {("attenuation_hu", "8"), ("benign_feature", "adenoma"),
            ("organ", "adrenal")} <= _descriptors(nodule)


def test_words_of_the_list_item_go_to_the_nearest_finding(analyze):
    analysis = analyze("FINDINGS: Thyroid: 8 mm nodule in the right lobe. Enlarged cervical "
                       "lymph nodes.\nKidneys: 2 cm adrenal nodule. Simple left renal cyst, "
                       "Bosniak II.")
    thyroid = next(f for f in analysis.findings if f.text == "nodule")
    adrenal = next(f for f in analysis.findings if f.text == "adrenal nodule")
    cyst = next(f for f in analysis.findings if f.text == "renal cyst")
    assert ("suspicious_feature", "abnormal lymph nodes") in _descriptors(thyroid)
    assert ("bosniak", "II") in _descriptors(cyst)
    assert not any(d.name == "bosniak" for d in adrenal.descriptors)


def test_clinical_context_from_the_history_and_findings(analyze):
    analysis = analyze("HISTORY: 64-year-old former smoker, 40 pack-years, history of "
                       "breast cancer.\nFINDINGS: 6 mm nodule in the right upper lobe.\n"
                       "IMPRESSION: Lung-RADS category 3.")
    context = analysis.clinical_context
    assert context.cancer is not None and "cancer" in context.cancer.text
    assert context.smoking_risk == "high"
    assert context.lung_rads == "3"
    assert context.screening is not None


def test_clinical_context_of_a_procedure_name_and_negated_words():
    ordered = read_clinical_context("CT CHEST LOW DOSE LUNG CANCER SCREENING")
    assert ordered.screening is not None and ordered.cancer is None
    assert read_clinical_context("Never smoker. No history of malignancy.").cancer is None
    assert read_clinical_context("Never smoker.").smoking_risk == "low"
    assert read_clinical_context("If the patient is a smoker, consider CT.").smoking_risk is None


def test_declined_follow_up_and_the_source_it_cites(analyze):
    analysis = analyze("FINDINGS: 4 mm nodule in the left upper lobe.\nIMPRESSION: 4 mm nodule. "
                       "No follow-up needed per Fleischner Society guidelines.")
    (declined,) = analysis.declined_follow_up
    assert declined.source == "Fleischner" and declined.text.lower() == "no follow-up"


@pytest.mark.parametrize(("sentence", "cited", "later", "sampling"), [
    ("Recommend CT chest in 3 months per ACR guidelines.", "ACR", False, False),
    ("Recommend CT in 6-12 months, then at 18-24 months if stable.", None, True, False),
    ("Recommend PET/CT or CT-guided biopsy.", None, False, True),
])
def test_recommendation_readings(analyze, sentence, cited, later, sampling):
    (rec,) = analyze(f"IMPRESSION: 9 mm solid nodule in the right upper lobe. {sentence}"
                     ).recommendations
    assert (rec.cited_source, rec.later_step, rec.tissue_sampling) == (cited, later, sampling)


def test_the_audit_reads_no_report_text_of_its_own():
    """Guideline checks are decision tables over the analysis: no regular expressions there."""
    source = Path(__file__).parents[2] / "nlp_service" / "audit" / "guidelines.py"
    imported = {alias.name for node in ast.walk(ast.parse(source.read_text()))
                if isinstance(node, ast.Import | ast.ImportFrom)
                for alias in node.names}
    assert "re" not in imported


def test_a_source_cited_by_one_request_is_not_another_requests(analyze):
    imaging, call = analyze(
        "IMPRESSION: 7 mm nodule in the right upper lobe. Recommend CT chest in 3-6 months per "
        "Fleischner. Findings were discussed with Dr. Lee at 14:20.").recommendations
    assert (imaging.kind, imaging.cited_source) == ("imaging", "Fleischner")
    assert (call.kind, call.cited_source) == ("communication", None)
