"""Analysis -> FHIR R4 resources, on an analysis made by the rules pipeline."""

from __future__ import annotations

import base64
import copy
import csv
import dataclasses
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.domainresource import DomainResource
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.servicerequest import ServiceRequest

from nlp_service.audit.rules import recommendation_due_window
from nlp_service.fhir import (
    ReportResources,
    build_report_resources,
    mark_entered_in_error,
    patient_resource_id,
    report_resource_id,
)
from nlp_service.fhir.mapping import (
    CPT_SYSTEM,
    DICOM_SYSTEM,
    EXTENSION_BASE,
    LOINC_SYSTEM,
    RADLEX_SYSTEM,
    SNOMED_SYSTEM,
    UCUM_SYSTEM,
)
from nlp_service.intake.message import ParsedReport
from pipelines.schema import AnatomyRef, FindingOut, Measurement, ReportAnalysis
from terminology.lexicon import RESOURCES, load_lexicon

TEXT = (
    "EXAM: CT CHEST WITHOUT CONTRAST\n"
    "INDICATION: Pulmonary nodule follow-up.\n"
    "FINDINGS: 4 mm nodule in the right upper lobe. A 1.2 x 0.8 cm mass in the left lower lobe."
    " No pneumothorax. Possible small left pleural effusion.\n"
    "IMPRESSION: 4 mm nodule in the right upper lobe.\n"
    "Recommend follow-up CT chest in 6-12 months per Fleischner.\n"
)
OBSERVED_AT = datetime(2026, 3, 1, 10, 30, tzinfo=timezone(timedelta(hours=-5)))
MRN, AUTHORITY = "MRN0012345", "HOSP"
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
MODELS: dict[str, type[DomainResource]] = {
    "DiagnosticReport": DiagnosticReport, "Observation": Observation, "Patient": Patient,
    "ServiceRequest": ServiceRequest,
}
PRESENCE = {"present": "52101004", "absent": "2667000", "possible": "410590009"}
HL7_CODES = {
    "http://terminology.hl7.org/CodeSystem/v2-0203": {"MR", "PLAC", "FILL", "ACSN"},
    "http://terminology.hl7.org/CodeSystem/v2-0074": {"RAD"},
    "http://terminology.hl7.org/CodeSystem/observation-category": {"imaging"},
}


def parsed_report(**changes: Any) -> ParsedReport:
    report = ParsedReport(
        accession="ACC1001", text=TEXT, result_status="F", placer_number="PL77",
        procedure_code="71250", procedure_name="CT CHEST WO CONTRAST", procedure_system="C4",
        modality="CT", body_region="chest", observed_at=OBSERVED_AT,
        ordering_provider="Dr Ordering", interpreter="Dr Reader",
    )
    return dataclasses.replace(report, **changes)


@pytest.fixture(scope="module")
def analysis(rules_pipeline) -> ReportAnalysis:
    return rules_pipeline.analyze(TEXT, "ACC1001")


def build(analysis: ReportAnalysis, **changes: Any) -> ReportResources:
    return build_report_resources(MRN, AUTHORITY, parsed_report(**changes), analysis)


@pytest.fixture(scope="module")
def resources(analysis) -> ReportResources:
    return build(analysis)


def index_of(analysis: ReportAnalysis, text: str, section: str) -> int:
    return next(i for i, f in enumerate(analysis.findings)
                if f.text.lower() == text and f.section == section)


def observation(resources: ReportResources, index: int) -> dict[str, Any]:
    rid = report_resource_id("ACC1001")
    return next(o for o in resources.observations if o["id"] == f"{rid}-f{index}")


def codings(value: Any) -> Iterator[dict[str, Any]]:
    """Every Coding inside a resource (any dict with system and code)."""
    if isinstance(value, dict):
        if "system" in value and "code" in value:
            yield value
        for item in value.values():
            yield from codings(item)
    elif isinstance(value, list):
        for item in value:
            yield from codings(item)


def test_every_resource_validates_with_r4b_models_and_has_no_meta(resources):
    everything = resources.all()
    assert len(everything) == 3 + len(resources.observations) + len(resources.service_requests)
    for resource in everything:
        model = MODELS[resource["resourceType"]]
        assert model.model_validate(resource).model_dump(mode="json",
                                                         exclude_none=True) == resource
        assert "meta" not in resource


