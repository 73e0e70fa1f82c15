"""The escalation schedule (``resources/escalation.json``): reminders before an open follow-up
is due, at its due date, once it is overdue, and an escalation after, each step an event sent
once per follow-up (its id is derived from the follow-up and the step). And the critical
findings whose category's target time has passed with no communication documented in the
current version of their report: one ``critical_finding.not_communicated`` per report.

``escalate`` writes the steps that have come due; the dispatcher runs it every so often, and
``radnlp notify escalate`` runs it by hand (with ``--as-of`` to replay a date).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlmodel import Session, col, select

from nlp_service.audit.rules import default_rules
from nlp_service.audit.tracking import status_at
from nlp_service.fhir.mapping import patient_resource_id
from nlp_service.notify.events import EVENT_KINDS, add_deliveries, event_id
from nlp_service.notify.resources import task_id
from nlp_service.storage.fhir_store import current_resource
from nlp_service.storage.models import (
    CriticalFinding,
    FollowUp,
    NotificationTarget,
    OutboxEvent,
)

SCHEDULE_FILE = Path(__file__).parent / "resources" / "escalation.json"


@dataclass(frozen=True)
class Step:
    event: str
    days_from_due: int


@dataclass(frozen=True)
class EscalationSchedule:
    default: tuple[Step, ...]
    by_modality: dict[str, tuple[Step, ...]]
    by_finding: dict[str, tuple[Step, ...]]

    @classmethod
    def load(cls, path: Path = SCHEDULE_FILE) -> EscalationSchedule:
        data = json.loads(path.read_text())

        def steps(items: list[dict[str, object]]) -> tuple[Step, ...]:
            result = tuple(Step(str(item["event"]), int(str(item["days_from_due"])))
                           for item in items)
            unknown = {step.event for step in result} - set(EVENT_KINDS)
            if unknown:
                raise ValueError(f"escalation schedule: unknown events {sorted(unknown)}")
            return result

        return cls(steps(data["default"]),
                   {k: steps(v) for k, v in data.get("by_modality", {}).items()},
                   {k.lower(): steps(v) for k, v in data.get("by_finding", {}).items()})

    def steps_for(self, follow_up: FollowUp) -> tuple[Step, ...]:
        if follow_up.finding and follow_up.finding.lower() in self.by_finding:
            return self.by_finding[follow_up.finding.lower()]
        for modality in follow_up.modalities or ([follow_up.modality]
                                                 if follow_up.modality else []):
            if modality in self.by_modality:
                return self.by_modality[modality]
        return self.default

    @property
    def earliest_days(self) -> int:
        every = [*self.default, *(s for v in self.by_modality.values() for s in v),
                 *(s for v in self.by_finding.values() for s in v)]
        return min(step.days_from_due for step in every)


@functools.cache
def escalation_schedule() -> EscalationSchedule:
    return EscalationSchedule.load()


def escalate(session: Session, now: datetime,
             schedule: EscalationSchedule | None = None) -> list[OutboxEvent]:
    """Write the events of the schedule's steps that have come due by ``now`` for open and
    overdue follow-ups (each once), with their deliveries; the new events."""
    schedule = schedule or escalation_schedule()
    horizon = now - timedelta(days=schedule.earliest_days)
    follow_ups = session.exec(select(FollowUp).where(
        col(FollowUp.kind).in_(default_rules().tracked_kinds),
        col(FollowUp.due_end) <= horizon,
        status_at(now).in_(["open", "overdue"])).order_by(col(FollowUp.id))).all()
    due: list[tuple[FollowUp, Step, str]] = []
    for follow_up in follow_ups:
        for step in schedule.steps_for(follow_up):
            if follow_up.due_end + timedelta(days=step.days_from_due) <= now:
                due.append((follow_up, step, event_id(step.event, follow_up.accession,
                                                      follow_up.rec_index)))
    uncommunicated = _uncommunicated(session, now)
    identifiers = [identifier for *_, identifier in due] + list(uncommunicated)
    if not identifiers:
        return []
    known = set(session.exec(select(OutboxEvent.event_id).where(
        col(OutboxEvent.event_id).in_(identifiers))))
    targets = list(session.exec(select(NotificationTarget).where(
        col(NotificationTarget.status) != "off")))
    written = []
    for identifier, rows in uncommunicated.items():
        if identifier in known:
            continue
        first = rows[0]
        patient = f"Patient/{patient_resource_id(first.patient_mrn, first.mrn_authority)}"
        focus = f"Observation/{first.observation_id}" if first.observation_id else None
        observation = (current_resource(session, "Observation", first.observation_id)
                       if first.observation_id else None)
        event = OutboxEvent(
            event_id=identifier, kind="critical_finding.not_communicated", patient_key=patient,
            accession=first.accession, focus=focus, created_at=now, payload={
                "event_id": identifier, "kind": "critical_finding.not_communicated",
                "occurred_at": now.isoformat(), "patient": patient,
                "accession": first.accession, "focus": focus, "report": None, "data": {
                    "concepts": [row.concept for row in rows],
                    "category": min(row.category for row in rows),
                    "report_time": first.report_time.isoformat() if first.report_time
                    else None, "radiologist": first.radiologist}})
        session.add(event)
        session.flush()
        add_deliveries(session, event, observation.resource if observation else None, targets)
        written.append(event)
    for follow_up, step, identifier in due:
        if identifier in known:
            continue
        patient = f"Patient/{patient_resource_id(follow_up.patient_mrn, follow_up.mrn_authority)}"
        focus = f"Task/{task_id(follow_up.accession, follow_up.rec_index)}"
        task = current_resource(session, "Task", focus.partition("/")[2])
        event = OutboxEvent(
            event_id=identifier, kind=step.event, patient_key=patient,
            accession=follow_up.accession, focus=focus, created_at=now, payload={
                "event_id": identifier, "kind": step.event, "occurred_at": now.isoformat(),
                "patient": patient, "accession": follow_up.accession, "focus": focus,
                "report": None, "data": {
                    "follow_up_id": follow_up.id, "text": follow_up.text,
                    "due_end": follow_up.due_end.isoformat(),
                    "days_from_due": step.days_from_due,
                    "ordering_provider": follow_up.ordering_provider}})
        session.add(event)
        session.flush()
        add_deliveries(session, event, task.resource if task else None, targets)
        written.append(event)
    return written


def _uncommunicated(session: Session, now: datetime) -> dict[str, list[CriticalFinding]]:
    """Event id -> the current critical findings of a report with no documented communication
    whose category's target time has passed by ``now``."""
    rows = session.exec(select(CriticalFinding).where(
        col(CriticalFinding.is_current).is_(True),
        col(CriticalFinding.communicated_at).is_(None),
        col(CriticalFinding.report_time).is_not(None),
        col(CriticalFinding.report_time) <= now).order_by(col(CriticalFinding.id))).all()
    late: dict[str, list[CriticalFinding]] = {}
    for row in rows:
        assert row.report_time is not None
        if row.report_time + timedelta(minutes=row.target_minutes) <= now:
            late.setdefault(event_id("critical_finding.not_communicated", row.accession),
                            []).append(row)
    return late
