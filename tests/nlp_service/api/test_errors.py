"""Hostile and careless requests on a live service with auth on (issue 17): every error is a
4xx or an answer in its family (FHIR OperationOutcome, API ``{"detail"}``), logged in the access
log, never a traceback holding SQL parameters; search and numbers have limits; links and
redirects use the public URL; answers with patient data are never cached."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from loguru import logger
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from nlp_service.api.errors import REQUEST_ID_HEADER
from nlp_service.api.limits import MAX_SEARCH_PARAMETERS, MAX_SEARCH_VALUES
from nlp_service.api.main import create_app
from nlp_service.core.config import Settings
from nlp_service.fhir.mapping import patient_resource_id
from nlp_service.intake.hl7 import build_oru
from nlp_service.security import create_key
from nlp_service.storage.db import session_scope, with_statement_timeout
from nlp_service.storage.models import AccessLogEntry, AccessLogPatient, InboxMessage
from nlp_service.worker import Worker
from pipelines.pipeline import RadiologyPipeline
from tests.conftest import serving

MRN = "MRN-HARDEN-417"
REPORT = "FINDINGS: 5 mm nodule in the right upper lobe.\nIMPRESSION: Follow-up CT in 12 months."
PUBLIC_URL = "https://radnlp.example.org"


@dataclass
class Service:
    client: httpx.Client
    engine: Engine
    keys: dict[str, str]

    def get(self, url: str, role: str = "ehr", **kwargs: object) -> httpx.Response:
        return self.client.get(url, headers={"Authorization": f"Bearer {self.keys[role]}",
                                             **kwargs.pop("headers", {})},  # type: ignore[dict-item]
                               **kwargs)  # type: ignore[arg-type]

    def entries(self, path: str) -> list[AccessLogEntry]:
        with Session(self.engine) as session:
            return list(session.exec(select(AccessLogEntry).where(AccessLogEntry.path == path)
                                     .order_by(col(AccessLogEntry.id))).all())


@pytest.fixture
def service(engine: Engine, rules_pipeline: RadiologyPipeline) -> Iterator[Service]:
    settings = Settings(database_url="sqlite://", pipeline_mode="rules", secret_key="s",
                        public_url=PUBLIC_URL)
    app = create_app(settings, engine=engine, pipeline=rules_pipeline, run_migrations=False)
    with session_scope(engine) as session:
        keys = {role: create_key(session, name=role, roles=[role])[0]
                for role in ("ingest", "ehr", "auditor", "annotator", "admin")}
    with serving(app) as base, httpx.Client(base_url=base, timeout=60) as client:
        sent = client.post("/api/v1/hl7", content=build_oru(
            "H1", "ACC-H1", REPORT, mrn=MRN, procedure=("71250", "CT CHEST", "CPT4")),
            headers={"Authorization": f"Bearer {keys['ingest']}"})
        assert sent.status_code == 200
        Worker(engine, rules_pipeline).run_until_empty()
        yield Service(client, engine, keys)


def _outcome(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/fhir+json"), response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return str(body["issue"][0]["diagnostics"])


# --- Case 1: search size is capped before any query runs. ----------------------------------

def test_repeated_and_comma_separated_search_values_are_capped(
        service: Service, figures: Callable[[str], None]) -> None:
    repeated = [("identifier", f"X{i}") for i in range(300)]
    started = time.perf_counter()
    refused = service.get("/fhir/DiagnosticReport", params=repeated)
    elapsed = time.perf_counter() - started
    assert refused.status_code == 400
    assert f"at most {MAX_SEARCH_PARAMETERS}" in _outcome(refused)
    listed = service.get("/fhir/Patient", params={"identifier": ",".join(
        f"M{i}" for i in range(601))})
    assert listed.status_code == 400 and f"at most {MAX_SEARCH_VALUES}" in _outcome(listed)
    # Within the limits the search runs, and finds.
    allowed = service.get("/fhir/DiagnosticReport", params=[
        *[("identifier", f"X{i},ACC-H1") for i in range(MAX_SEARCH_PARAMETERS - 1)]])
    assert allowed.status_code == 200 and allowed.json()["total"] == 1
    assert [e.status for e in service.entries("/fhir/DiagnosticReport")] == [400, 200]
    figures(f"{service.engine.dialect.name}: 300 repeated identifiers answered "
            f"{refused.status_code} in {elapsed * 1000:.0f} ms")


def test_a_statement_past_the_timeout_is_cancelled(engine: Engine) -> None:
    limited = with_statement_timeout(engine, 0.2)
    slow = ("SELECT pg_sleep(5)" if engine.dialect.name == "postgresql" else
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1e9) "
            "SELECT count(*) FROM n")
    started = time.perf_counter()
    with pytest.raises(OperationalError) as cancelled, Session(limited) as session:
        session.exec(text(slow))  # type: ignore[call-overload]
    assert time.perf_counter() - started < 4  # cut short, not run to its end
    assert type(cancelled.value.orig).__name__ == "QueryCanceled" or (
        "interrupted" in str(cancelled.value.orig))
    with Session(limited) as session:  # the connection goes back to the pool usable
        assert session.exec(text("SELECT 1")).one() == (1,)  # type: ignore[call-overload]


# --- Case 6: numbers, JSON depth and cookies that used to answer 500. ----------------------

@pytest.mark.parametrize(("path", "params", "said"), [
    ("/fhir/DiagnosticReport", {"_count": "\u00b2"}, "is not an integer"),
    ("/fhir/DiagnosticReport", {"_offset": "\u00b2"}, "is not an integer"),
    ("/fhir/DiagnosticReport", {"_count": "\u0663"}, "is not an integer"),
    ("/fhir/DiagnosticReport/ACC-H1/_history/\u00b2", {}, "is not an integer"),
    ("/fhir/DiagnosticReport/ACC-H1/_history/99999999999999999999", {}, "out of range"),
    ("/fhir/DiagnosticReport", {"identifier": ",".join(["v"] * 500)}, "at most"),
    ("/fhir/DiagnosticReport", {"_lastUpdated": "ge2026-13-01"}, "not a FHIR date"),
])
def test_bad_numbers_and_values_are_400_outcomes_in_the_access_log(
        service: Service, path: str, params: dict[str, str], said: str) -> None:
    answer = service.get(path, params=params)
    assert answer.status_code == 400 and said in _outcome(answer)
    assert [e.status for e in service.entries(path)] == [400]


def test_a_count_of_any_length_is_read_as_the_largest_page(service: Service) -> None:
    answer = service.get("/fhir/DiagnosticReport", params={"_count": "9" * 5000})
    assert answer.status_code == 200 and answer.json()["total"] == 1


def test_a_json_body_nested_too_deep_is_refused_not_a_crash(service: Service) -> None:
    deep = b"[" * 50_000 + b"]" * 50_000
    for content_type in ("application/x-ndjson", "application/json", "text/plain"):
        answer = service.client.post(
            "/api/v1/annotations/import", content=deep,
            headers={"Authorization": f"Bearer {service.keys['annotator']}",
                     "Content-Type": content_type})
        assert answer.status_code in (400, 422), (content_type, answer.text[:200])
        assert "nested 50000 levels deep; at most 64" in answer.json()["detail"]


def test_a_session_cookie_that_is_not_ascii_is_401(service: Service) -> None:
    answer = service.client.get("/api/v1/reports",
                                headers={"Cookie": b"radnlp_session=abc.\xe9\xe9"})
    assert answer.status_code == 401 and "session" in answer.json()["detail"]


# --- Case 5: an unexpected failure is answered in its family; the log holds no PHI. --------

def test_an_internal_error_is_answered_logged_and_leaks_no_parameters(
        service: Service, caplog: pytest.LogCaptureFixture) -> None:
    lines: list[str] = []
    sink = logger.add(lines.append, level="DEBUG")
    try:
        with service.engine.begin() as connection:  # a fault the routes do not expect
            connection.execute(text("DROP TABLE fhir_search_token"))
        with caplog.at_level(logging.DEBUG):
            fhir = service.get("/fhir/Patient", params={"identifier": MRN})
            api = service.get("/api/v1/reports", role="auditor", params={"patient": MRN})
    finally:
        logger.remove(sink)
    assert fhir.status_code == 500 and "internal error (request" in _outcome(fhir)
    assert fhir.headers[REQUEST_ID_HEADER] in _outcome(fhir)
    assert api.status_code in (200, 500)  # the reports list does not read the search index
    # What the service logged (loguru, and uvicorn's loggers), not the test's HTTP client.
    logged = "\n".join([*lines, *(f"{r.getMessage()} {r.exc_text or ''} {r.exc_info or ''}"
                                  for r in caplog.records if r.name.startswith("uvicorn"))])
    assert fhir.headers[REQUEST_ID_HEADER] in logged
    assert MRN not in logged and "Traceback" not in logged
    assert [e.status for e in service.entries("/fhir/Patient")] == [500]


def test_set_aside_messages_hold_no_sql_parameters_and_their_reader_is_logged(
        engine: Engine, service: Service, rules_pipeline: RadiologyPipeline) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite stores an overlong value: the worker does not fail on it")
    parsed = {"control_id": "BYPASS", "version": "2.5.1", "message_type": "ORU^R01",
              "patient_mrn": "M" * 150, "patient_mrn_authority": None,
              "patient_birth_date": None, "sending_application": None,
              "sending_facility": None, "message_time": None,
              "reports": [{"accession": "ACC-BYPASS", "text": REPORT, "result_status": "F",
                           "placer_number": None, "procedure_code": None,
                           "procedure_name": None, "procedure_system": None, "modality": None,
                           "body_region": None, "observed_at": None,
                           "ordering_provider": None, "interpreter": None}]}
    with session_scope(engine) as session:  # stored before the intake checked lengths
        session.add(InboxMessage(control_id="BYPASS", sha256="0" * 64, raw="MSH|", source="t",
                                 parsed=parsed))
    Worker(engine, rules_pipeline, max_attempts=1).run_until_empty()
    inbox = service.get("/api/v1/hl7/inbox", role="admin")
    failed = inbox.json()["failed"]
    assert [f["control_id"] for f in failed] == ["BYPASS"]
    assert "StringDataRightTruncation" in failed[0]["last_error"]
    assert "M" * 150 not in failed[0]["last_error"]
    entry = service.entries("/api/v1/hl7/inbox")[-1]
    with Session(engine) as session:
        patients = session.exec(select(AccessLogPatient.patient_id).where(
            AccessLogPatient.entry_id == entry.id)).all()
    assert patients == [patient_resource_id("M" * 150, None)]


# --- Cases 10 and 12: no caching of patient data; links never from the Host header. --------

def test_the_report_page_and_api_answers_are_never_cached(service: Service) -> None:
    report_id = service.get("/api/v1/reports", role="auditor").json()["items"][0]["id"]
    page = service.get(f"/audit/reports/{report_id}", role="auditor")
    assert page.status_code == 200 and MRN in page.text
    assert page.headers["cache-control"] == "no-store"
    assert service.get("/fhir/DiagnosticReport").headers["cache-control"] == "no-store"


def test_links_and_redirects_use_the_public_url_not_the_host_header(service: Service) -> None:
    evil = {"Host": "evil.example"}
    bundle = service.get("/fhir/DiagnosticReport", params={"_count": "0"}, headers=evil).json()
    assert [link["url"] for link in bundle["link"]] == [
        f"{PUBLIC_URL}/fhir/DiagnosticReport?_count=0"]
    found = service.get("/fhir/DiagnosticReport", headers=evil).json()
    assert found["entry"][0]["fullUrl"].startswith(f"{PUBLIC_URL}/fhir/DiagnosticReport/")
    redirect = service.get("/api/v1/reports/", role="auditor", headers=evil)
    assert redirect.status_code == 307
    assert redirect.headers["location"] == f"{PUBLIC_URL}/api/v1/reports"


def test_a_fhir_answer_withheld_for_the_access_log_is_an_operation_outcome(
        service: Service) -> None:
    with service.engine.begin() as connection:
        connection.execute(text("DROP TABLE access_log_patient"))
        connection.execute(text("DROP TABLE access_log"))
    withheld = service.get("/fhir/DiagnosticReport")
    assert withheld.status_code == 503
    assert "could not be recorded" in _outcome(withheld) and MRN not in withheld.text
