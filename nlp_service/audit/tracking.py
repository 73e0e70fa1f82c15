"""Follow-up tracking: recommendations become follow-ups with a due window; a later exam of the
same patient that satisfies one completes it; people record decisions; every change is an
event. A follow-up's state at a date is derived in SQL (``status_at``), so any "as of" query
gives the same answer whenever it is asked.

States: ``open``, ``overdue`` (past the window, not done), ``completed_on_time``,
``completed_late``, the decisions ``not_needed``, ``completed_elsewhere`` and ``cancelled``,
and ``withdrawn`` (the recommendation left its report through a correction or cancellation).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, update
from sqlmodel import Session, col, select

from nlp_service.audit.guidelines import ReportFacts, check_recommendation, evaluate_measures
from nlp_service.audit.rules import FollowUpRules, default_rules
from nlp_service.storage.fhir_store import FhirWriter
from nlp_service.storage.models import (
    FollowUp,
    FollowUpEvent,
    MeasureResult,
    Recommendation,
    Report,
)
from pipelines.schema import ReportAnalysis

DECISIONS = ("not_needed", "completed_elsewhere", "cancelled")
STATUSES = ("open", "overdue", "completed_on_time", "completed_late", *DECISIONS, "withdrawn")
SYSTEM = "system"
# How the FHIR ServiceRequest of a recommendation follows its tracking.
REQUEST_STATUS = {"completed": "completed", "completed_elsewhere": "completed",
                  "not_needed": "revoked", "cancelled": "revoked"}


def status_at(as_of: datetime) -> Any:
    """SQL expression: a follow-up's state on ``as_of``."""
    decision_then = (select(FollowUpEvent.status)
                     .where(FollowUpEvent.follow_up_id == FollowUp.id,
                            FollowUpEvent.kind == "manual", col(FollowUpEvent.at) <= as_of)
                     .order_by(col(FollowUpEvent.at).desc(), col(FollowUpEvent.id).desc())
                     .limit(1).scalar_subquery())
    # The row keeps the latest decision; older "as of" dates look it up in the history.
    decision = case((col(FollowUp.manual_at).is_(None), None),
                    (col(FollowUp.manual_at) <= as_of, FollowUp.manual_status),
                    else_=decision_then)
    completed = col(FollowUp.completed_at) <= as_of
    return case(
        (and_(col(FollowUp.withdrawn_at).is_not(None), col(FollowUp.withdrawn_at) <= as_of),
         "withdrawn"),
        (decision.in_(DECISIONS), decision),
        (and_(completed, col(FollowUp.completed_at) <= FollowUp.late_after),
         "completed_on_time"),
        (completed, "completed_late"),
        (col(FollowUp.late_after) < as_of, "overdue"),
        else_="open",
    )


def _event(session: Session, follow_up: FollowUp, at: datetime, kind: str, reason: str, *,
           actor: str = SYSTEM, status: str | None = None) -> None:
    assert follow_up.id is not None
    session.add(FollowUpEvent(follow_up_id=follow_up.id, at=at, actor=actor, kind=kind,
                              status=status, reason=reason))


def report_time(report: Report) -> datetime:
    return report.observed_at or report.created_at


def sync_report(session: Session, fhir: FhirWriter, report: Report, analysis: ReportAnalysis,
                *, now: datetime, rules: FollowUpRules | None = None) -> None:
    """Bring follow-ups and measures up to date after ``report`` (a new current version) was
    stored: derive its recommendations' follow-ups, withdraw those it no longer has, and let
    it complete earlier follow-ups of the same patient."""
    rules = rules or default_rules()
    follow_ups = {f.rec_index: f for f in session.exec(
        select(FollowUp).where(FollowUp.accession == report.accession)).all()}
    if report.entered_in_error:
        for leftover in follow_ups.values():
            _withdraw(session, leftover, now, "the report was cancelled (entered in error)")
        _unlink_completions(session, fhir, report.accession, now, rules)
        _store_measures(session, report, [])
        return
    facts = ReportFacts(text=report.text, age_years=report.patient_age_years,
                        modality=report.modality, body_region=report.body_region,
                        procedure_name=report.procedure_name)
    recommendations = session.exec(select(Recommendation).where(
        Recommendation.report_id == report.id).order_by(col(Recommendation.index))).all()
    for rec in recommendations:
        follow_up = follow_ups.pop(rec.index) if rec.index in follow_ups else None
        _derive(session, fhir, report, analysis, rec, follow_up, facts, now, rules)
    for leftover in follow_ups.values():
        _withdraw(session, leftover, now, f"report version {report.version} no longer has "
                                           "this recommendation")
    if report.result_status in ("F", "C"):
        _complete_earlier(session, fhir, report, now, rules)
    _store_measures(session, report, evaluate_measures(analysis, facts))


