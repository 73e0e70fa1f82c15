"""The FHIR REST API on a live server, read by fhirpy as an EHR would, after the sample
messages went in over a real MLLP socket."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhirpy import SyncFHIRClient
from hl7.client import MLLPClient
from sqlmodel import Session, col, select

from nlp_service.fhir import EXTENSION_BASE
from nlp_service.intake.client import SAMPLES_DIR, read_messages
from nlp_service.storage.models import Report
from pipelines.pipeline import RadiologyPipeline
from tests.conftest import LiveService

PRESENCE = {"52101004": "present", "2667000": "absent", "410590009": "possible"}
MODELS = {"DiagnosticReport": DiagnosticReport, "Observation": Observation,
          "ServiceRequest": ServiceRequest}


@pytest.fixture
def loaded(live_service: LiveService) -> LiveService:
    """The live service after every sample was sent over MLLP and processed."""
    with MLLPClient("127.0.0.1", live_service.mllp_port) as client:
        for _, message in read_messages(sorted(SAMPLES_DIR.glob("*.hl7"))):
            assert "MSA|AA|" in client.send_message(message).decode()
    live_service.drain()
    return live_service


def _fhir(service: LiveService) -> SyncFHIRClient:
    return SyncFHIRClient(f"{service.base_url}/fhir")


def _plain(bundle: Any) -> dict[str, Any]:
    """A Bundle from fhirpy's ``fetch_raw`` as plain JSON data."""
    entries = [{**entry, "resource": entry["resource"].serialize()}
               for entry in bundle.get("entry", [])]
    return {**bundle, "entry": entries} if entries else dict(bundle)


def _span(observation: dict[str, Any]) -> tuple[int, int]:
    span = next(e for e in observation["extension"] if e["url"] == EXTENSION_BASE + "text-span")
    parts = {e["url"]: e for e in span["extension"]}
    return parts["start"]["valueInteger"], parts["end"]["valueInteger"]


def _presence(observation: dict[str, Any]) -> str:
    codes = [c["code"] for c in observation["valueCodeableConcept"]["coding"]]
    return next(PRESENCE[c] for c in codes if c in PRESENCE)


def test_every_sample_reads_back_as_fhir_matching_the_analysis(
        loaded: LiveService, rules_pipeline: RadiologyPipeline) -> None:
    client = _fhir(loaded)
    with Session(loaded.engine) as session:
        reports = session.exec(select(Report).where(col(Report.is_current))).all()
    assert len(reports) >= 20
    compared = 0
    for report in reports:
        bundle = _plain(client.resources("DiagnosticReport").search(
            identifier=report.accession).fetch_raw())
        Bundle.model_validate(bundle)
        assert bundle["total"] == 1, report.accession
        diagnostic_report = bundle["entry"][0]["resource"]
        DiagnosticReport.model_validate(diagnostic_report)
        if report.entered_in_error:
            assert diagnostic_report["status"] == "entered-in-error"
            continue
        observations = [client.reference(reference=r["reference"]).to_resource().serialize()
                        for r in diagnostic_report.get("result", [])]
        for observation in observations:
            Observation.model_validate(observation)
        expected = rules_pipeline.analyze(report.text, report.accession)
        assert sorted((_span(o), _presence(o)) for o in observations) == sorted(
            ((f.start, f.end), f.assertion) for f in expected.findings if not f.in_indication)
        compared += 1
    assert compared >= 15


def test_search_parameters_paging_and_include(loaded: LiveService) -> None:
    client = _fhir(loaded)
    everything = client.resources("Observation").search(_count=500).fetch_raw()
    total = everything["total"]
    assert total > 20
    paged = client.resources("Observation").search(_count=7).fetch_all()
    assert len(paged) == total
    assert len({o["id"] for o in paged}) == total
    absent = client.resources("Observation").search(
        **{"value-concept": "http://snomed.info/sct|2667000"}).fetch_all()
    assert absent and all(_presence(o.serialize()) == "absent" for o in absent)
    first = absent[0].serialize()
    patient_ref = first["subject"]["reference"]
    by_patient = client.resources("Observation").search(patient=patient_ref).fetch_all()
    assert first["id"] in {o["id"] for o in by_patient}
    assert all(o["subject"]["reference"] == patient_ref for o in by_patient)
    with_results = client.resources("DiagnosticReport").search(
        _include="DiagnosticReport:result", _count=3).fetch_raw()
    modes = [e["search"]["mode"] for e in with_results["entry"]]
    assert modes.count("match") == 3 and "include" in modes


def test_recommendations_are_proposals_linked_to_their_finding(loaded: LiveService) -> None:
    client = _fhir(loaded)
    proposals = client.resources("ServiceRequest").search(intent="proposal").fetch_all()
    assert len(proposals) >= 8
    # The samples' follow-ups that a later sample exam answered are completed.
    statuses = {p.serialize()["status"] for p in proposals}
    assert {"draft", "completed"} <= statuses
    linked = 0
    for proposal in proposals:
        request = proposal.serialize()
        ServiceRequest.model_validate(request)
        for reason in request.get("reasonReference", []):
            observation = client.reference(reference=reason["reference"]).to_resource()
            assert observation["resourceType"] == "Observation"
            found = client.resources("ServiceRequest").search(
                **{"reason-reference": reason["reference"]}).fetch_all()
            assert request["id"] in {r["id"] for r in found}
            linked += 1
    assert linked >= 3
    due = [p.serialize()["occurrencePeriod"] for p in proposals
           if "occurrencePeriod" in p.serialize()]
    assert due
    start = due[0]["start"]  # with its offset: a bare date is a UTC day
    window = client.resources("ServiceRequest").search(
        occurrence=[f"le{start}", f"ge{start}"]).fetch_all()
    assert any(r.serialize().get("occurrencePeriod") == due[0] for r in window)


def test_corrected_report_keeps_its_versions(loaded: LiveService) -> None:
    with Session(loaded.engine) as session:
        corrected = session.exec(select(Report).where(col(Report.is_current),
                                                      Report.result_status == "C")).first()
    assert corrected is not None, "the samples include a correction"
    url = f"{loaded.base_url}/fhir/DiagnosticReport/{corrected.fhir_id}"
    history = httpx.get(f"{url}/_history").json()
    Bundle.model_validate(history)
    versions = [e["resource"]["meta"]["versionId"] for e in history["entry"]]
    assert len(versions) >= 2 and versions == sorted(versions, key=int, reverse=True)
    first = httpx.get(f"{url}/_history/1")
    assert first.status_code == 200 and first.headers["etag"] == 'W/"1"'
    assert first.json()["status"] != "corrected"
    assert httpx.get(url).json()["status"] == "corrected"


def test_metadata_and_errors_speak_fhir(live_service: LiveService) -> None:
    base = f"{live_service.base_url}/fhir"
    metadata = httpx.get(f"{base}/metadata")
    assert metadata.headers["content-type"].startswith("application/fhir+json")
    statement = CapabilityStatement.model_validate(metadata.json())
    assert statement.fhirVersion == "4.0.1"
    cases = [(f"{base}/Encounter/1", 404), (f"{base}/Observation/does-not-exist", 404),
             (f"{base}/Observation?colour=blue", 400), (f"{base}/Observation?date=yesterday", 400),
             (f"{base}/Observation?_count=lots", 400),
             (f"{base}/DiagnosticReport/x/_history/one", 400)]
    for url, status in cases:
        response = httpx.get(url)
        assert response.status_code == status, url
        assert response.headers["content-type"].startswith("application/fhir+json")
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome", url
        assert outcome["issue"][0]["diagnostics"]
