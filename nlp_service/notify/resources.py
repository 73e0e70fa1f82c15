"""FHIR R4 Task and Communication resources for the work the reports start: a Task to obtain
each tracked follow-up ("Obtain follow-up CT chest by 2027-03-01"), owned by the ordering
provider, and a Communication for each documented critical-result notice.

Codes: ``medium`` from the HL7 v3 ParticipationMode code system (PHONE, FACE, ONLINEWRIT,
EMAILWRIT, FAXWRIT, VERBAL: codes of terminology.hl7.org/CodeSystem/v3-ParticipationMode);
the rest is text.
"""

from __future__ import annotations

import hashlib
from typing import Any

from nlp_service.fhir.mapping import fhir_datetime, validate_resource
from nlp_service.storage.fhir_store import FhirWriter
from nlp_service.storage.models import FollowUp, Recommendation, Report

# HL7 CommunicationCategory (terminology.hl7.org): alert, notification, reminder, instruction.
COMMUNICATION_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/communication-category"
PARTICIPATION_MODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ParticipationMode"
# Communication method (pipelines.schema.CommunicationMethod) -> v3 ParticipationMode code.
MEDIUM = {"telephone": ("PHONE", "telephone"), "in_person": ("FACE", "face-to-face"),
          "secure_message": ("ONLINEWRIT", "online written"), "email": ("EMAILWRIT", "email"),
          "fax": ("FAXWRIT", "telefax"), "verbal": ("VERBAL", "verbal")}


def _id(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:32]


def task_id(accession: str, rec_index: int) -> str:
    return _id("task", accession, rec_index)


def communication_id(accession: str) -> str:
    return _id("communication", accession)


def task_resource(report: Report, patient: str, rec: Recommendation) -> dict[str, Any]:
    """The Task of obtaining a recommended follow-up by the end of its due window."""
    what = " or ".join(rec.modalities) or "follow-up"
    exam = f"follow-up {what} {rec.body_region or ''}".strip() if rec.modalities else (
        "the recommended follow-up")
    description = f"Obtain {exam}" + (f" by {rec.due_end.date().isoformat()}"
                                      if rec.due_end else "")
    task: dict[str, Any] = {
        "resourceType": "Task", "id": task_id(report.accession, rec.index),
        "identifier": [{"system": "urn:radnlp:follow-up",
                        "value": f"{report.accession}-r{rec.index}"}],
        "status": "requested", "intent": "plan", "description": description,
        "code": {"text": "obtain follow-up"},
        "focus": {"reference": f"ServiceRequest/{rec.fhir_id}"},
        "for": {"reference": patient},
        "reasonReference": {"reference": f"DiagnosticReport/{report.fhir_id}"},
    }
    if report.observed_at is not None:
        task["authoredOn"] = fhir_datetime(report.observed_at)
    if rec.due_end is not None:
        task["restriction"] = {"period": {"end": fhir_datetime(rec.due_end)}}
    if report.ordering_provider:
        task["owner"] = {"display": report.ordering_provider}
    return validate_resource(task)


def sync_task(fhir: FhirWriter, follow_up: FollowUp) -> None:
    """A follow-up's Task follows its tracking: completed when an exam (or a decision that it
    was done elsewhere) closed it, cancelled when it was decided against or withdrawn."""
    current = fhir.current("Task", task_id(follow_up.accession, follow_up.rec_index))
    if current is None:
        return
    decision = follow_up.manual_status
    if follow_up.withdrawn_at is not None or decision in (
            "not_needed", "cancelled", "not_a_recommendation"):
        status = "cancelled"
    elif follow_up.completed_at is not None or decision == "completed_elsewhere":
        status = "completed"
    else:
        status = "requested"
    if current.get("status") != status:
        fhir.put({**current, "status": status})


def communication_resource(report: Report, patient: str, critical: dict[str, Any],
                           observations: list[str]) -> dict[str, Any]:
    """The Communication of a critical result that ``report`` documents."""
    details = critical["communication"] or {}
    notice: dict[str, Any] = {
        "resourceType": "Communication", "id": communication_id(report.accession),
        "identifier": [{"system": "urn:radnlp:critical-result-notice",
                        "value": report.accession}],
        "status": "completed",
        "category": [{"coding": [{"system": COMMUNICATION_CATEGORY_SYSTEM, "code": "alert",
                                  "display": "Alert"}],
                      "text": "critical result notification"}],
        "subject": {"reference": patient},
        "about": [{"reference": reference} for reference in
                  [f"DiagnosticReport/{report.fhir_id}", *observations]],
        "sent": fhir_datetime(critical["communicated_at"]),
        "payload": [{"contentString": details.get("text") or "critical result communicated"}],
    }
    if details.get("recipient"):
        notice["recipient"] = [{"display": details["recipient"]}]
    if report.interpreter:
        notice["sender"] = {"display": report.interpreter}
    medium = MEDIUM.get(details.get("method") or "")
    if medium is not None:
        notice["medium"] = [{"coding": [{"system": PARTICIPATION_MODE_SYSTEM,
                                         "code": medium[0], "display": medium[1]}]}]
    if details.get("read_back"):
        notice["note"] = [{"text": "read-back documented"}]
    return validate_resource(notice)
