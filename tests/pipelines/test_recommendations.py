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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ultrasound within 3 months", (0, 90)),
        ("follow-up at 3 and 6 months", (90, 180)),
        ("CT in 6 months to 1 year", (180, 365)),
        ("MRI in 2 to 3 weeks", (14, 21)),
        ("CT chest at 3, 9 and 24 months", (90, 730)),
    ],
)
def test_interval_forms(text, expected):
    assert parse_interval(text) == expected


# Phrasings of real reports (written by the team) -> (kind, modalities, body region, conditional).
@pytest.mark.parametrize(
    ("sentence", "kind", "modalities", "region", "conditional"),
    [
        ("Further evaluation with chest CT would be helpful.", "imaging", ["CT"], "chest", False),
        ("A noncontrast CT is indicated for further characterization.", "imaging", ["CT"],
         "chest", False),
        ("CT of the chest, abdomen and pelvis could be performed for further workup.",
         "imaging", ["CT"], "chest/abdomen/pelvis", False),
        ("Dedicated rib views may be obtained if there is concern for fracture.", "imaging",
         ["XR"], "chest", True),
        ("PA and lateral radiographs may be of benefit.", "imaging", ["XR"], "chest", False),
        ("Comparison with prior studies would be useful.", "comparison_with_prior", [], None,
         False),
        ("Correlate clinically.", "clinical_correlation", [], None, False),
        ("Findings were discussed with Dr. Jones by telephone at 14:20.", "communication", [],
         None, False),
        ("Recommend CT-guided biopsy of the nodule.", "consultation", ["CT"], "chest", False),
        ("Recommend adrenal protocol CT or chemical shift MRI.", "imaging", ["CT", "MR"],
         "abdomen", False),
        ("Pancreatic protocol CT is recommended for the pancreatic head lesion.", "imaging",
         ["CT"], "abdomen", False),
        ("Suggest correlation with physical exam findings.", "clinical_correlation", [], None,
         False),
    ],
)
def test_phrasing_families(analyze, sentence, kind, modalities, region, conditional):
    analysis = analyze(f"FINDINGS: 9 mm nodule in the right upper lobe. No effusion.\n"
                       f"IMPRESSION: {sentence}")
    (rec,) = analysis.recommendations
    assert (rec.kind, rec.modalities, rec.body_region, rec.conditional) == (
        kind, modalities, region, conditional)
    assert rec.text == sentence


@pytest.mark.parametrize("sentence", [
    "Considering differences in technique, the effusion is unchanged.",
    "Differential considerations include hemorrhagic cyst or endometrioma.",
    "The nodule is considered benign.",
    "Findings suggest pneumonia.",
    "No further imaging is recommended.",
    "Follow-up CT demonstrates a stable nodule.",
    "The patient was referred for CT after the prior recommendation.",
    "In view of the findings on series 3, image 45, the nodule is benign.",
])
def test_sentences_that_only_look_like_requests(analyze, sentence):
    assert analyze(f"IMPRESSION: 9 mm nodule. {sentence}").recommendations == []


def test_a_sequence_is_a_first_step_with_a_next_step_not_a_condition(analyze):
    analysis = analyze("IMPRESSION: 8 mm solid nodule. Recommend follow-up CT chest in 6-12 "
                       "months, then consider CT at 18-24 months.")
    (rec,) = analysis.recommendations
    assert not rec.conditional
    assert (rec.modalities, rec.interval_min_days, rec.interval_max_days) == (["CT"], 180, 365)
    assert rec.next_step is not None
    assert (rec.next_step.interval_min_days, rec.next_step.interval_max_days) == (540, 730)


def test_a_protocol_name_is_not_a_finding(analyze):
    analysis = analyze("IMPRESSION: 2.1 cm complex cystic lesion of the left kidney. "
                       "Recommend renal mass protocol MRI.")
    (rec,) = analysis.recommendations
    assert (rec.modalities, rec.body_region) == (["MR"], "abdomen")
    assert "renal mass" not in [f.text.lower() for f in analysis.findings]


