"""The escalation schedule: reminders before the due date, at it, once overdue and an
escalation after, each an event sent once per follow-up, by the finding's or modality's
schedule; none once the follow-up is done. The steps reach a real webhook in order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import select

from benchmarks.receiver import Receiver
from nlp_service.intake.hl7 import build_oru
from nlp_service.intake.receiver import receive_message
from nlp_service.notify.dispatcher import IDEMPOTENCY_HEADER, Backoff, Dispatcher
from nlp_service.notify.escalation import EscalationSchedule, escalate, escalation_schedule
from nlp_service.notify.subscriptions import create_webhook
from nlp_service.storage.db import session_scope
from nlp_service.storage.models import FollowUp
from nlp_service.worker import Worker
from pipelines.pipeline import RadiologyPipeline

EXAM = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
CT = ("71250", "CT CHEST WITHOUT CONTRAST", "CPT4")
NODULE = ("IMPRESSION: 7 mm solid pulmonary nodule in the right upper lobe. Recommend follow-up CT "
          "chest in 3 months.")


def send(engine: Engine, control_id: str, accession: str, text: str, when: datetime) -> None:
    message = build_oru(control_id, accession, text, mrn="MRN-ESC", observed_at=when,
                        procedure=CT)
    assert receive_message(engine, message.encode(), source="test").ack_code == "AA"


def kinds_at(engine: Engine, when: datetime) -> list[str]:
    with session_scope(engine) as session:
        return [event.kind for event in escalate(session, when)]


def test_the_schedule_steps_come_due_once_each(engine: Engine,
                                               rules_pipeline: RadiologyPipeline) -> None:
    receiver = Receiver().start()
    try:
        with session_scope(engine) as session:
            create_webhook(session, url=receiver.url, event_kinds=[
                "follow_up.due_soon", "follow_up.due", "follow_up.overdue",
                "follow_up.escalated"])
        send(engine, "E1", "ACC-E1", NODULE, EXAM)
        Worker(engine, rules_pipeline).run_until_empty()
        with session_scope(engine) as session:
            follow_up = session.exec(select(FollowUp)).one()
            due = follow_up.due_end
            assert follow_up.finding == "pulmonary nodule"
        steps = escalation_schedule().steps_for(follow_up)
        assert [s.days_from_due for s in steps] == [-21, 0, 1, 21]  # the finding's schedule
        assert kinds_at(engine, due - timedelta(days=22)) == []
        assert kinds_at(engine, due - timedelta(days=21)) == ["follow_up.due_soon"]
        assert kinds_at(engine, due - timedelta(days=20)) == []  # once
        assert kinds_at(engine, due + timedelta(days=1, hours=1)) == [
            "follow_up.due", "follow_up.overdue"]
        assert kinds_at(engine, due + timedelta(days=21, hours=1)) == ["follow_up.escalated"]
        assert kinds_at(engine, due + timedelta(days=60)) == []
        dispatcher = Dispatcher(engine, backoff=Backoff(0.05, 0.2))
        assert dispatcher.run_until_idle().delivered == 4
        received = receiver.wait_for(4)
        assert [r.json()["kind"] for r in received] == [
            "follow_up.due_soon", "follow_up.due", "follow_up.overdue", "follow_up.escalated"]
        assert len({r.headers[IDEMPOTENCY_HEADER] for r in received}) == 4
        assert received[0].json()["focus"].startswith("Task/")
    finally:
        receiver.stop()


def test_a_completed_follow_up_is_not_reminded(engine: Engine,
                                               rules_pipeline: RadiologyPipeline) -> None:
    send(engine, "E2", "ACC-E2", NODULE, EXAM)
    send(engine, "E3", "ACC-E3", "IMPRESSION: The nodule is unchanged.", EXAM + timedelta(80))
    Worker(engine, rules_pipeline).run_until_empty()
    with session_scope(engine) as session:
        follow_up = session.exec(select(FollowUp).where(
            FollowUp.accession == "ACC-E2")).one()
        assert follow_up.completed_at is not None
        due = follow_up.due_end
    assert kinds_at(engine, due + timedelta(days=40)) == []


def test_the_modality_schedule_applies_without_a_finding_schedule() -> None:
    schedule = EscalationSchedule.load()
    mammogram = FollowUp(accession="A", rec_index=0, recommendation_id=1, source_report_id=1,
                         patient_mrn="M", report_time=EXAM, modality="MG", modalities=["MG"],
                         text="t", start=0, end=1, due_start=EXAM, due_end=EXAM,
                         late_after=EXAM, fhir_id="x")
    assert schedule.steps_for(mammogram)[0].days_from_due == -30
    mammogram.modalities, mammogram.modality = ["US"], "US"
    assert schedule.steps_for(mammogram) == schedule.default


def test_a_critical_finding_left_uncommunicated_past_its_target_is_an_event(
        engine: Engine, rules_pipeline: RadiologyPipeline) -> None:
    send(engine, "U1", "ACC-U1", "IMPRESSION: Large left tension pneumothorax.", EXAM)
    send(engine, "U2", "ACC-U2", "IMPRESSION: Right tension pneumothorax. Discussed with "
         "Dr. Ana Ruiz by telephone at 09:40.", EXAM)
    Worker(engine, rules_pipeline).run_until_empty()
    assert kinds_at(engine, EXAM + timedelta(minutes=59)) == []  # category 1: 60 minutes
    with session_scope(engine) as session:
        [event] = escalate(session, EXAM + timedelta(minutes=61))
        assert (event.kind, event.accession) == ("critical_finding.not_communicated", "ACC-U1")
        assert event.payload["data"]["category"] == 1
        assert event.focus is not None and event.focus.startswith("Observation/")
    assert kinds_at(engine, EXAM + timedelta(hours=5)) == []  # once
