"""Events written in the transaction that stores a report: the outbox rows, one delivery row per
target that wants each, the critical-finding and turnaround rows, and the FHIR Task and
Communication resources of the work they start.

Event ids are derived from what the event is about (a report's accession and finding or
recommendation), so storing a report again (a retried batch, a correction that keeps the
finding) makes no second event: at-least-once delivery, one event per fact.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from nlp_service.audit.critical import critical_row_values
from nlp_service.audit.rules import default_rules
from nlp_service.fhir.mapping import patient_resource_id
from nlp_service.notify.resources import (
    communication_id,
    communication_resource,
    task_id,
    task_resource,
)
from nlp_service.notify.subscriptions import matches_criteria
from nlp_service.storage.fhir_store import FhirWriter, content_search_values
from nlp_service.storage.models import (
    CriticalFinding,
    Delivery,
    NotificationTarget,
    OutboxEvent,
    Report,
    ReportTiming,
)
from nlp_service.storage.reports import ReportDraft, StoredReport

EVENT_NAMESPACE = uuid.UUID("5b0c1c9e-2f6a-4b8e-9d3a-6f1e0b7c4a21")
# What each kind of event is about; webhooks choose among these.
EVENT_KINDS = ("recommendation.created", "critical_finding.created",
               "critical_finding.not_communicated", "communication.documented",
               "follow_up.due_soon", "follow_up.due", "follow_up.overdue", "follow_up.escalated")
PRELIMINARY, FINAL = "P", ("F", "C")


def event_id(*parts: object) -> str:
    """The stable id (a UUID) of the event about ``parts``."""
    return str(uuid.uuid5(EVENT_NAMESPACE, "|".join(map(str, parts))))


class EventWriter:
    """Writes the events (and what goes with them) of stored report versions, within the
    caller's transaction."""

    def __init__(self, session: Session, fhir: FhirWriter, now: datetime) -> None:
        self.session = session
        self.fhir = fhir
        self.now = now
        self.targets = list(session.exec(select(NotificationTarget).where(
            col(NotificationTarget.status).in_(["active", "error", "requested"]))))
        self.tracked_kinds = set(default_rules().tracked_kinds)
        self._pending: list[tuple[OutboxEvent, dict[str, Any] | None]] = []
        # Rows added in this transaction (the store phase runs without autoflush).
        self._critical: dict[str, list[CriticalFinding]] = {}
        self._timings: dict[str, ReportTiming] = {}
        self._current_reports: dict[str, int] = {}

    def preload(self, drafts: Iterable[ReportDraft]) -> None:
        """Read what a batch needs in a query each: turnaround rows, Tasks, Communications."""
        drafts = list(drafts)
        self.fhir.prefetch([("Communication", communication_id(d.parsed.accession))
                            for d in drafts] + [
            ("Task", task_id(d.parsed.accession, row["index"]))
            for d in drafts for row in d.recommendation_rows
            if row["kind"] in self.tracked_kinds])
        wanted = [a for a in dict.fromkeys(d.parsed.accession for d in drafts)
                  if a not in self._timings]
        if wanted:
            for timing in self.session.exec(select(ReportTiming).where(
                    col(ReportTiming.accession).in_(wanted))):
                self._timings[timing.accession] = timing

    def record(self, stored: StoredReport, draft: ReportDraft) -> None:
        """The critical findings, turnaround times and events of a new current version."""
        report, analysis = stored.row, stored.analysis
        assert report.id is not None
        issued_at = draft.message.message_time or self.now
        # Earlier versions' rows stop being current at flush (one statement for the batch).
        self._current_reports[report.accession] = report.id
        for earlier in self._critical.pop(report.accession, []):
            earlier.is_current = False
        resources = {f"{r['resourceType']}/{r['id']}": r for r in draft.written}
        if report.entered_in_error:
            return
        patient = f"Patient/{patient_resource_id(report.patient_mrn, report.mrn_authority)}"
        observation_ids = {row["index"]: row["fhir_id"] for row in draft.finding_rows}
        critical = critical_row_values(analysis, exam_time=report.observed_at,
                                       issued_at=issued_at)
        for values in critical:
            observation = observation_ids.get(values["finding_index"])
            row = CriticalFinding(
                report_id=report.id, accession=report.accession, patient_mrn=report.patient_mrn,
                mrn_authority=report.mrn_authority, modality=report.modality,
                radiologist=report.interpreter, ordering_provider=report.ordering_provider,
                report_time=report.observed_at, reported_at=issued_at,
                observation_id=observation, **values)
            self.session.add(row)
            self._critical.setdefault(report.accession, []).append(row)
            focus = f"Observation/{observation}" if observation else None
            self._event("critical_finding.created", patient, report, focus,
                        resources.get(focus or ""), key=(values["finding_index"], values["rule"]),
                        data={"concept": values["concept"], "category": values["category"],
                              "target_minutes": values["target_minutes"],
                              "rule": values["rule"]})
        # "critical_finding.not_communicated" comes from the escalation schedule, once the
        # category's target time has passed with no communication documented.
        communicated = next((v for v in critical if v["communicated_at"] is not None), None)
        if communicated is not None:
            notice = communication_resource(report, patient, communicated,
                                            [f"Observation/{observation_ids[v['finding_index']]}"
                                             for v in critical
                                             if observation_ids.get(v["finding_index"])])
            self.fhir.put(notice, content_search_values(notice))
            self._event("communication.documented", patient, report,
                        f"Communication/{notice['id']}", notice, key=(),
                        data={"communicated_at": communicated["communicated_at"].isoformat(),
                              **(communicated["communication"] or {})})
        for rec in stored.recommendations:
            if rec.kind not in self.tracked_kinds:
                continue
            focus = f"ServiceRequest/{rec.fhir_id}"
            task = task_resource(report, patient, rec)
            self.fhir.put(task, content_search_values(task))
            self._event("recommendation.created", patient, report, focus, resources.get(focus),
                        key=(rec.index,), data={
                            "text": rec.text, "modalities": rec.modalities,
                            "body_region": rec.body_region,
                            "due_end": rec.due_end.isoformat() if rec.due_end else None,
                            "task": f"Task/{task['id']}"})
        self._timing(report, draft, issued_at, critical)

    def _timing(self, report: Report, draft: ReportDraft, issued_at: datetime,
                critical: list[dict[str, Any]]) -> None:
        timing = self._timings.get(report.accession)
        if timing is None:
            timing = ReportTiming(accession=report.accession, patient_mrn=report.patient_mrn)
        self._timings[report.accession] = timing
        timing.modality, timing.radiologist = report.modality, report.interpreter
        timing.exam_at = report.observed_at
        status = draft.parsed.result_status
        if status == PRELIMINARY and (timing.preliminary_at is None
                                      or issued_at < timing.preliminary_at):
            timing.preliminary_at = issued_at
        if status in FINAL and (timing.final_at is None or issued_at < timing.final_at):
            timing.final_at = issued_at
        times = [v["communicated_at"] for v in critical if v["communicated_at"] is not None]
        if times and (timing.communicated_at is None or min(times) < timing.communicated_at):
            timing.communicated_at = min(times)
        if critical:
            timing.critical_category = min(v["category"] for v in critical)
        self.session.add(timing)

    def _event(self, kind: str, patient: str, report: Report, focus: str | None,
               resource: dict[str, Any] | None, *, key: tuple[Any, ...],
               data: dict[str, Any]) -> None:
        identifier = event_id(kind, report.accession, *key)
        payload = {"event_id": identifier, "kind": kind, "occurred_at": self.now.isoformat(),
                   "patient": patient, "accession": report.accession, "focus": focus,
                   "report": f"DiagnosticReport/{report.fhir_id}", "data": data}
        event = OutboxEvent(event_id=identifier, kind=kind, patient_key=patient,
                            accession=report.accession, focus=focus, payload=payload,
                            created_at=self.now)
        self._pending.append((event, resource))

    def flush(self) -> None:
        """Retire earlier versions' critical rows; write the new events (those not written
        before) and their deliveries."""
        if self._current_reports:
            self.session.execute(update(CriticalFinding).where(
                col(CriticalFinding.accession).in_(list(self._current_reports)),
                col(CriticalFinding.report_id).not_in(list(self._current_reports.values())),
                col(CriticalFinding.is_current).is_(True)).values(is_current=False))
            self._current_reports = {}
        if not self._pending:
            return
        ids = [event.event_id for event, _ in self._pending]
        known = set(self.session.exec(select(OutboxEvent.event_id).where(
            col(OutboxEvent.event_id).in_(ids))))
        new = []
        for event, resource in self._pending:
            if event.event_id in known:
                continue
            known.add(event.event_id)
            self.session.add(event)
            new.append((event, resource))
        self._pending = []
        if not new:
            return
        self.session.flush()
        for event, resource in new:
            add_deliveries(self.session, event, resource, self.targets)


def add_deliveries(session: Session, event: OutboxEvent, resource: dict[str, Any] | None,
                   targets: Iterable[NotificationTarget]) -> None:
    """A pending delivery of ``event`` to each target that wants it."""
    assert event.id is not None
    for target in targets:
        if wants(target, event, resource):
            assert target.id is not None
            session.add(Delivery(event_id=event.id, target_id=target.id,
                                 patient_key=event.patient_key, next_attempt_at=event.created_at))


def wants(target: NotificationTarget, event: OutboxEvent,
          resource: dict[str, Any] | None) -> bool:
    """Whether ``target`` is to be told about ``event`` (whose focus is ``resource``)."""
    if target.status == "off":
        return False
    if target.kind == "webhook":
        return not target.event_kinds or event.kind in target.event_kinds
    return (resource is not None and target.criteria is not None
            and matches_criteria(target.criteria, resource))
