"""The one vocabulary of modalities and body regions (``terminology.vocabulary``)."""

from __future__ import annotations

import pytest

from terminology import load_lexicon
from terminology.vocabulary import (
    DICOM_MODALITY_CODES,
    REGION_NAMES,
    concept_region,
    is_dicom_code,
    modality_code,
    modality_codes,
    modality_display,
    modality_mentions,
    modality_region,
    region_concept,
    region_name,
    region_names,
    region_within,
)


@pytest.mark.parametrize(("text", "code"), [
    ("CT", "CT"), ("CTA", "CT"), ("CT angiogram", "CT"), ("CAT scan", "CT"),
    ("computed tomography", "CT"), ("LDCT", "CT"),
    ("MRI", "MR"), ("MRA", "MR"), ("MR", "MR"), ("MR angiography", "MR"), ("MRCP", "MR"),
    ("ultrasound", "US"), ("sonogram", "US"), ("US", "US"), ("duplex", "US"),
    ("PET", "PT"), ("PET/CT", "PT"), ("PET-CT", "PT"), ("PET CT", "PT"), ("FDG PET", "PT"),
    ("CR", "XR"), ("DX", "XR"), ("XR", "XR"), ("x-ray", "XR"), ("X-rays", "XR"),
    ("xray", "XR"), ("radiograph", "XR"), ("radiographs", "XR"), ("views", "XR"),
    ("films", "XR"), ("series", "XR"), ("decubitus film", "XR"), ("chest radiograph", "XR"),
    ("CXR", "XR"),
    ("upper GI series", "RF"), ("upper GI", "RF"), ("fluoroscopy", "RF"), ("esophagram", "RF"),
    ("VCUG", "RF"), ("barium enema", "RF"), ("small bowel follow-through", "RF"),
    ("mammogram", "MG"), ("mammo", "MG"), ("screening mammography", "MG"),
    ("digital breast tomosynthesis", "MG"),
    ("bone scan", "NM"), ("V/Q scan", "NM"), ("scintigraphy", "NM"), ("NM", "NM"),
    ("angiography", "XA"), ("angiogram", "XA"), ("catheter angiography", "XA"),
])
def test_modality_code_of_every_wording(text: str, code: str) -> None:
    assert modality_code(text) == code


@pytest.mark.parametrize(("text", "code"), [
    ("Recommend follow-up CT chest in 6-12 months.", "CT"),
    ("Further evaluation with chest CT would be helpful.", "CT"),
    ("Dedicated rib views may be obtained if there is concern for fracture.", "XR"),
    ("PA and lateral radiographs may be of benefit.", "XR"),
    ("Left lateral decubitus films could be obtained.", "XR"),
    ("An upper GI series is suggested.", "RF"),
    ("CT ABD & PELVIS W/O CONTRAST", "CT"),
    ("XR CHEST 2 VIEWS", "XR"),
    ("PET/CT SKULL BASE TO MID-THIGH", "PT"),
    ("us abdomen complete", "US"),  # a text without capitals: abbreviations in any case
    ("Renal mass protocol MRI is recommended.", "MR"),
    ("Consider a CT angiogram of the chest or a V/Q scan.", "CT"),
])
def test_modality_code_in_sentences_and_procedure_names(text: str, code: str) -> None:
    assert modality_code(text) == code


@pytest.mark.parametrize("text", [
    None, "", "Correlate clinically.", "SPECIAL PROCEDURE", "CHEST",
    "Please let us know if further imaging is needed.",  # "us", not ultrasound
    "Nodule on series 3, image 45.",  # an image reference, not a radiograph series
    "In view of the findings, correlation is advised.",
    "Discussed with the patient.",  # "pt" and "us" in lowercase words are no modality
])
def test_no_modality(text: str | None) -> None:
    assert modality_code(text) is None
    assert modality_codes(text) == []


def test_short_abbreviations_match_case_sensitively_in_mixed_case_text() -> None:
    assert modality_code("Follow up with us in clinic; Mr Smith agreed.") is None
    assert modality_code("Follow up with US of the neck.") == "US"


@pytest.mark.parametrize(("text", "codes"), [
    ("adrenal protocol CT or chemical shift MRI", ["CT", "MR"]),
    ("ultrasound or MRI of the pelvis", ["US", "MR"]),
    ("MRI or CT, then CT again in 12 months", ["MR", "CT"]),
    ("Consider PET/CT, CT in 3 months, or tissue sampling.", ["PT", "CT"]),
    ("CT chest (series 4, image 12) and PA and lateral views", ["CT", "XR"]),
])
def test_modality_codes_are_the_alternatives_in_text_order(text: str,
                                                            codes: list[str]) -> None:
    assert modality_codes(text) == codes


def test_mentions_give_the_report_words_and_offsets() -> None:
    text = "Recommend PET/CT or chest radiographs."
    mentions = modality_mentions(text)
    assert [(m.text, m.value) for m in mentions] == [("PET/CT", "PT"),
                                                      ("chest radiographs", "XR")]
    assert all(text[m.start:m.end] == m.text for m in mentions)


