"""FHIR Task and Communication resources of the work reports start: a Task to obtain each
tracked follow-up by its due date, owned by the ordering provider, and a Communication for a
documented critical-result notice; both searchable under /fhir."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from nlp_service.fhir.search import SEARCH_PARAMETERS, search_values
from nlp_service.intake.hl7 import build_oru
from nlp_service.intake.receiver import receive_message
from tests.conftest import LiveService

EXAM = datetime(2026, 9, 1, 10, 0, tzinfo=UTC)
TEXT = ("IMPRESSION: Large right tension pneumothorax. 7 mm solid nodule in the right upper "
        "lobe. Recommend follow-up CT chest in 6 months. Findings discussed with Dr. Ana Ruiz "
        "by telephone at 10:25, with read-back.")


def store(service: LiveService) -> None:
    message = build_oru("T1", "ACC-T1", TEXT, mrn="MRN-T1", observed_at=EXAM,
                        procedure=("71250", "CT CHEST WITHOUT CONTRAST", "CPT4"),
                        ordering_provider="D77^ORDER^OLIVIA")
    assert receive_message(service.engine, message.encode(), source="test").ack_code == "AA"
    service.drain()


def test_tasks_and_communications_are_written_and_searchable(
        live_service: LiveService) -> None:
    store(live_service)
    base = f"{live_service.base_url}/fhir"
    tasks = httpx.get(f"{base}/Task", params={"status": "requested"}).json()
    [task] = [entry["resource"] for entry in tasks["entry"]]
    assert task["description"] == "Obtain follow-up CT chest by 2027-02-28"  # 180 days
    assert task["focus"]["reference"].startswith("ServiceRequest/")
    assert "ORDER" in task["owner"]["display"]
    patient = task["for"]["reference"]
    assert httpx.get(f"{base}/Task", params={"patient": patient}).json()["total"] == 1
    assert httpx.get(f"{base}/Task", params={"focus": task["focus"]["reference"]}).json()[
        "total"] == 1
    notices = httpx.get(f"{base}/Communication", params={"patient": patient}).json()
    [notice] = [entry["resource"] for entry in notices["entry"]]
    assert notice["sent"] == "2026-09-01T10:25:00Z"
    assert notice["recipient"] == [{"display": "Ana Ruiz"}]
    assert notice["medium"][0]["coding"][0]["code"] == "PHONE"
    assert notice["note"] == [{"text": "read-back documented"}]
    assert any(ref["reference"].startswith("Observation/") for ref in notice["about"])
    assert httpx.get(f"{base}/Communication", params={"medium": "PHONE"}).json()["total"] == 1
    # Every search parameter of both types has values on what the service wrote.
    for resource, resource_type in ((task, "Task"), (notice, "Communication")):
        values = search_values({k: v for k, v in resource.items() if k != "meta"})
        found = ({p for p, _ in values.tokens} | {p for p, _ in values.references}
                 | {p for p, _, _ in values.dates})
        assert set(SEARCH_PARAMETERS[resource_type]) - found == {"_lastUpdated"}, resource_type


def test_storing_the_report_again_makes_no_new_version(live_service: LiveService) -> None:
    store(live_service)
    again = build_oru("T1-again", "ACC-T1", TEXT, mrn="MRN-T1", observed_at=EXAM,
                      procedure=("71250", "CT CHEST WITHOUT CONTRAST", "CPT4"),
                      ordering_provider="D77^ORDER^OLIVIA")
    assert receive_message(live_service.engine, again.encode(),
                           source="test").ack_code == "AA"
    live_service.drain()
    base = f"{live_service.base_url}/fhir"
    task = httpx.get(f"{base}/Task").json()["entry"][0]["resource"]
    assert task["meta"]["versionId"] == "1"


def test_the_task_follows_the_follow_up(live_service: LiveService) -> None:
    store(live_service)
    later = build_oru("T2", "ACC-T2", "IMPRESSION: The right upper lobe nodule is unchanged.",
                      mrn="MRN-T1", observed_at=datetime(2027, 2, 1, 9, 0, tzinfo=UTC),
                      procedure=("71250", "CT CHEST WITHOUT CONTRAST", "CPT4"))
    assert receive_message(live_service.engine, later.encode(), source="test").ack_code == "AA"
    live_service.drain()
    base = f"{live_service.base_url}/fhir"
    assert httpx.get(f"{base}/Task", params={"status": "requested"}).json()["total"] == 0
    [entry] = httpx.get(f"{base}/Task", params={"status": "completed"}).json()["entry"]
    assert entry["resource"]["meta"]["versionId"] == "2"
