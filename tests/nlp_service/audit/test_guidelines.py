"""Guideline checks and QPP measures over real reports run through the rules pipeline."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from nlp_service.audit.guidelines import (
    ABDOMINAL_ACR,
    FLEISCHNER,
    LUNG_RADS,
    THYROID_ACR,
    GuidelineVerdict,
    MeasureResult,
    ReportFacts,
    check_recommendation,
    evaluate_measures,
)
from pipelines.schema import ReportAnalysis

Analyze = Callable[[str], ReportAnalysis]

NEVER_SMOKER = "Cough. Never smoker."
SMOKER = "Cough. 30 pack-year smoking history."
NO_RISK = "Cough."


def report(findings: str, impression: str, *, history: str = NO_RISK,
           exam: str = "CT CHEST WITHOUT CONTRAST") -> str:
    return (f"EXAM: {exam}\nINDICATION: {history}\n\nFINDINGS:\n{findings}\n\n"
            f"IMPRESSION:\n{impression}\n")


def verdict(analyze: Analyze, text: str, *, age: float | None = 60, index: int = 0,
            **facts: str) -> GuidelineVerdict:
    analysis = analyze(text)
    assert len(analysis.recommendations) > index, (
        f"no recommendation {index}: {[r.text for r in analysis.recommendations]}")
    return check_recommendation(analysis, index, ReportFacts(text=text, age_years=age, **facts))


def measures(analyze: Analyze, text: str, *, age: float | None = 60,
             **facts: str) -> dict[str, MeasureResult]:
    results = evaluate_measures(analyze(text), ReportFacts(text=text, age_years=age, **facts))
    assert len({r.measure for r in results}) == len(results)
    return {r.measure: r for r in results}


def assert_reason(result: GuidelineVerdict | MeasureResult, *fragments: str) -> None:
    for fragment in fragments:
        assert fragment in result.reason, f"{fragment!r} not in {result.reason!r}"


# --- Fleischner 2017, solid single nodules: size x risk. ------------------------------------

SOLID_SINGLE = [
    # size, history, recommendation, verdict, reason fragments
    ("4 mm", NEVER_SMOKER, "Recommend CT chest in 12 months.", "inconsistent",
     ["solid 4 mm single nodule, low risk", "no routine follow-up", "CT in 12 months"]),
    ("4 mm", SMOKER, "Recommend CT chest in 12 months.", "consistent",
     ["high risk", "optional CT at 12 months"]),
    ("4 mm", NO_RISK, "Recommend CT chest in 12 months.", "consistent",
     ["risk not stated", "consistent with the high-risk recommendation"]),
    ("4 mm", NO_RISK, "Recommend CT chest in 3 months.", "inconsistent",
     ["risk not stated", "no routine follow-up (low-risk)", "optional CT at 12 months (high-risk)",
      "CT in 3 months"]),
    ("7 mm", NEVER_SMOKER, "Recommend CT chest in 3 months.", "inconsistent",
     ["solid 7 mm single nodule, low risk", "CT at 6-12 months", "CT in 3 months",
      "outside the expected window"]),
    ("7 mm", SMOKER, "Recommend CT chest in 6-12 months.", "consistent",
     ["high risk", "CT at 6-12 months, then CT at 18-24 months"]),
    ("7 mm", NO_RISK, "Recommend CT chest in 12 months.", "consistent",
     ["risk not stated", "consistent with the low-risk recommendation"]),
    ("1.2 cm", NEVER_SMOKER, "Recommend CT chest in 3 months.", "consistent",
     ["solid 12 mm single nodule", "consider CT at 3 months, PET/CT, or tissue sampling"]),
    ("1.2 cm", SMOKER, "Recommend CT chest in 12 months.", "inconsistent",
     ["solid 12 mm single nodule", "CT in 12 months"]),
    ("1.2 cm", NO_RISK, "PET/CT is recommended.", "consistent",
     ["PET/CT without an interval"]),
]


@pytest.mark.parametrize(("size", "history", "recommendation", "expected", "fragments"),
                         SOLID_SINGLE)
def test_fleischner_solid_single(analyze: Analyze, size: str, history: str,
                                 recommendation: str, expected: str,
                                 fragments: list[str]) -> None:
    text = report(f"Lungs: {size} solid nodule in the right upper lobe.",
                  f"1. {size} solid right upper lobe pulmonary nodule.\n2. {recommendation}",
                  history=history)
    result = verdict(analyze, text)
    assert (result.guideline, result.verdict) == (FLEISCHNER, expected), result.reason
    assert_reason(result, *fragments)


def test_expected_window_is_the_guideline_interval(analyze: Analyze) -> None:
    text = report("Lungs: 7 mm solid nodule in the right upper lobe.",
                  "7 mm nodule. Recommend CT chest in 3 months.", history=NEVER_SMOKER)
    result = verdict(analyze, text)
    assert (result.expected_min_days, result.expected_max_days) == (180, 365)


def test_unstated_interval_is_insufficient(analyze: Analyze) -> None:
    text = report("Lungs: 7 mm solid nodule in the right upper lobe.",
                  "7 mm nodule. Recommend follow-up CT chest.", history=SMOKER)
    result = verdict(analyze, text)
    assert result.verdict == "insufficient_information"
    assert_reason(result, "no interval")


def test_wrong_modality_is_inconsistent(analyze: Analyze) -> None:
    text = report("Lungs: 7 mm solid nodule in the right upper lobe.",
                  "7 mm nodule. Recommend chest radiograph in 6 months.", history=SMOKER)
    result = verdict(analyze, text)
    assert result.verdict == "inconsistent"
    assert_reason(result, "CT is expected, not XR")


def test_unstated_texture_is_taken_as_solid(analyze: Analyze) -> None:
    text = report("Lungs: 1.4 cm nodule in the right upper lobe.",
                  "1.4 cm right upper lobe nodule. Recommend CT chest in 3 months.")
    result = verdict(analyze, text)
    assert result.verdict == "consistent"
    assert_reason(result, "texture not stated: taken as solid", "14 mm")


def test_later_step_is_accepted_when_it_says_so(analyze: Analyze) -> None:
    text = report("Lungs: 7 mm solid nodule in the right upper lobe.",
                  "7 mm nodule. Recommend CT chest in 6 months. If stable, recommend CT chest "
                  "in 18-24 months.", history=SMOKER)
    assert verdict(analyze, text, index=1).verdict == "consistent"
    plain = report("Lungs: 7 mm solid nodule in the right upper lobe.",
                   "7 mm nodule. Recommend CT chest in 18-24 months.", history=SMOKER)
    assert verdict(analyze, plain).verdict == "inconsistent"


def test_conditional_recommendation_is_judged_and_says_so(analyze: Analyze) -> None:
    text = report("Lungs: 4 mm solid nodule in the right upper lobe.",
                  "4 mm nodule. If clinically indicated, CT chest in 12 months could be "
                  "considered.", history=NEVER_SMOKER)
    analysis = analyze(text)
    assert analysis.recommendations[0].conditional
    result = verdict(analyze, text)
    assert result.verdict == "inconsistent"
    assert_reason(result, "conditional")


# --- Fleischner 2017: multiple, ground-glass, part-solid. ---------------------------------

SUBSOLID_AND_MULTIPLE = [
    ("Lungs: Multiple solid pulmonary nodules, the largest 7 mm in the left lower lobe.",
     "Multiple pulmonary nodules. Recommend CT chest in 3-6 months.", NEVER_SMOKER,
     "consistent", ["solid 7 mm multiple nodules, low risk", "CT at 3-6 months"]),
    ("Lungs: Multiple solid pulmonary nodules, the largest 7 mm in the left lower lobe.",
     "Multiple pulmonary nodules. Recommend CT chest in 12 months.", NEVER_SMOKER,
     "inconsistent", ["multiple nodules", "CT at 3-6 months", "CT in 12 months"]),
    ("Lungs: Several solid pulmonary nodules up to 4 mm.",
     "Small pulmonary nodules. Recommend CT chest in 6 months.", NEVER_SMOKER,
     "inconsistent", ["solid 4 mm multiple nodules", "no routine follow-up"]),
    ("Lungs: Multiple solid pulmonary nodules, the largest 1.2 x 0.9 cm in the left lower lobe.",
     "Multiple pulmonary nodules up to 1.2 cm. Recommend CT chest in 3 months.", NO_RISK,
     "consistent", ["solid 12 mm multiple nodules", "CT at 3-6 months"]),
    ("Lungs: 8 mm ground-glass nodule in the right lower lobe.",
     "8 mm ground-glass nodule. Recommend CT chest in 6-12 months.", NO_RISK,
     "consistent", ["ground-glass 8 mm single nodule", "CT at 6-12 months to confirm persistence"]),
    ("Lungs: 8 mm ground-glass nodule in the right lower lobe.",
     "8 mm ground-glass nodule. Recommend CT chest in 3 months.", NO_RISK,
     "inconsistent", ["ground-glass 8 mm single nodule", "CT in 3 months"]),
    ("Lungs: 4 mm ground-glass nodule in the right lower lobe.",
     "4 mm ground-glass nodule. Recommend CT chest in 6 months.", SMOKER,
     "inconsistent", ["ground-glass 4 mm single nodule", "no routine follow-up"]),
    ("Lungs: 9 mm part-solid nodule in the left upper lobe with a 3 mm solid component.",
     "Part-solid nodule. Recommend CT chest in 3-6 months.", NO_RISK,
     "consistent", ["part-solid 9 mm single nodule", "CT at 3-6 months to confirm persistence"]),
    ("Lungs: 9 mm part-solid nodule in the left upper lobe with a 3 mm solid component.",
     "Part-solid nodule. Recommend CT chest in 12 months.", NO_RISK,
     "inconsistent", ["part-solid 9 mm single nodule", "CT in 12 months"]),
    ("Lungs: 4 mm part-solid nodule in the left upper lobe.",
     "Part-solid nodule. Recommend CT chest in 3 months.", NO_RISK,
     "inconsistent", ["part-solid 4 mm single nodule", "no routine follow-up"]),
    ("Lungs: Multiple ground-glass nodules bilaterally, the largest 5 mm in the left upper lobe.",
     "Multiple ground-glass nodules. Follow-up CT in 3 to 6 months is recommended.", NO_RISK,
     "consistent", ["ground-glass 5 mm multiple nodules", "CT at 3-6 months; if stable"]),
    ("Lungs: 9 mm part-solid nodule in the left upper lobe. A second 5 mm ground glass nodule "
     "in the right lower lobe. 3 mm nodule in the right middle lobe.",
     "Pulmonary nodules as described. Recommend CT chest in 3-6 months.", NO_RISK,
     "consistent", ["subsolid 9 mm multiple nodules", "most suspicious"]),
    ("Lungs: 8 mm subsolid nodule in the right upper lobe.",
     "Subsolid nodule. Recommend CT chest in 12 months.", NO_RISK,
     "consistent", ["not specified as ground-glass or part-solid",
                    "consistent with the ground-glass >=6 mm recommendation"]),
]


@pytest.mark.parametrize(("findings", "impression", "history", "expected", "fragments"),
                         SUBSOLID_AND_MULTIPLE)
def test_fleischner_multiple_and_subsolid(analyze: Analyze, findings: str, impression: str,
                                          history: str, expected: str,
                                          fragments: list[str]) -> None:
    result = verdict(analyze, report(findings, impression, history=history))
    assert (result.guideline, result.verdict) == (FLEISCHNER, expected), result.reason
    assert_reason(result, *fragments)


# --- When Fleischner does not apply. --------------------------------------------------------

NODULE = "Lungs: 7 mm solid nodule in the right upper lobe."
NODULE_IMPRESSION = "7 mm nodule. Recommend CT chest in 6-12 months."


@pytest.mark.parametrize(("text", "age", "procedure", "fragment"), [
    (report(NODULE, NODULE_IMPRESSION), 30, None, "aged 30 is younger than 35"),
    (report(NODULE, NODULE_IMPRESSION), 60, "LOW-DOSE CT CHEST FOR LUNG CANCER SCREENING",
     "lung cancer screening exam"),
    (report(NODULE, NODULE_IMPRESSION, exam="LDCT CHEST"), 60, None,
     "lung cancer screening exam"),
    (report(NODULE, NODULE_IMPRESSION, history="Cough. History of colon cancer."), 60, None,
     "known or suspected malignancy"),
    (report(NODULE, NODULE_IMPRESSION, history="Staging."), 60, None,
     "known or suspected malignancy ('Staging')"),
    (report(NODULE, NODULE_IMPRESSION, history="Fever. Renal transplant recipient."), 60, None,
     "immunosuppressed patient ('transplant')"),
    (report(NODULE, NODULE_IMPRESSION, history="Fever. HIV."), 60, None,
     "immunosuppressed patient"),
    (report("Lungs: 7 mm calcified nodule in the right upper lobe.",
            "Calcified nodule. Recommend CT chest in 6-12 months."), 60, None,
     "described as calcified or benign"),
    (report("Lungs: 3.5 cm solid nodule in the right upper lobe.",
            "3.5 cm nodule. Recommend CT chest in 3 months."), 60, None, "is a mass"),
])
def test_fleischner_not_applicable(analyze: Analyze, text: str, age: float,
                                   procedure: str | None, fragment: str) -> None:
    result = verdict(analyze, text, age=age,
                     **({"procedure_name": procedure} if procedure else {}))
    assert (result.guideline, result.verdict) == (FLEISCHNER, "not_applicable"), result.reason
    assert_reason(result, "Fleischner 2017 does not apply", fragment)


def test_negated_history_does_not_exclude(analyze: Analyze) -> None:
    text = report(NODULE, NODULE_IMPRESSION, history="Cough. No history of cancer.")
    assert verdict(analyze, text).verdict == "consistent"


@pytest.mark.parametrize(("findings", "impression", "name"), [
    ("Lungs: 4.5 cm right upper lobe lung mass.",
     "Right upper lobe lung mass. Recommend PET/CT.", "pulmonary mass"),
    ("Gallbladder: Cholelithiasis.",
     "1. Cholelithiasis. Recommend right upper quadrant ultrasound if clinically indicated.",
     "cholelithiasis"),
])
def test_finding_without_guideline_rule(analyze: Analyze, findings: str, impression: str,
                                        name: str) -> None:
    result = verdict(analyze, report(findings, impression))
    assert (result.guideline, result.verdict) == (None, "not_applicable")
    assert result.reason == f"no guideline rule for {name}"


# --- Lung-RADS v2022. ----------------------------------------------------------------------

def screening(category: str, recommendation: str) -> str:
    return ("EXAM: LOW-DOSE CT CHEST FOR LUNG CANCER SCREENING\n"
            "INDICATION: 62 year old former smoker, 35 pack-years.\n\nFINDINGS:\n"
            "Lungs: 8 mm solid nodule in the right middle lobe.\n\nIMPRESSION:\n"
            f"1. 8 mm right middle lobe nodule. Lung-RADS {category}. {recommendation}\n")


@pytest.mark.parametrize(("category", "recommendation", "expected", "fragment"), [
    ("1", "Continue annual screening with LDCT in 12 months.", "consistent", "12 months"),
    ("2", "Continue annual screening with LDCT in 12 months.", "consistent", "12 months"),
    ("2", "Recommend low-dose CT chest in 6 months.", "inconsistent", "12 months"),
    ("3", "Recommend low-dose CT chest in 6 months.", "consistent", "LDCT in 6 months"),
    ("3", "Recommend low-dose CT chest in 12 months.", "inconsistent", "LDCT in 6 months"),
    ("4A", "Recommend low-dose CT chest in 3 months.", "consistent", "LDCT in 3 months"),
    ("4A", "Recommend low-dose CT chest in 6 months.", "inconsistent", "LDCT in 3 months"),
    ("4B", "PET/CT is recommended.", "consistent", "PET/CT and/or tissue sampling"),
    ("4B", "Recommend tissue sampling.", "consistent", "biopsy"),
    ("4X", "Recommend low-dose CT chest in 12 months.", "inconsistent", "diagnostic chest CT"),
])
def test_lung_rads(analyze: Analyze, category: str, recommendation: str, expected: str,
                   fragment: str) -> None:
    result = verdict(analyze, screening(category, recommendation))
    assert (result.guideline, result.verdict) == (LUNG_RADS, expected), result.reason
    assert_reason(result, f"Lung-RADS category {category}", fragment)


def test_screening_without_category_is_not_fleischner(analyze: Analyze) -> None:
    text = screening("", "Recommend low-dose CT chest in 12 months.").replace("Lung-RADS . ", "")
    result = verdict(analyze, text)
    assert (result.guideline, result.verdict) == (FLEISCHNER, "not_applicable")
    assert_reason(result, "lung cancer screening exam")


# --- Thyroid nodules (ACR white paper, QPP 406). ---------------------------------------------

def thyroid(size: str, impression: str, *, exam: str = "CT NECK WITH CONTRAST",
            history: str = "Neck pain.") -> str:
    return report(f"Thyroid: {size} hypodense nodule in the right thyroid lobe.", impression,
                  exam=exam, history=history)


@pytest.mark.parametrize(("size", "age", "expected", "fragments"), [
    ("8 mm", 60, "inconsistent", ["8 mm thyroid nodule", "< 1 cm", "no further evaluation"]),
    ("8 mm", 25, "inconsistent", ["< 1 cm"]),
    ("1.2 cm", 60, "inconsistent", ["12 mm", "age 60 (>= 35)", "no further evaluation"]),
    ("1.2 cm", 25, "consistent", ["12 mm", "age 25", "thyroid ultrasound"]),
    ("1.2 cm", None, "consistent", ["age not given", "age < 35"]),
    ("1.8 cm", 60, "consistent", ["18 mm", "thyroid ultrasound"]),
])
def test_thyroid_nodule(analyze: Analyze, size: str, age: float | None, expected: str,
                        fragments: list[str]) -> None:
    text = thyroid(size, f"{size} right thyroid nodule. Recommend thyroid ultrasound.")
    result = verdict(analyze, text, age=age)
    assert (result.guideline, result.verdict) == (THYROID_ACR, expected), result.reason
    assert_reason(result, *fragments)


def test_suspicious_thyroid_nodule_warrants_ultrasound(analyze: Analyze) -> None:
    text = thyroid("8 mm", "8 mm right thyroid nodule with extrathyroidal extension. Recommend "
                           "thyroid ultrasound.")
    result = verdict(analyze, text)
    assert result.verdict == "consistent"
    assert_reason(result, "suspicious feature ('extrathyroidal')")


def test_negated_suspicious_feature_does_not_count(analyze: Analyze) -> None:
    text = report("Thyroid: Incidental 6 mm nodule in the left thyroid lobe. No cervical "
                  "lymphadenopathy.", "6 mm left thyroid nodule. Recommend thyroid ultrasound.",
                  exam="CT SOFT TISSUE NECK WITH CONTRAST")
    assert verdict(analyze, text).verdict == "inconsistent"
    result = measures(analyze, text)["406"]
    assert (result.in_denominator, result.in_numerator, result.excluded) == (True, True, False)


def test_measure_406(analyze: Analyze) -> None:
    with_rec = thyroid("8 mm", "8 mm right thyroid nodule. Recommend thyroid ultrasound.")
    without = thyroid("8 mm", "8 mm right thyroid nodule.")
    met, not_met = measures(analyze, with_rec)["406"], measures(analyze, without)["406"]
    assert (met.in_denominator, met.in_numerator, met.excluded) == (True, True, False)
    assert (not_met.in_denominator, not_met.in_numerator) == (True, False)
    assert_reason(not_met, "no follow-up imaging recommended")
    chest = report("Thyroid: 7 mm nodule in the left thyroid lobe.\nLungs: Clear.",
                   "1. No pulmonary embolism.\n2. 7 mm left thyroid nodule.",
                   exam="CT ANGIOGRAPHY CHEST")
    assert measures(analyze, chest)["406"].in_denominator


@pytest.mark.parametrize(("text", "age", "facts"), [
    (thyroid("1.2 cm", "1.2 cm right thyroid nodule."), 60, {}),  # not < 1 cm
    (thyroid("8 mm", "8 mm right thyroid nodule.", exam="CT ABDOMEN"), 60, {}),
    (thyroid("8 mm", "8 mm right thyroid nodule.", exam="THYROID ULTRASOUND"), 60, {}),
    (thyroid("8 mm", "8 mm right thyroid nodule."), 17, {}),
    (thyroid("8 mm", "8 mm right thyroid nodule."), None, {}),
])
def test_outside_406(analyze: Analyze, text: str, age: float | None,
                     facts: dict[str, str]) -> None:
    assert "406" not in measures(analyze, text, age=age, **facts)


@pytest.mark.parametrize(("text", "fragment"), [
    (thyroid("8 mm", "8 mm right thyroid nodule.", history="Hashimoto thyroiditis."),
     "known thyroid disease"),
    (thyroid("8 mm", "8 mm right thyroid nodule with microcalcifications."),
     "suspicious feature"),
])
def test_406_exclusions(analyze: Analyze, text: str, fragment: str) -> None:
    result = measures(analyze, text)["406"]
    assert (result.excluded, result.in_denominator, result.in_numerator) == (True, False, False)
    assert_reason(result, fragment)


# --- Renal cysts and adrenal nodules (ACR white papers, QPP 405). ------------------------------

def abdomen(findings: str, impression: str, history: str = "Flank pain.") -> str:
    return report(findings, impression, exam="CT ABDOMEN AND PELVIS WITH CONTRAST",
                  history=history)


BOSNIAK_II = "Kidneys: 3 cm Bosniak II cyst in the right kidney."


def test_bosniak_ii_with_recommendation(analyze: Analyze) -> None:
    text = abdomen(BOSNIAK_II, "1. Bosniak II right renal cyst. Recommend follow-up "
                               "ultrasound in 1 year.")
    result = verdict(analyze, text)
    assert (result.guideline, result.verdict) == (ABDOMINAL_ACR, "inconsistent"), result.reason
    # The modality in the report's own words, the interval normalized.
    assert_reason(result, "Bosniak II renal cyst", "no follow-up imaging",
                  "ultrasound in 12 months")
    measure = measures(analyze, text)["405"]
    assert (measure.in_denominator, measure.in_numerator, measure.excluded) == (True, True, False)
    assert_reason(measure, "Bosniak I/II renal cyst")


def test_bosniak_ii_without_recommendation(analyze: Analyze) -> None:
    text = abdomen(BOSNIAK_II, "1. Bosniak II right renal cyst. No follow-up needed.")
    assert analyze(text).recommendations == []
    measure = measures(analyze, text)["405"]
    assert (measure.in_denominator, measure.in_numerator) == (True, False)


def test_simple_cyst_reads_as_bosniak_i_ii(analyze: Analyze) -> None:
    text = abdomen("Kidneys: 2.1 cm simple cyst in the left kidney.",
                   "1. Left renal cyst. Recommend renal ultrasound in 6 months.")
    result = verdict(analyze, text)
    assert result.verdict == "inconsistent"
    assert_reason(result, "simple renal cyst")


def test_renal_cyst_without_class_is_insufficient(analyze: Analyze) -> None:
    text = abdomen("Kidneys: 2 cm cyst in the left kidney.",
                   "1. Left renal cyst. Recommend renal ultrasound in 6 months.")
    result = verdict(analyze, text)
    assert result.verdict == "insufficient_information"
    assert "405" not in measures(analyze, text)


def test_bosniak_iii_has_no_rule(analyze: Analyze) -> None:
    text = abdomen("Kidneys: 3 cm Bosniak III cyst in the right kidney.",
                   "1. Bosniak III right renal cyst. Recommend urology referral and MRI.")
    result = verdict(analyze, text)
    assert result.verdict == "not_applicable"
    assert_reason(result, "no guideline rule for a Bosniak III renal cyst")
    assert "405" not in measures(analyze, text)


@pytest.mark.parametrize(("findings", "impression", "expected", "fragments", "in_405"), [
    ("Adrenals: 8 mm left adrenal nodule.",
     "1. 8 mm left adrenal nodule. Recommend adrenal CT in 12 months.", "inconsistent",
     ["8 mm adrenal nodule (<= 1 cm)", "no follow-up imaging"], True),
    ("Adrenal glands: 1.4 cm left adrenal nodule, likely adenoma.",
     "1. 1.4 cm left adrenal nodule, likely adenoma. Recommend adrenal protocol CT in 12 months.",
     "inconsistent", ["14 mm adrenal nodule with benign features ('adenoma')"], True),
    ("Adrenals: 2.5 cm left adrenal nodule measuring 35 HU.",
     "1. 2.5 cm indeterminate left adrenal nodule. Recommend adrenal protocol CT.",
     "consistent", ["indeterminate adrenal nodule", "adrenal-protocol CT or MRI"], False),
])
def test_adrenal_nodule(analyze: Analyze, findings: str, impression: str, expected: str,
                        fragments: list[str], in_405: bool) -> None:
    text = abdomen(findings, impression)
    result = verdict(analyze, text)
    assert (result.guideline, result.verdict) == (ABDOMINAL_ACR, expected), result.reason
    assert_reason(result, *fragments)
    assert ("405" in measures(analyze, text)) is in_405


def test_measure_405_numerator_and_exclusion(analyze: Analyze) -> None:
    findings = "Adrenals: 8 mm left adrenal nodule."
    with_rec = abdomen(findings, "1. 8 mm left adrenal nodule. Recommend adrenal CT in 1 year.")
    without = abdomen(findings, "1. 8 mm left adrenal nodule.")
    assert measures(analyze, with_rec)["405"].in_numerator
    assert not measures(analyze, without)["405"].in_numerator
    cancer = abdomen(findings, "1. 8 mm left adrenal nodule.",
                     history="Staging of lung cancer.")
    result = measures(analyze, cancer)["405"]
    assert (result.excluded, result.in_denominator) == (True, False)
    assert_reason(result, "known or suspected malignancy")
    assert "405" not in measures(analyze, without, age=16)


def test_conditional_recommendation_without_imaging_is_not_405_numerator(
        analyze: Analyze) -> None:
    text = abdomen(BOSNIAK_II, "1. Bosniak II right renal cyst. Follow-up could be considered "
                               "if clinically indicated.")
    recs = analyze(text).recommendations
    assert recs and recs[0].conditional and recs[0].modality is None
    result = measures(analyze, text)["405"]
    assert (result.in_denominator, result.in_numerator) == (True, False)
    assert_reason(result, "only a conditional recommendation")


# --- QPP 364. -------------------------------------------------------------------------------

def test_364_met_with_interval_modality_and_source(analyze: Analyze) -> None:
    text = report(NODULE, "7 mm nodule. Recommend CT chest in 6-12 months per Fleischner "
                          "Society guidelines.")
    result = measures(analyze, text)["364"]
    assert (result.in_denominator, result.in_numerator, result.excluded) == (True, True, False)
    assert_reason(result, "CT in 6-12 months", "Fleischner")


def test_364_not_met_without_guideline_source(analyze: Analyze) -> None:
    result = measures(analyze, report(NODULE, NODULE_IMPRESSION))["364"]
    assert (result.in_denominator, result.in_numerator) == (True, False)
    assert_reason(result, "lacks the guideline source")


def test_364_not_met_without_interval(analyze: Analyze) -> None:
    text = report(NODULE, "7 mm nodule. Recommend follow-up CT per Fleischner guidelines.")
    result = measures(analyze, text)["364"]
    assert not result.in_numerator
    assert_reason(result, "lacks the interval")


def test_364_not_met_without_any_recommendation(analyze: Analyze) -> None:
    result = measures(analyze, report(NODULE, "7 mm right upper lobe nodule."))["364"]
    assert (result.in_denominator, result.in_numerator) == (True, False)
    assert_reason(result, "no follow-up recommendation")


def test_364_met_by_no_follow_up_citing_guideline(analyze: Analyze) -> None:
    text = report("Lungs: 4 mm solid nodule in the right lower lobe.",
                  "4 mm nodule. No routine follow-up is needed per Fleischner guidelines.",
                  history=NEVER_SMOKER)
    result = measures(analyze, text)["364"]
    assert (result.in_denominator, result.in_numerator) == (True, True)
    assert_reason(result, "no follow-up is needed citing Fleischner")
    uncited = text.replace(" per Fleischner guidelines", "")
    assert not measures(analyze, uncited)["364"].in_numerator


def test_364_recommendation_outside_impression_does_not_count(analyze: Analyze) -> None:
    text = report("Lungs: 7 mm solid nodule in the right upper lobe. Recommend CT chest in "
                  "6-12 months per Fleischner guidelines.", "7 mm nodule.")
    result = measures(analyze, text)["364"]
    assert not result.in_numerator
    assert_reason(result, "is not in the impression")


@pytest.mark.parametrize(("history", "procedure", "fragment"), [
    ("Cough. History of breast cancer.", None, "known or suspected malignancy"),
    ("Fever. Immunocompromised.", None, "immunosuppressed patient"),
    (NO_RISK, "CT CHEST LOW DOSE LUNG CANCER SCREENING", "lung cancer screening exam"),
])
def test_364_exclusions(analyze: Analyze, history: str, procedure: str | None,
                        fragment: str) -> None:
    text = report(NODULE, NODULE_IMPRESSION, history=history)
    result = measures(analyze, text, **({"procedure_name": procedure} if procedure else {}))
    assert (result["364"].excluded, result["364"].in_denominator) == (True, False)
    assert_reason(result["364"], "excluded", fragment)


@pytest.mark.parametrize(("text", "age", "facts"), [
    (report(NODULE, NODULE_IMPRESSION), 30, {}),  # under 35: outside the population
    (report(NODULE, NODULE_IMPRESSION), None, {}),  # age unknown
    (report(NODULE, NODULE_IMPRESSION, exam="CHEST, 2 VIEWS"), 60, {}),  # not CT
    (report(NODULE, NODULE_IMPRESSION), 60, {"modality": "CR"}),
    (report(NODULE, NODULE_IMPRESSION, history="Follow-up of a right upper lobe nodule."), 60,
     {}),  # not incidental
    (report("Lungs: 7 mm calcified nodule in the right upper lobe.", "Calcified granuloma."),
     60, {}),
    (report("Lungs: No pulmonary nodules.", "No acute findings."), 60, {}),
])
def test_outside_364(analyze: Analyze, text: str, age: float | None,
                     facts: dict[str, str]) -> None:
    assert "364" not in measures(analyze, text, age=age, **facts)


def test_364_counts_a_lung_base_nodule_on_abdominal_ct(analyze: Analyze) -> None:
    text = abdomen("Lung bases: 5 mm solid nodule in the right lower lobe.",
                   "1. 5 mm right lower lobe nodule.")
    result = measures(analyze, text)["364"]
    assert (result.in_denominator, result.in_numerator) == (True, False)


def test_facts_override_the_exam_header(analyze: Analyze) -> None:
    text = report(NODULE, NODULE_IMPRESSION, exam="OUTSIDE STUDY")
    assert "364" not in measures(analyze, text)
    assert "364" in measures(analyze, text, modality="CT", body_region="chest")


def test_one_report_several_measures(analyze: Analyze) -> None:
    text = report("Lungs: 7 mm solid nodule in the right upper lobe.\n"
                  "Thyroid: 6 mm nodule in the left thyroid lobe.\n"
                  "Upper abdomen: 8 mm left adrenal nodule.",
                  "1. 7 mm nodule. Recommend CT chest in 6-12 months per Fleischner "
                  "guidelines.\n2. 6 mm left thyroid nodule.\n3. 8 mm left adrenal nodule.")
    results = measures(analyze, text)
    assert sorted(results) == ["364", "405", "406"]
    assert results["364"].in_numerator
    assert not results["405"].in_numerator and not results["406"].in_numerator