def test_codes_display_and_implied_region() -> None:
    assert {"CT", "MR", "US", "XR", "MG", "NM", "PT", "RF", "XA"} == DICOM_MODALITY_CODES
    assert modality_display("MR") == "magnetic resonance imaging"
    assert modality_display("CT") == "computed tomography"
    assert modality_display("XR") == "radiography"
    assert modality_display("MRI") == "magnetic resonance imaging"  # any wording
    assert modality_display("OT") is None
    assert modality_region("MG") == "breast"
    assert modality_region("mammogram") == "breast"
    assert [code for code in sorted(DICOM_MODALITY_CODES) if modality_region(code)] == ["MG"]
    assert is_dicom_code("CT") and is_dicom_code("PT") and not is_dicom_code("XR")
    assert not is_dicom_code("CR")  # not a vocabulary code (it reads as XR)


@pytest.mark.parametrize(("text", "region"), [
    ("chest", "chest"), ("thorax", "chest"), ("lung", "chest"), ("lungs", "chest"),
    ("rib", "chest"), ("Dedicated rib views", "chest"), ("right upper lobe", "chest"),
    ("abdomen", "abdomen"), ("abdominal ultrasound", "abdomen"), ("adrenal", "abdomen"),
    ("pelvis", "pelvis"), ("pelvic ultrasound", "pelvis"),
    ("abdomen and pelvis", "abdomen/pelvis"), ("abdomen/pelvis", "abdomen/pelvis"),
    ("CT ABD & PELVIS W/O CONTRAST", "abdomen/pelvis"),
    ("abdominal and pelvic CT", "abdomen/pelvis"),
    ("CT of the chest, abdomen, and pelvis", "chest/abdomen/pelvis"),
    ("chest/abdomen/pelvis", "chest/abdomen/pelvis"),
    ("head", "head"), ("MRI BRAIN", "head"), ("skull", "head"),
    ("neck", "neck"), ("head and neck", "head/neck"), ("head & neck", "head/neck"),
    ("spine", "spine"), ("MRI LUMBAR SPINE", "spine"), ("thoracic spine", "spine"),
    ("C-spine", "spine"),
    ("breast", "breast"), ("limb", "extremity"), ("extremities", "extremity"),
    ("arm", "upper extremity"), ("wrist", "upper extremity"),
    ("knee", "lower extremity"), ("MRI KNEE RIGHT", "lower extremity"),
    ("hip", "lower extremity"),
    ("thyroid", "thyroid"), ("US THYROID", "thyroid"),
    ("renal", "kidney"), ("kidneys", "kidney"), ("US RENAL COMPLETE", "kidney"),
    ("liver", "liver"), ("right upper quadrant", "liver"),
    ("heart", "heart"), ("cardiac MRI", "heart"),
    ("whole body", "whole body"), ("skull base to mid-thigh", "whole body"),
])
def test_region_name_of_every_wording(text: str, region: str) -> None:
    assert region_name(text) == region


def test_region_names_in_text_order() -> None:
    assert region_names("CT chest and MRI abdomen") == ["chest", "abdomen"]
    assert region_names("CT chest, then CT of the chest and abdomen") == ["chest", "abdomen"]
    assert region_names("Recommend clinical correlation.") == []
    assert region_name(None) is None


def test_every_reported_region_reads_as_itself() -> None:
    assert {"chest", "abdomen", "pelvis", "abdomen/pelvis", "chest/abdomen/pelvis", "head",
            "neck", "head/neck", "spine", "breast", "extremity", "upper extremity",
            "lower extremity", "thyroid", "kidney", "liver", "heart", "whole body"} == REGION_NAMES
    for name in REGION_NAMES:
        assert region_name(name) == name
        concept = region_concept(name)
        assert concept is not None and concept_region(concept) == name


def test_concept_regions_cover_anatomy_findings_and_modalities() -> None:
    lexicon = load_lexicon()
    assert concept_region(lexicon.get("right_upper_lobe")) == "chest"
    assert concept_region(lexicon.get("kidney_region")) == "kidney"
    assert concept_region(lexicon.get("mg")) == "breast"
    assert concept_region(lexicon.get("ct")) is None
    findings = {c.region: concept_region(c) for c in lexicon.of_kind("finding")}
    assert findings["neuro"] == "head"
    assert findings["chest"] == "chest" and findings["thyroid"] == "thyroid"
    assert findings["msk"] is None and findings["general"] is None
    for concept in lexicon.of_kind("anatomy"):  # every anatomy concept has a reported region
        assert concept_region(concept) in REGION_NAMES, concept.id


@pytest.mark.parametrize(("inner", "outer", "within"), [
    ("kidney", "abdomen", True), ("liver", "abdomen", True), ("heart", "chest", True),
    ("thyroid", "neck", True), ("thyroid", "head/neck", True), ("abdomen", "abdomen", True),
    ("abdomen", "abdomen/pelvis", True), ("kidney", "abdomen/pelvis", True),
    ("abdomen/pelvis", "chest/abdomen/pelvis", True),
    ("upper extremity", "extremity", True),
    ("abdomen", "chest", False), ("abdomen/pelvis", "abdomen", False),
    ("chest", "heart", False), ("neck", "thyroid", False), (None, "chest", False),
])
def test_region_within(inner: str | None, outer: str, within: bool) -> None:
    assert region_within(inner, outer) is within