def test_ids_are_deterministic_valid_and_derived_from_the_accession(analysis, resources):
    assert build(analysis) == resources
    rid = report_resource_id("ACC1001")
    assert rid == "ACC1001"
    assert resources.diagnostic_report["id"] == rid
    assert resources.order["id"] == f"{rid}-order"
    assert [r["id"] for r in resources.service_requests] == [
        f"{rid}-r{i}" for i in range(len(analysis.recommendations))]
    for resource in resources.all():
        assert FHIR_ID.fullmatch(resource["id"])


@pytest.mark.parametrize("accession", ["ACC/2026 0001", "x" * 80, "ACC.1-2", "ACC1-0123456789ab",
                                       "ÄÖÜ", "a/b", "a b"])
def test_report_resource_id_is_a_valid_fhir_id_with_room_for_suffixes(accession):
    rid = report_resource_id(accession)
    assert FHIR_ID.fullmatch(rid) and len(rid) <= 40
    assert FHIR_ID.fullmatch(f"{rid}-f12345")
    assert report_resource_id(accession) == rid


def test_report_resource_ids_never_collide():
    # "a/b" and "a b" slug alike, and a clean accession shaped like a hashed id is hashed too.
    hashed = report_resource_id("a/b")
    accessions = ["a/b", "a b", "a-b", hashed, "x" * 80, "x" * 81]
    ids = [report_resource_id(a) for a in accessions]
    assert len(set(ids)) == len(accessions)
    assert report_resource_id("ACC.1-2") == "ACC.1-2"


def test_report_resource_id_rejects_an_empty_accession():
    with pytest.raises(ValueError, match="empty"):
        report_resource_id("")


def test_patient_id_hides_the_mrn(resources):
    pid = patient_resource_id(MRN, AUTHORITY)
    assert re.fullmatch(r"p-[0-9a-f]{20}", pid)
    assert pid == patient_resource_id(MRN, AUTHORITY)
    assert pid != patient_resource_id(MRN, "OTHER") != patient_resource_id(MRN, None)
    for resource in resources.all():
        assert MRN not in resource["id"]
        if "subject" in resource:
            assert resource["subject"]["reference"] == f"Patient/{pid}"
    patient = resources.patient
    assert patient["id"] == pid and patient["active"] is True and "name" not in patient
    [identifier] = patient["identifier"]
    assert identifier["value"] == MRN and identifier["system"] == "urn:radnlp:mrn:HOSP"
    assert identifier["type"]["coding"][0]["code"] == "MR"


def test_diagnostic_report(analysis, resources):
    report = resources.diagnostic_report
    assert report["status"] == "final"
    assert report["identifier"][0]["system"] == "urn:radnlp:accession"
    assert report["identifier"][0]["value"] == "ACC1001"
    assert report["basedOn"] == [{"reference": "ServiceRequest/ACC1001-order"}]
    assert {"system": LOINC_SYSTEM, "code": "LP29684-5", "display": "Radiology"} in (
        report["category"][0]["coding"])
    assert report["code"]["coding"] == [{"system": CPT_SYSTEM, "code": "71250",
                                         "display": "CT CHEST WO CONTRAST"}]
    assert report["subject"]["identifier"]["value"] == MRN
    assert report["effectiveDateTime"] == "2026-03-01T10:30:00-05:00"
    assert report["resultsInterpreter"] == [{"display": "Dr Reader"}]
    [form] = report["presentedForm"]
    assert form["contentType"] == "text/plain; charset=utf-8"
    assert base64.b64decode(form["data"]).decode("utf-8") == TEXT
    assert report["conclusion"].startswith("4 mm nodule in the right upper lobe.")
    assert report["result"] == [{"reference": f"Observation/{o['id']}"}
                                for o in resources.observations]
    assert {"url": EXTENSION_BASE + "analysis-model-version",
            "valueString": analysis.model_version} in report["extension"]


def test_issued_and_a_local_procedure_code(analysis):
    issued = datetime(2026, 3, 1, 16, 0, tzinfo=UTC)
    resources = build_report_resources(MRN, None, parsed_report(procedure_system="L"),
                                       analysis, issued=issued,
                                       identifier_system="urn:example:acc")
    report = resources.diagnostic_report
    assert report["issued"] == "2026-03-01T16:00:00Z"
    assert report["code"] == {"text": "CT CHEST WO CONTRAST"}
    assert report["identifier"][0]["system"] == "urn:example:acc"
    assert resources.patient["identifier"][0]["system"] == "urn:radnlp:mrn"


def test_order_service_request(resources):
    order = resources.order
    assert (order["status"], order["intent"]) == ("completed", "order")
    types = {i["type"]["coding"][0]["code"]: i["value"] for i in order["identifier"]}
    assert types == {"PLAC": "PL77", "FILL": "ACC1001"}
    assert order["code"]["coding"][0]["system"] == CPT_SYSTEM


