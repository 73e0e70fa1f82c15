"""The audit API on a live service: worklist with filters and CSV, decisions with history,
summaries, measures, the FHIR ServiceRequest status following the tracking, and the
``radnlp audit`` command on the same database."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import httpx

from nlp_service.intake.hl7 import build_oru
from tests.conftest import LiveService
from tests.nlp_service.test_service_cli import radnlp

HL7_TYPE = {"content-type": "x-application/hl7-v2+er7"}
CT_CHEST = ("71250", "CT CHEST WITHOUT CONTRAST", "CPT4")
NODULE = ("FINDINGS: 7 mm solid nodule in the right upper lobe.\nIMPRESSION: 7 mm right upper "
          "lobe nodule. Recommend follow-up CT chest in 3 months per Fleischner Society "
          "guidelines.")
CLEAR = "FINDINGS: Lungs are clear.\nIMPRESSION: No acute abnormality."
AS_OF = "2026-01-01T00:00:00+00:00"


def _post(service: LiveService, control: str, accession: str, mrn: str, text: str,
          when: datetime) -> None:
    message = build_oru(control, accession, text, mrn=mrn, observed_at=when,
                        procedure=CT_CHEST, birth_date=date(1960, 1, 1),
                        ordering_provider="12^ORDER^OLIVIA", interpreter="77&READ&RITA")
    response = httpx.post(f"{service.base_url}/api/v1/hl7", content=message.encode(),
                          headers=HL7_TYPE)
    assert response.status_code == 200, response.text


def _load(service: LiveService) -> None:
    _post(service, "A1", "ACC-DONE", "MRN-1", NODULE, datetime(2025, 1, 10, 9, tzinfo=UTC))
    _post(service, "A2", "ACC-LATE", "MRN-2", NODULE, datetime(2025, 2, 10, 9, tzinfo=UTC))
    _post(service, "A3", "ACC-DONE-EXAM", "MRN-1", CLEAR, datetime(2025, 3, 1, 9, tzinfo=UTC))
    service.drain()


def test_worklist_filters_csv_and_history(live_service: LiveService) -> None:
    _load(live_service)
    api = f"{live_service.base_url}/api/v1/audit"
    everything = httpx.get(f"{api}/recommendations", params={"as_of": AS_OF}).json()
    states = {item["accession"]: item["status"] for item in everything["items"]}
    assert states == {"ACC-DONE": "completed_on_time", "ACC-LATE": "overdue"}
    overdue = httpx.get(f"{api}/recommendations", params={"as_of": AS_OF,
                                                          "status": "overdue"}).json()
    assert [item["accession"] for item in overdue["items"]] == ["ACC-LATE"]
    assert overdue["items"][0]["guideline_verdict"] is not None
    exported = httpx.get(f"{api}/recommendations", params={"as_of": AS_OF, "format": "csv"})
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {row["accession"]: row["status"] for row in rows} == states
    before = httpx.get(f"{api}/recommendations", params={"as_of": "2025-02-01"}).json()
    assert {i["accession"]: i["status"] for i in before["items"]} == {"ACC-DONE": "open"}
    done = next(i for i in everything["items"] if i["accession"] == "ACC-DONE")
    detail = httpx.get(f"{api}/recommendations/{done['id']}").json()
    assert [event["kind"] for event in detail["history"]] == ["created", "completed"]
    for params in ({"status": "lost"}, {"sort": "colour"}, {"as_of": "yesterday"}):
        assert httpx.get(f"{api}/recommendations", params=params).status_code == 422
    assert httpx.get(f"{api}/recommendations/999999").status_code == 404


def test_decisions_are_kept_and_drive_the_fhir_request(live_service: LiveService) -> None:
    _load(live_service)
    base = live_service.base_url
    api = f"{base}/api/v1/audit"
    items = httpx.get(f"{api}/recommendations").json()["items"]
    done = next(i for i in items if i["accession"] == "ACC-DONE")
    late = next(i for i in items if i["accession"] == "ACC-LATE")
    request_of = {i["accession"]: httpx.get(f"{api}/recommendations/{i['id']}").json()["fhir_id"]
                  for i in (done, late)}
    fhir = f"{base}/fhir/ServiceRequest"
    assert httpx.get(f"{fhir}/{request_of['ACC-DONE']}").json()["status"] == "completed"
    assert httpx.get(f"{fhir}/{request_of['ACC-LATE']}").json()["status"] == "draft"
    # Access control is off here: the actor is "unauthenticated" (with keys, the key's name:
    # tests/nlp_service/api/test_worklist_actions.py).
    decision = {"status": "not_needed", "reason": "patient declined further imaging"}
    answer = httpx.post(f"{api}/recommendations/{late['id']}/decision", json=decision)
    assert answer.status_code == 200 and answer.json()["status"] == "not_needed"
    assert httpx.get(f"{fhir}/{request_of['ACC-LATE']}").json()["status"] == "revoked"
    history = httpx.get(f"{api}/recommendations/{late['id']}").json()["history"]
    assert (history[-1]["kind"], history[-1]["actor"], history[-1]["reason"]) == (
        "manual", "unauthenticated", "patient declined further imaging")
    undo = httpx.post(f"{api}/recommendations/{late['id']}/decision",
                      json={"status": "open", "reason": "decision entered by mistake"})
    assert undo.json()["status"] == "overdue"
    assert httpx.get(f"{fhir}/{request_of['ACC-LATE']}").json()["status"] == "draft"
    versions = httpx.get(f"{fhir}/{request_of['ACC-LATE']}/_history").json()["total"]
    assert versions == 3  # draft, revoked, draft again
    # No free-text actor: who decided is the calling key.
    for bad in ({"status": "lost", "reason": "x"}, {"status": "cancelled", "reason": ""},
                {"status": "cancelled", "reason": "   "},
                {"status": "cancelled", "reason": "x", "actor": "someone else"}):
        assert httpx.post(f"{api}/recommendations/{late['id']}/decision",
                          json=bad).status_code == 422
    assert httpx.post(f"{api}/recommendations/999999/decision",
                      json=decision).status_code == 404


def test_summary_measures_and_the_cli_agree(live_service: LiveService) -> None:
    _load(live_service)
    api = f"{live_service.base_url}/api/v1/audit"
    summary = httpx.get(f"{api}/summary", params={"as_of": AS_OF,
                                                  "group_by": "radiologist"}).json()
    assert summary["overall"]["completed_on_time"] == 1
    assert summary["overall"]["overdue"] == 1
    assert summary["overall"]["completion_rate"] == 0.5
    assert [(g["key"], g["total"]) for g in summary["groups"]] == [("READ, RITA (77)", 2)]
    table = httpx.get(f"{api}/summary", params={"as_of": AS_OF, "group_by": "month",
                                                "format": "csv"}).text
    assert [row["key"] for row in csv.DictReader(io.StringIO(table))] == ["2025-01", "2025-02"]
    assert httpx.get(f"{api}/summary", params={"group_by": "colour"}).status_code == 422
    m364 = httpx.get(f"{api}/measures/364", params={"as_of": AS_OF}).json()
    assert (m364["numerator"], m364["denominator"]) == (2, 2)
    assert sorted(m364["reports"]["numerator"]) == ["ACC-DONE", "ACC-LATE"]
    assert httpx.get(f"{api}/measures/999").status_code == 404
    if live_service.engine.dialect.name != "sqlite":
        return  # the command reaches the database by URL; the test's PostgreSQL schema is not
    url = live_service.engine.url.render_as_string(hide_password=False)
    env = {"RADNLP_DATABASE_URL": url}
    listed = radnlp("audit", "recommendations", "--status", "overdue", "--as-of", AS_OF,
                    "--csv", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [row["accession"] for row in csv.DictReader(io.StringIO(listed.stdout))] == [
        "ACC-LATE"]
    measured = radnlp("audit", "measure", "364", "--as-of", AS_OF, env=env)
    assert measured.returncode == 0 and '"numerator": 2' in measured.stdout
    wrong = radnlp("audit", "measure", "999", env=env)
    assert wrong.returncode == 2 and "364, 405, 406" in wrong.stderr
