"""The follow-up rules speak the one vocabulary: every modality and region they name is one
intake and the pipeline produce, and the region hierarchy agrees with the lexicon's."""

from __future__ import annotations

import pytest

from nlp_service.audit.rules import default_rules
from nlp_service.intake.hl7 import build_oru, parse_oru
from terminology import load_lexicon
from terminology.vocabulary import (
    DICOM_MODALITY_CODES,
    REGION_NAMES,
    concept_region,
    modality_codes,
    region_name,
)


def test_rules_name_only_vocabulary_codes_and_regions() -> None:
    rules = default_rules()
    assert set(rules.satisfying_modalities) == DICOM_MODALITY_CODES
    for requested, exams in rules.satisfying_modalities.items():
        assert requested in exams, requested  # a request is always met by its own modality
        assert set(exams) <= DICOM_MODALITY_CODES
    for region, contained in rules.contained_regions.items():
        assert region in REGION_NAMES
        assert set(contained) <= REGION_NAMES


def test_contained_regions_include_the_lexicon_hierarchy() -> None:
    rules = default_rules()
    for concept in load_lexicon().of_kind("body_region"):
        if concept.parent:
            parent = concept_region(load_lexicon().get(concept.parent))
            assert parent is not None
            assert concept_region(concept) in rules.covered_regions(parent), concept.id


@pytest.mark.parametrize(("request_text", "obr4", "satisfied"), [
    # What the pipeline's words ask for against what intake reads from an OBR-4.
    ("CT chest", "71250^CT CHEST WITHOUT CONTRAST^CPT4", True),
    ("CT chest", "71260^^CPT4", True),
    ("chest CT", "74177^CT ABDOMEN AND PELVIS^CPT4", False),
    ("CT chest", "RPID16^CT Chest wo^RADLEX", True),
    ("CT chest", "78815^PET/CT SKULL BASE TO MID-THIGH^CPT4", False),  # PET/CT is not a CT
    ("MRI abdomen", "74183^MRI ABDOMEN WITHOUT AND WITH CONTRAST^CPT4", True),
    ("MRI of the liver", "74183^MRI ABDOMEN^CPT4", True),  # the abdomen covers the liver
    ("MRI abdomen", "74177^CT ABDOMEN AND PELVIS^CPT4", False),
    ("adrenal protocol CT or chemical shift MRI", "74183^MRI ABDOMEN^CPT4", True),
    ("chest radiographs", "71046^XR CHEST 2 VIEWS^CPT4", True),
    ("PA and lateral views of the chest", "71250^CT CHEST^CPT4", True),  # CT answers XR
    ("chest x-ray", "RPID2503^XR Chest 2V^RADLEX", True),
    ("thyroid ultrasound", "76536^US SOFT TISSUES HEAD AND NECK^CPT4", True),
    ("thyroid ultrasound", "76536^US THYROID^CPT4", True),
    ("renal ultrasound", "76770^US RETROPERITONEAL COMPLETE^CPT4", True),
    ("renal ultrasound", "76770^US RENAL COMPLETE^CPT4", True),
    ("mammogram", "77067^SCREENING MAMMOGRAPHY BILATERAL^CPT4", True),
    ("breast MRI", "77067^SCREENING MAMMOGRAPHY BILATERAL^CPT4", False),
    ("CT abdomen and pelvis", "RPID145^CT Abd/Pelv w^RADLEX", True),
    ("CT chest, abdomen and pelvis", "71260^CT CHEST WITH CONTRAST^CPT4", False),
])
def test_exam_from_its_procedure_code_closes_the_request(request_text: str, obr4: str,
                                                         satisfied: bool) -> None:
    rules = default_rules()
    wanted, region = modality_codes(request_text), region_name(request_text)
    code, name, system = obr4.split("^")
    raw = build_oru("C1", "ACC1", "Text.", mrn="MRN1", procedure=(code, name, system),
                    modality="RAD")
    report = parse_oru(raw).reports[0]
    assert (rules.modality_satisfied(wanted, report.modality)
            and rules.region_satisfied(region, report.body_region)) is satisfied