def _derive(session: Session, fhir: FhirWriter, report: Report, analysis: ReportAnalysis,
            rec: Recommendation, follow_up: FollowUp | None, facts: ReportFacts,
            now: datetime, rules: FollowUpRules) -> None:
    assert report.id is not None and rec.id is not None
    start = report_time(report)
    finding = (analysis.findings[rec.finding_index] if rec.finding_index is not None else None)
    finding_name = (finding.concept.name if finding and finding.concept
                    else finding.text.lower() if finding else None)
    due_start, due_end, default = rules.due_window(start, rec.modality, finding_name,
                                                   rec.interval_min_days, rec.interval_max_days)
    verdict = check_recommendation(analysis, rec.index, facts)
    values: dict[str, Any] = dict(
        recommendation_id=rec.id, source_report_id=report.id, patient_mrn=report.patient_mrn,
        mrn_authority=report.mrn_authority, report_time=start, modality=rec.modality,
        body_region=rec.body_region or report.body_region,
        finding=finding_name,
        text=rec.text, start=rec.start, end=rec.end, conditional=rec.conditional,
        due_start=due_start, due_end=due_end,
        late_after=due_end + timedelta(days=rules.grace_days), default_window=default,
        ordering_provider=report.ordering_provider, radiologist=report.interpreter,
        guideline=verdict.guideline, guideline_verdict=verdict.verdict,
        guideline_reason=verdict.reason, fhir_id=rec.fhir_id, withdrawn_at=None)
    if follow_up is None:
        follow_up = FollowUp(accession=report.accession, rec_index=rec.index, **values)
        session.add(follow_up)
        session.flush()
        _event(session, follow_up, now, "created", f"from report version {report.version}: "
               f"due {due_start.date()} to {due_end.date()}"
               + (" (default window: no interval stated)" if default else ""))
    else:
        changed = sorted(key for key, value in values.items()
                         if getattr(follow_up, key) != value
                         and key not in ("recommendation_id", "source_report_id"))
        for key, value in values.items():
            setattr(follow_up, key, value)
        session.add(follow_up)
        _event(session, follow_up, now, "rederived", f"from report version {report.version}"
               + (f"; changed: {', '.join(changed)}" if changed else "; unchanged"))
    if follow_up.completed_at is None:
        exam = _first_satisfying_exam(session, follow_up, rules)
        if exam is not None:
            _complete(session, fhir, follow_up, exam, now)
    _sync_request(fhir, follow_up)


def _withdraw(session: Session, follow_up: FollowUp, now: datetime, reason: str) -> None:
    if follow_up.withdrawn_at is not None:
        return
    follow_up.withdrawn_at = now
    session.add(follow_up)
    _event(session, follow_up, now, "withdrawn", reason, status="withdrawn")


def _satisfies(rules: FollowUpRules, follow_up: FollowUp, exam: Report) -> bool:
    return (rules.modality_satisfied(follow_up.modality, exam.modality)
            and rules.region_satisfied(follow_up.body_region, exam.body_region))


def _later_exams(session: Session, follow_up: FollowUp) -> Sequence[Report]:
    return session.exec(select(Report).where(
        Report.patient_mrn == follow_up.patient_mrn,
        Report.mrn_authority == follow_up.mrn_authority, col(Report.is_current),
        col(Report.entered_in_error).is_(False), col(Report.result_status).in_(["F", "C"]),
        Report.accession != follow_up.accession,
        col(Report.observed_at) > follow_up.report_time,
    ).order_by(col(Report.observed_at))).all()


