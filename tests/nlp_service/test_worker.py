"""The batch worker: storage of analysed reports, versions, leases, retries, set-aside."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlmodel import Session, col, select

from nlp_service.intake.hl7 import build_oru
from nlp_service.intake.receiver import receive_message
from nlp_service.storage.models import (
    FhirResource,
    Finding,
    FollowUp,
    FollowUpEvent,
    InboxMessage,
    MeasureResult,
    Recommendation,
    Report,
    utcnow,
)
from nlp_service.worker import Worker
from pipelines.pipeline import RadiologyPipeline

NODULE_REPORT = [
    "EXAM: CT chest without contrast.",
    "INDICATION: Cough.",
    "FINDINGS: 6 mm solid nodule in the right upper lobe. No pneumothorax or pleural effusion.",
    "Possible mild bronchiectasis.",
    "IMPRESSION: 6 mm right upper lobe nodule. Recommend follow-up CT chest in 6-12 months "
    "per Fleischner Society guidelines.",
]
CORRECTED_REPORT = [
    "EXAM: CT chest without contrast.",
    "FINDINGS: 6 mm solid nodule in the right upper lobe. No pneumothorax.",
    "IMPRESSION: 6 mm right upper lobe nodule. Recommend follow-up CT chest in 6-12 months.",
]


def _send(engine: Engine, message: str) -> None:
    assert receive_message(engine, message.encode(), source="test").ack_code == "AA"


def _current(session: Session, resource_type: str, resource_id: str) -> FhirResource:
    return session.exec(select(FhirResource).where(
        FhirResource.resource_type == resource_type, FhirResource.resource_id == resource_id,
        col(FhirResource.is_current))).one()


def test_batch_stores_reports_rows_and_fhir_resources(
        engine: Engine, oru: Callable[..., str], rules_pipeline: RadiologyPipeline) -> None:
    _send(engine, oru("W1", "ACC-W1", NODULE_REPORT))
    _send(engine, oru("W2", "ACC-W2", ["FINDINGS: No acute abnormality."]))
    outcome = Worker(engine, rules_pipeline, batch_size=10).run_until_empty()
    assert (outcome.claimed, outcome.done, outcome.reports) == (2, 2, 2)
    expected = rules_pipeline.analyze("\n".join(NODULE_REPORT), "ACC-W1")
    with Session(engine) as session:
        report = session.exec(select(Report).where(Report.accession == "ACC-W1")).one()
        findings = session.exec(select(Finding).where(Finding.report_id == report.id)
                                .order_by(col(Finding.index))).all()
        recommendations = session.exec(select(Recommendation).where(
            Recommendation.report_id == report.id)).all()
        inbox = session.exec(select(InboxMessage)).all()
        diagnostic_report = _current(session, "DiagnosticReport", report.fhir_id).resource
        observations = [_current(session, "Observation", f.fhir_id).resource
                        for f in findings if f.fhir_id]
        request = _current(session, "ServiceRequest", recommendations[0].fhir_id).resource
    assert {row.status for row in inbox} == {"done"}
    assert report.text == "\n".join(NODULE_REPORT)
    assert report.result_status == "F" and report.version == 1 and report.is_current
    assert [(f.text, f.assertion) for f in findings] == [
        (f.text, f.assertion) for f in expected.findings]
    nodule = next(f for f in findings if f.concept == "nodule")
    assert nodule.size_mm == 6.0 and nodule.laterality == "right"
    assert len(recommendations) == 1
    rec = recommendations[0]
    assert report.observed_at is not None and rec.due_start is not None
    assert rec.due_start - report.observed_at == timedelta(days=rec.interval_min_days or 0)
    assert diagnostic_report["status"] == "final"
    assert diagnostic_report["meta"]["versionId"] == "1"
    assert sorted(r["reference"] for r in diagnostic_report["result"]) == sorted(
        f"Observation/{o['id']}" for o in observations)
    assert request["status"] == "draft" and request["intent"] == "proposal"
    reasons = [r["reference"] for r in request.get("reasonReference", [])]
    if rec.finding_index is not None:
        assert reasons == [f"Observation/{findings[rec.finding_index].fhir_id}"]


def test_correction_supersedes_and_keeps_history(
        engine: Engine, oru: Callable[..., str], rules_pipeline: RadiologyPipeline) -> None:
    worker = Worker(engine, rules_pipeline)
    _send(engine, oru("C1", "ACC-C", NODULE_REPORT, status="F"))
    worker.run_until_empty()
    _send(engine, oru("C2", "ACC-C", CORRECTED_REPORT, status="C"))
    worker.run_until_empty()
    with Session(engine) as session:
        versions = session.exec(select(Report).where(Report.accession == "ACC-C")
                                .order_by(col(Report.version))).all()
        first_findings = session.exec(select(Finding).where(
            Finding.report_id == versions[0].id)).all()
        second_ids = {f.fhir_id for f in session.exec(select(Finding).where(
            Finding.report_id == versions[1].id)).all()}
        report_versions = session.exec(select(FhirResource).where(
            FhirResource.resource_type == "DiagnosticReport",
            FhirResource.resource_id == versions[0].fhir_id)
            .order_by(col(FhirResource.version_id))).all()
        dropped = [_current(session, "Observation", f.fhir_id).resource
                   for f in first_findings if f.fhir_id and f.fhir_id not in second_ids]
    assert [(r.version, r.is_current, r.result_status) for r in versions] == [
        (1, False, "F"), (2, True, "C")]
    assert versions[0].superseded_by == versions[1].id
    assert [r.resource["status"] for r in report_versions] == ["final", "corrected"]
    assert [r.resource["meta"]["versionId"] for r in report_versions] == ["1", "2"]
    # "Possible mild bronchiectasis" is gone from the correction: its Observation is retired.
    assert dropped and {o["status"] for o in dropped} == {"entered-in-error"}


def test_cancellation_marks_the_report_entered_in_error(
        engine: Engine, oru: Callable[..., str], rules_pipeline: RadiologyPipeline) -> None:
    worker = Worker(engine, rules_pipeline)
    _send(engine, oru("X1", "ACC-X", NODULE_REPORT, status="F"))
    worker.run_until_empty()
    _send(engine, oru("X2", "ACC-X", ["Exam cancelled: wrong patient."], status="X"))
    worker.run_until_empty()
    with Session(engine) as session:
        current = session.exec(select(Report).where(Report.accession == "ACC-X",
                                                    col(Report.is_current))).one()
        resources = session.exec(select(FhirResource).where(
            col(FhirResource.is_current),
            col(FhirResource.resource_type).in_(["DiagnosticReport", "Observation",
                                                 "ServiceRequest"]))).all()
    assert current.version == 2 and current.entered_in_error
    assert {r.resource["status"] for r in resources
            if r.resource.get("intent") != "order"} == {"entered-in-error"}


def test_preliminary_then_final(engine: Engine, oru: Callable[..., str],
                                rules_pipeline: RadiologyPipeline) -> None:
    _send(engine, oru("P1", "ACC-P", NODULE_REPORT[:3], status="P"))
    _send(engine, oru("P2", "ACC-P", NODULE_REPORT, status="F"))
    Worker(engine, rules_pipeline, batch_size=1).run_until_empty()
    with Session(engine) as session:
        versions = session.exec(select(Report).where(Report.accession == "ACC-P")
                                .order_by(col(Report.version))).all()
        report = _current(session, "DiagnosticReport", versions[0].fhir_id).resource
    assert [(r.result_status, r.is_current) for r in versions] == [("P", False), ("F", True)]
    assert report["status"] == "final" and report["meta"]["versionId"] == "2"


def test_batch_of_a_dead_worker_is_claimed_again_after_the_lease(
        engine: Engine, oru: Callable[..., str], rules_pipeline: RadiologyPipeline) -> None:
    for i in range(3):
        _send(engine, oru(f"L{i}", f"ACC-L{i}", NODULE_REPORT))
    dead = Worker(engine, rules_pipeline, lease_seconds=60, worker_id="dead")
    assert len(dead.claim()) == 3  # and then it dies without finishing
    survivor = Worker(engine, rules_pipeline, lease_seconds=60, worker_id="survivor")
    assert survivor.claim() == []
    retaken = survivor.claim(now=utcnow() + timedelta(seconds=61))
    assert sorted(row.control_id for row in retaken) == ["L0", "L1", "L2"]
    assert {row.attempts for row in retaken} == {2}


def test_message_that_keeps_failing_is_set_aside_without_blocking_others(
        engine: Engine, oru: Callable[..., str], rules_pipeline: RadiologyPipeline) -> None:
    # Reports over 400 characters are refused by this pipeline: that one can never succeed.
    strict = RadiologyPipeline(rules_pipeline.nlp, model_version=rules_pipeline.model_version,
                               max_chars=400)
    _send(engine, oru("F1", "ACC-F1", ["FINDINGS: No effusion."]))
    _send(engine, oru("F2", "ACC-F2", ["FINDINGS: " + "Stable appearance. " * 40]))
    _send(engine, oru("F3", "ACC-F3", ["FINDINGS: Small left effusion."]))
    outcome = Worker(engine, strict, batch_size=3, max_attempts=3).run_until_empty()
    assert outcome.done == 2 and outcome.set_aside == 1
    with Session(engine) as session:
        rows = {r.control_id: r for r in session.exec(select(InboxMessage)).all()}
        stored = set(session.exec(select(Report.accession)).all())
    assert rows["F2"].status == "failed" and rows["F2"].attempts == 3
    assert "E004" in (rows["F2"].last_error or "") or "exceeds" in (rows["F2"].last_error or "")
    assert rows["F1"].status == rows["F3"].status == "done"
    assert stored == {"ACC-F1", "ACC-F3"}


def test_postgres_workers_skip_rows_locked_by_another(
        engine: Engine, oru: Callable[..., str], rules_pipeline: RadiologyPipeline) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("FOR UPDATE SKIP LOCKED is PostgreSQL's; SQLite has one writer")
    for i in range(4):
        _send(engine, oru(f"S{i}", f"ACC-S{i}", NODULE_REPORT))
    with engine.connect() as other:
        other.execute(text("SELECT id FROM inbox_message WHERE control_id IN ('S0', 'S1') "
                           "FOR UPDATE"))
        claimed = Worker(engine, rules_pipeline, worker_id="w").claim()
        other.rollback()
    assert sorted(row.control_id for row in claimed) == ["S2", "S3"]


def test_three_versions_in_one_batch(engine: Engine, oru: Callable[..., str],
                                     rules_pipeline: RadiologyPipeline) -> None:
    _send(engine, oru("V1", "ACC-V", NODULE_REPORT[:3], status="P"))
    _send(engine, oru("V2", "ACC-V", NODULE_REPORT, status="F"))
    _send(engine, oru("V3", "ACC-V", CORRECTED_REPORT, status="C"))
    outcome = Worker(engine, rules_pipeline, batch_size=10).run_until_empty()
    assert (outcome.claimed, outcome.done) == (3, 3)
    with Session(engine) as session:
        versions = session.exec(select(Report).where(Report.accession == "ACC-V")
                                .order_by(col(Report.version))).all()
        history = session.exec(select(FhirResource).where(
            FhirResource.resource_type == "DiagnosticReport",
            FhirResource.resource_id == versions[0].fhir_id)
            .order_by(col(FhirResource.version_id))).all()
    assert [(r.result_status, r.is_current) for r in versions] == [
        ("P", False), ("F", False), ("C", True)]
    assert [r.superseded_by for r in versions] == [versions[1].id, versions[2].id, None]
    assert [(h.resource["status"], h.is_current) for h in history] == [
        ("preliminary", False), ("final", False), ("corrected", True)]


CT_CHEST = ("71250", "CT CHEST WITHOUT CONTRAST", "CPT4")
CT_CAP = ("CTCAP", "CT CHEST ABDOMEN PELVIS WITH CONTRAST", "LOCAL")
CT_NECK = ("70491", "CT SOFT TISSUE NECK WITH CONTRAST", "CPT4")
CLEAR = "FINDINGS: Lungs are clear.\nIMPRESSION: No acute abnormality."
THYROID = ("FINDINGS: Incidental 6 mm nodule in the left lobe of the thyroid gland.\n"
           "IMPRESSION: 6 mm left thyroid nodule.{}")
START = datetime(2025, 3, 3, 9, tzinfo=UTC)


def _tracking_traffic(prefix: str) -> list[str]:
    """Follow-ups made, completed, unlinked by a cancellation and completed again; a
    recommendation a correction drops; measures a correction changes (ids start ``prefix``)."""

    def oru(number: int, accession: str, report: str, *, mrn: str, days: int = 0,
            status: str = "F", procedure: tuple[str, str, str] = CT_CHEST) -> str:
        return build_oru(f"{prefix}{number}", f"{prefix}-{accession}", report,
                         mrn=f"{prefix}-{mrn}", status=status, procedure=procedure,
                         observed_at=START + timedelta(days=days), birth_date=date(1960, 1, 1))

    nodule = "\n".join(NODULE_REPORT)
    return [
        oru(1, "A1", nodule, mrn="P1"),
        oru(2, "B1", CLEAR, mrn="P1", days=200),  # completes A1's follow-up
        oru(3, "B1", "", mrn="P1", days=200, status="X"),  # ... until it is cancelled
        oru(4, "B2", CLEAR, mrn="P1", days=210, procedure=CT_CAP),  # which completes it again
        oru(5, "A2", nodule, mrn="P2", status="P"),
        oru(6, "A2", nodule, mrn="P2"),
        oru(7, "A2", CLEAR, mrn="P2", status="C"),  # drops the recommendation
        oru(8, "A3", nodule, mrn="P3", days=100),
        oru(9, "A4", nodule, mrn="P3", days=300),  # completes A3's, has its own
        oru(10, "T1", THYROID.format(" Recommend thyroid ultrasound."), mrn="P4",
            procedure=CT_NECK),
        oru(11, "T1", THYROID.format(""), mrn="P4", status="C", procedure=CT_NECK),
    ]


def _tracking_state(session: Session, prefix: str) -> list[Any]:
    """Follow-ups with their events, measure results and ServiceRequest statuses of the
    accessions starting with ``prefix``, with the prefix taken out."""
    def plain(value: Any) -> Any:
        return value.replace(prefix, "*") if isinstance(value, str) else value

    follow_ups = session.exec(select(FollowUp).where(col(FollowUp.accession).startswith(prefix))
                              .order_by(col(FollowUp.accession), col(FollowUp.rec_index))).all()
    accessions = {r.id: r.accession for r in session.exec(select(Report)).all()}
    state: list[Any] = []
    for f in follow_ups:
        events = session.exec(select(FollowUpEvent).where(FollowUpEvent.follow_up_id == f.id)
                              .order_by(col(FollowUpEvent.id))).all()
        request = session.exec(select(FhirResource).where(
            FhirResource.resource_type == "ServiceRequest", FhirResource.resource_id == f.fhir_id,
            col(FhirResource.is_current))).one()
        state.append([plain(f.accession), f.rec_index, f.due_start, f.due_end, f.completed_at,
                      plain(accessions.get(f.completed_by_report_id or 0)),
                      f.withdrawn_at is not None, f.guideline_verdict, request.resource["status"],
                      request.version_id, [(e.kind, e.status, plain(e.reason)) for e in events]])
    measures = session.exec(select(MeasureResult).where(
        col(MeasureResult.accession).startswith(prefix)).order_by(col(MeasureResult.id))).all()
    state += [(plain(m.accession), m.measure, m.is_current, m.in_denominator, m.in_numerator)
              for m in measures]
    return state


def test_one_batch_tracks_follow_ups_as_one_message_at_a_time_does(
        engine: Engine, rules_pipeline: RadiologyPipeline) -> None:
    for message in _tracking_traffic("BAT"):
        _send(engine, message)
    assert Worker(engine, rules_pipeline, batch_size=64).run_until_empty().done == 11
    for message in _tracking_traffic("ONE"):
        _send(engine, message)
    assert Worker(engine, rules_pipeline, batch_size=1).run_until_empty().done == 11
    with Session(engine) as session:
        batched, one_by_one = _tracking_state(session, "BAT"), _tracking_state(session, "ONE")
    assert batched == one_by_one
    kinds = [kind for row in batched if isinstance(row, list) for kind, _, _ in row[-1]]
    assert {"created", "completed", "unlinked", "withdrawn"} <= set(kinds)
    assert any(row[2] is False for row in batched if isinstance(row, tuple))  # measures redone


@contextmanager
def _counting_selects(engine: Engine) -> Iterator[list[str]]:
    selects: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield selects
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_a_batch_reads_the_database_no_more_often_than_one_message(
        engine: Engine, oru: Callable[..., str], rules_pipeline: RadiologyPipeline) -> None:
    counts = []
    for size in (1, 10):
        for i in range(size):
            _send(engine, oru(f"Q{size}-{i}", f"ACC-Q{size}-{i}", NODULE_REPORT,
                              mrn=f"MRN-Q{size}-{i}"))
        with _counting_selects(engine) as selects:
            assert Worker(engine, rules_pipeline, batch_size=size).run_until_empty().done == size
        counts.append(len(selects))
    assert counts[0] == counts[1]