def test_indication_findings_get_no_observation(analysis, resources):
    indication = [i for i, f in enumerate(analysis.findings) if f.in_indication]
    assert indication, "the test report should have a finding in its indication"
    rid = report_resource_id("ACC1001")
    ids = {o["id"] for o in resources.observations}
    assert ids == {f"{rid}-f{i}" for i, f in enumerate(analysis.findings)
                   if not f.in_indication}
    assert not ids & {f"{rid}-f{i}" for i in indication}


def test_presence_codes_follow_the_assertion(analysis, resources):
    for obs in resources.observations:
        index = int(obs["id"].rsplit("-f", 1)[1])
        [coding] = obs["valueCodeableConcept"]["coding"]
        assert coding["system"] == SNOMED_SYSTEM
        assert coding["code"] == PRESENCE[analysis.findings[index].assertion]
    pneumothorax = observation(resources, index_of(analysis, "pneumothorax", "findings"))
    assert pneumothorax["valueCodeableConcept"]["coding"][0] == {
        "system": SNOMED_SYSTEM, "code": "2667000", "display": "Absent (qualifier value)"}
    effusion = observation(resources, index_of(analysis, "pleural effusion", "findings"))
    assert effusion["valueCodeableConcept"]["coding"][0]["code"] == "410590009"
    nodule = observation(resources, index_of(analysis, "nodule", "findings"))
    assert nodule["valueCodeableConcept"]["coding"][0]["code"] == "52101004"


def test_observation_code_body_site_and_extensions(analysis, resources):
    index = index_of(analysis, "pneumothorax", "findings")
    obs = observation(resources, index)
    assert obs["status"] == "final"
    assert obs["identifier"] == [{"system": "urn:radnlp:accession/finding",
                                  "value": f"ACC1001-f{index}"}]
    assert obs["basedOn"] == [{"reference": "ServiceRequest/ACC1001-order"}]
    assert obs["category"][0]["coding"][0]["code"] == "imaging"
    assert {"system": SNOMED_SYSTEM, "code": "36118008", "display": "Pneumothorax (disorder)"} in (
        obs["code"]["coding"])
    assert {c["system"] for c in obs["code"]["coding"]} == {SNOMED_SYSTEM, RADLEX_SYSTEM}
    assert obs["code"]["text"] == "pneumothorax"
    extensions = {e["url"].removeprefix(EXTENSION_BASE): e for e in obs["extension"]}
    span = {e["url"]: next(v for k, v in e.items() if k.startswith("value"))
            for e in extensions["text-span"]["extension"]}
    finding = analysis.findings[index]
    assert span == {"start": finding.start, "end": finding.end, "section": "findings",
                    "text": finding.text}
    assert TEXT[span["start"]:span["end"]] == finding.text
    assert extensions["historical"]["valueBoolean"] is False
    assert extensions["score"]["valueDecimal"] == finding.score
    nodule = observation(resources, index_of(analysis, "nodule", "findings"))
    assert nodule["bodySite"]["text"] == "right upper lobe"
    assert {"system": SNOMED_SYSTEM, "code": "42400003",
            "display": "Structure of upper lobe of right lung"} in nodule["bodySite"]["coding"]
    effusion = observation(resources, index_of(analysis, "pleural effusion", "findings"))
    assert effusion["bodySite"] == {"text": "left"}


def test_measurements_are_components_in_mm(analysis, resources):
    nodule = observation(resources, index_of(analysis, "nodule", "findings"))
    [size] = nodule["component"]
    assert size["code"] == {"text": "size"}
    assert size["valueQuantity"] == {"value": 4.0, "unit": "mm", "system": UCUM_SYSTEM,
                                     "code": "mm"}
    mass = observation(resources, index_of(analysis, "mass", "findings"))
    assert [c["code"]["text"] for c in mass["component"]] == ["size dimension 1",
                                                             "size dimension 2"]
    assert [c["valueQuantity"]["value"] for c in mass["component"]] == [12.0, 8.0]
    assert {c["valueQuantity"]["unit"] for c in mass["component"]} == {"mm"}