def _first_satisfying_exam(session: Session, follow_up: FollowUp,
                           rules: FollowUpRules) -> Report | None:
    return next((exam for exam in _later_exams(session, follow_up)
                 if _satisfies(rules, follow_up, exam)), None)


def _complete(session: Session, fhir: FhirWriter, follow_up: FollowUp, exam: Report,
              now: datetime) -> None:
    follow_up.completed_by_report_id = exam.id
    follow_up.completed_at = report_time(exam)
    session.add(follow_up)
    _event(session, follow_up, now, "completed",
           f"{exam.modality or 'exam'} {exam.body_region or ''} of {exam.observed_at} "
           f"(accession {exam.accession})".replace("  ", " "), status="completed")
    _sync_request(fhir, follow_up)


def _complete_earlier(session: Session, fhir: FhirWriter, exam: Report, now: datetime,
                      rules: FollowUpRules) -> None:
    """Complete the patient's earlier open follow-ups that ``exam`` satisfies."""
    if exam.observed_at is None:
        return
    candidates = session.exec(select(FollowUp).where(
        FollowUp.patient_mrn == exam.patient_mrn, FollowUp.mrn_authority == exam.mrn_authority,
        col(FollowUp.completed_at).is_(None), col(FollowUp.withdrawn_at).is_(None),
        FollowUp.accession != exam.accession,
        col(FollowUp.report_time) < exam.observed_at)).all()
    for follow_up in candidates:
        if _satisfies(rules, follow_up, exam):
            _complete(session, fhir, follow_up, exam, now)


def _unlink_completions(session: Session, fhir: FhirWriter, accession: str, now: datetime,
                        rules: FollowUpRules) -> None:
    """Follow-ups completed by a version of ``accession`` (now cancelled) look again."""
    versions = select(Report.id).where(Report.accession == accession)
    for follow_up in session.exec(select(FollowUp).where(
            col(FollowUp.completed_by_report_id).in_(versions))).all():
        follow_up.completed_by_report_id, follow_up.completed_at = None, None
        session.add(follow_up)
        _event(session, follow_up, now, "unlinked",
               f"the completing exam (accession {accession}) was cancelled")
        exam = _first_satisfying_exam(session, follow_up, rules)
        if exam is not None:
            _complete(session, fhir, follow_up, exam, now)
        else:
            _sync_request(fhir, follow_up)


def set_decision(session: Session, fhir: FhirWriter, follow_up: FollowUp, status: str, *,
                 actor: str, reason: str, at: datetime) -> None:
    """Record a person's decision (one of ``DECISIONS``, or "open" to undo one)."""
    if status not in (*DECISIONS, "open"):
        raise ValueError(f"status must be one of {', '.join((*DECISIONS, 'open'))}")
    if not reason.strip():
        raise ValueError("a reason is required")
    if not actor.strip():
        raise ValueError("who made the decision is required")
    follow_up.manual_status = None if status == "open" else status
    follow_up.manual_at = at
    session.add(follow_up)
    _event(session, follow_up, at, "manual", reason, actor=actor, status=status)
    _sync_request(fhir, follow_up)


def _sync_request(fhir: FhirWriter, follow_up: FollowUp) -> None:
    """The recommendation's ServiceRequest status follows its tracking."""
    if follow_up.withdrawn_at is not None:
        return  # the report mapping already marked it entered-in-error
    current = fhir.current("ServiceRequest", follow_up.fhir_id)
    if current is None or current.get("status") == "entered-in-error":
        return
    key = follow_up.manual_status or ("completed" if follow_up.completed_at else None)
    status = REQUEST_STATUS.get(key or "", "draft")
    if current.get("status") != status:
        fhir.put({**current, "status": status})


def _store_measures(session: Session, report: Report, results: Sequence[Any]) -> None:
    session.exec(update(MeasureResult)
                 .where(col(MeasureResult.accession) == report.accession)
                 .values(is_current=False))
    assert report.id is not None
    for result in results:
        session.add(MeasureResult(
            report_id=report.id, accession=report.accession, measure=result.measure,
            is_current=True, report_time=report_time(report),
            in_denominator=result.in_denominator, in_numerator=result.in_numerator,
            excluded=result.excluded, reason=result.reason))