def test_short_interval_follow_up_is_flagged_without_a_number(analyze):
    (rec,) = analyze("IMPRESSION: 7 mm nodule. Recommend short-interval follow-up CT."
                     ).recommendations
    assert rec.short_interval and rec.interval_min_days is None


@pytest.mark.parametrize(("sentence", "kind", "modalities"), [
    ("Could this patient be aspirating?", "clinical_correlation", []),
    ("No acute disease; has the patient had a recent tuberculin test.", "clinical_correlation",
     []),
    ("Reflux will be further evaluated with voiding cystography.", "imaging", ["RF"]),
    ("A radionuclide cystogram may be helpful.", "imaging", ["NM"]),
])
def test_questions_to_the_clinician_and_cystograms(analyze, sentence, kind, modalities):
    (rec,) = analyze(f"IMPRESSION: Mild hydronephrosis. {sentence}").recommendations
    assert (rec.kind, rec.modalities) == (kind, modalities)


# General radiology phrasings beyond the gold set's (written by the team).
@pytest.mark.parametrize(("sentence", "kind", "modalities"), [
    ("The referring clinician was made aware of these findings.", "communication", []),
    ("Preliminary results were given to the emergency physician at 14:10.", "communication",
     []),
    ("Critical result reported to Dr. Adams at 9:05 am.", "communication", []),
    ("I spoke with Dr. Lee regarding these findings.", "communication", []),
    ("The patient was informed of the findings.", "communication", []),
    ("Correlate with point tenderness.", "clinical_correlation", []),
    ("Clinical correlation and follow-up as indicated.", "clinical_correlation", []),
    ("Lateral decubitus views could further evaluate for a layering effusion.", "imaging",
     ["XR"]),
    ("MRI would better evaluate the soft tissues.", "imaging", ["MR"]),
    ("A CT scan would help to exclude an underlying lesion.", "imaging", ["CT"]),
    ("Follow-up radiographs to document resolution.", "imaging", ["XR"]),
    ("Suggest contrast-enhanced CT of the chest.", "imaging", ["CT"]),
    ("Sonographic correlation is recommended.", "imaging", ["US"]),
    ("The patient may benefit from a CT scan of the chest.", "imaging", ["CT"]),
    ("Skeletal survey is recommended.", "imaging", ["XR"]),
    ("DMSA scan may be considered to evaluate for renal scarring.", "imaging", ["NM"]),
    ("The ED was notified.", "communication", []),
    ("Telephone notification to Dr. Wu at 10:00.", "communication", []),
    ("Correlation for aspiration is suggested.", "clinical_correlation", []),
    ("Please send prior outside films for comparison.", "comparison_with_prior", []),
    ("F/u CXR in 6 weeks to document resolution.", "imaging", ["XR"]),
    ("Rec CT chest.", "imaging", ["CT"]),
    ("The patient should have a follow-up chest x-ray in 6 weeks.", "imaging", ["XR"]),
    ("Please have the patient return for additional views.", "imaging", ["XR"]),
    ("A follow-up ultrasound is requested.", "imaging", ["US"]),
    ("MRI to further evaluate.", "imaging", ["MR"]),
])
def test_general_request_phrasings(analyze, sentence, kind, modalities):
    (rec,) = analyze(f"IMPRESSION: Small right pleural effusion. {sentence}").recommendations
    assert (rec.kind, rec.modalities) == (kind, modalities)


@pytest.mark.parametrize("sentence", [
    "The patient was called back for additional views, which are normal.",
    "The findings suggest chronic lung disease.",
    "Findings could be due to atelectasis.",
    "Correlation with the prior study shows no change.",
    "Lung volumes may be low due to poor inspiration.",
    "This is a follow-up study after antibiotic therapy.",
    "Repeat examination shows resolution of the infiltrate.",
    "Recommendation for follow-up was given on the prior report.",
    "CT was performed to further evaluate the nodule seen on the radiograph.",
    "Recurrent effusion on the right.",
])
def test_general_look_alikes_are_not_requests(analyze, sentence):
    assert analyze(f"IMPRESSION: Small right pleural effusion. {sentence}"
                   ).recommendations == []