def test_laterality_qualifiers_and_volumes_on_a_hand_made_finding(analysis):
    finding = FindingOut(
        text="collection", start=0, end=10, laterality="left",
        anatomy=AnatomyRef(name="lung", radlex="RID1301", snomed="39607008"),
        measurements=[
            Measurement(value=1.0, unit="cm", text="subcentimeter", qualifier="subcentimeter"),
            Measurement(value=15.0, unit="mL", text="15 mL"),
        ],
        change="increased", historical=True,
    )
    resources = build(analysis.model_copy(update={"findings": [finding],
                                                  "recommendations": []}))
    [obs] = resources.observations
    assert obs["code"] == {"text": "collection"}
    assert obs["bodySite"]["text"] == "left lung"
    assert {c["code"] for c in obs["bodySite"]["coding"]} == {"RID1301", "39607008"}
    size, volume = obs["component"]
    assert size["valueQuantity"]["comparator"] == "<"
    assert size["valueQuantity"]["value"] == 10.0
    assert volume["code"] == {"text": "volume"} and volume["valueString"] == "15 mL"
    assert "valueQuantity" not in volume
    extensions = {e["url"].removeprefix(EXTENSION_BASE): e for e in obs["extension"]}
    assert extensions["change"]["valueCode"] == "increased"
    assert extensions["historical"]["valueBoolean"] is True


def test_recommendation_service_request(analysis, resources):
    [recommendation] = analysis.recommendations
    [request] = resources.service_requests
    assert (request["status"], request["intent"], request["priority"]) == (
        "draft", "proposal", "routine")
    assert request["code"] == {"coding": [{"system": DICOM_SYSTEM, "code": "CT"}],
                               "text": "CT chest"}
    assert recommendation.finding_index is not None
    assert request["reasonReference"] == [
        {"reference": f"Observation/ACC1001-f{recommendation.finding_index}"}]
    assert request["reasonReference"][0]["reference"].removeprefix("Observation/") in {
        o["id"] for o in resources.observations}
    assert request["occurrencePeriod"] == {
        "start": (OBSERVED_AT + timedelta(days=180)).isoformat(),
        "end": (OBSERVED_AT + timedelta(days=365)).isoformat(),
    }
    assert request["authoredOn"] == OBSERVED_AT.isoformat()
    assert request["note"] == [{"text": recommendation.text}]
    extensions = {e["url"].removeprefix(EXTENSION_BASE): e for e in request["extension"]}
    assert extensions["guideline"]["valueString"] == recommendation.guideline
    assert extensions["conditional"]["valueBoolean"] is False


def test_recommendation_about_an_indication_finding_gives_its_reason_as_text(analysis):
    indication = next(i for i, f in enumerate(analysis.findings) if f.in_indication)
    [recommendation] = analysis.recommendations
    changed = recommendation.model_copy(update={
        "finding_index": indication, "interval_min_days": None, "interval_max_days": 90,
        "modality": "XR", "modalities": ["XR"]})
    [request] = build(analysis.model_copy(update={"recommendations": [changed]})).service_requests
    assert "reasonReference" not in request
    assert request["reasonCode"] == [{"text": analysis.findings[indication].concept.name}]
    end = (OBSERVED_AT + timedelta(days=90)).isoformat()
    assert request["occurrencePeriod"] == {"start": end, "end": end}
    # XR is the lexicon's umbrella for CR and DX, not a DICOM code.
    assert request["code"] == {"text": "XR chest"}


def test_recommendation_without_an_interval_gets_the_default_window_marked_as_such(analysis):
    [recommendation] = analysis.recommendations
    changed = recommendation.model_copy(update={
        "interval_min_days": None, "interval_max_days": None, "finding_index": None})
    [request] = build(analysis.model_copy(update={"recommendations": [changed]})).service_requests
    assert "reasonCode" not in request
    # The same window the follow-up tracking uses: the rules' default for CT, 0-90 days.
    window = recommendation_due_window(OBSERVED_AT, changed, analysis.findings)
    assert window.default and (window.end - window.start).days == 90
    assert request["occurrencePeriod"] == {"start": OBSERVED_AT.isoformat(),
                                           "end": window.end.isoformat()}
    extensions = {e["url"].removeprefix(EXTENSION_BASE): e for e in request["extension"]}
    assert extensions["default-due-window"]["valueBoolean"] is True
    stated = build(analysis).service_requests[0]
    assert "default-due-window" not in {e["url"].removeprefix(EXTENSION_BASE)
                                        for e in stated["extension"]}


def test_alternatives_are_one_request_with_a_coding_per_modality(analysis):
    [recommendation] = analysis.recommendations
    changed = recommendation.model_copy(update={
        "modality": "CT", "modalities": ["CT", "MR"], "body_region": "abdomen"})
    [request] = build(analysis.model_copy(update={"recommendations": [changed]})).service_requests
    assert request["code"]["text"] == "CT or MR abdomen"
    assert [c["code"] for c in request["code"]["coding"]] == ["CT", "MR"]
    extensions = {e["url"].removeprefix(EXTENSION_BASE): e for e in request["extension"]}
    assert extensions["recommendation-kind"]["valueCode"] == "imaging"


def test_a_clinical_correlation_request_is_not_an_imaging_request(analysis):
    [recommendation] = analysis.recommendations
    changed = recommendation.model_copy(update={
        "kind": "clinical_correlation", "modality": None, "modalities": []})
    [request] = build(analysis.model_copy(update={"recommendations": [changed]})).service_requests
    assert request["code"] == {"text": "Clinical correlation"}
    assert request["category"] == [{"text": "Clinical correlation"}]


def test_recommendation_with_a_bad_finding_index_is_refused(analysis):
    [recommendation] = analysis.recommendations
    changed = recommendation.model_copy(update={"finding_index": 99})
    with pytest.raises(ValueError, match="finding_index 99"):
        build(analysis.model_copy(update={"recommendations": [changed]}))


@pytest.mark.parametrize(("result_status", "report_status", "observation_status"), [
    ("P", "preliminary", "preliminary"),
    ("F", "final", "final"),
    ("C", "corrected", "amended"),
    ("X", "entered-in-error", "entered-in-error"),
])
def test_result_status_mapping(analysis, result_status, report_status, observation_status):
    resources = build(analysis, result_status=result_status)
    assert resources.diagnostic_report["status"] == report_status
    assert {o["status"] for o in resources.observations} == {observation_status}
    cancelled = result_status == "X"
    assert resources.order["status"] == ("revoked" if cancelled else "completed")
    assert {r["status"] for r in resources.service_requests} == {
        "entered-in-error" if cancelled else "draft"}


def test_mark_entered_in_error_returns_a_validated_copy(resources):
    for resource in [resources.diagnostic_report, resources.order,
                     *resources.observations, *resources.service_requests]:
        before = copy.deepcopy(resource)
        marked = mark_entered_in_error(resource)
        assert marked["status"] == "entered-in-error"
        assert resource == before
        assert {k: v for k, v in marked.items() if k != "status"} == {
            k: v for k, v in resource.items() if k != "status"}
    with pytest.raises(ValueError, match="no status"):
        mark_entered_in_error(resources.patient)


def test_naive_observation_time_is_refused(analysis):
    with pytest.raises(ValueError, match="timezone-aware"):
        build(analysis, observed_at=datetime(2026, 3, 1, 10, 30))


def test_a_report_without_time_or_procedure_still_validates(analysis):
    resources = build(analysis, observed_at=None, procedure_code=None, procedure_name=None,
                      procedure_system=None, placer_number=None, interpreter=None)
    report = resources.diagnostic_report
    assert "effectiveDateTime" not in report and "resultsInterpreter" not in report
    assert report["code"] == {"text": "CT chest"}
    assert [i["type"]["coding"][0]["code"] for i in resources.order["identifier"]] == ["FILL"]
    assert all("occurrencePeriod" not in r for r in resources.service_requests)


def test_every_code_comes_from_the_project_terminology(resources):
    lexicon = load_lexicon()
    with (RESOURCES / "snomed_verified.csv").open(encoding="utf-8") as rows:
        verified = {row["snomed_code"]: row["snomed_display"] for row in csv.DictReader(rows)}
    snomed = {c.snomed for c in lexicon.concepts if c.snomed} | set(verified)
    radlex = {c.radlex for c in lexicon.concepts if c.radlex}
    dicom = {c.code for c in lexicon.of_kind("modality") if c.code}
    seen = set()
    for resource in resources.all():
        for coding in codings(resource):
            system, code = coding["system"], coding["code"]
            seen.add(system)
            if system == SNOMED_SYSTEM:
                assert code in snomed
                if code in verified and "display" in coding:
                    assert coding["display"] == verified[code]
            elif system == RADLEX_SYSTEM:
                assert code in radlex
            elif system == DICOM_SYSTEM:
                assert code in dicom
            elif system == LOINC_SYSTEM:
                assert code == "LP29684-5"
            elif system == CPT_SYSTEM:
                assert code == "71250"  # received in OBR-4
            elif system == UCUM_SYSTEM:
                assert code == "mm"
            else:
                assert code in HL7_CODES[system], (system, code)
    assert {SNOMED_SYSTEM, RADLEX_SYSTEM, DICOM_SYSTEM, LOINC_SYSTEM, UCUM_SYSTEM} <= seen
