"""Follow-up tracking: recommendations become follow-ups with a due window; a later exam of the
same patient that satisfies one completes it; people record decisions; every change is an
event. A follow-up's state at a date is derived in SQL (``status_at``), so any "as of" query
gives the same answer whenever it is asked.

States: ``open``, ``overdue`` (past the window, not done), ``completed_on_time``,
``completed_late``, the decisions ``not_needed``, ``completed_elsewhere``, ``cancelled`` and
``not_a_recommendation`` (an extraction error: the sentence asks for nothing; it also queues
the report for annotation with the correction), and ``withdrawn`` (the recommendation left its
report through a correction or cancellation). People also assign follow-ups and add notes;
each of these actions is an event too.

``FollowUpTracker`` does this bookkeeping for a batch of reports: what it reads (the batch's
follow-ups, its patients' open follow-ups and later exams) it reads once for the batch and then
keeps up to date in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, or_, update
from sqlalchemy.orm import defer
from sqlmodel import Session, col, select

from nlp_service.audit.guidelines import (
    GuidelineVerdict,
    ReportFacts,
    check_recommendation,
    evaluate_measures,
)
from nlp_service.audit.guidelines import MeasureResult as MeasureOutcome
from nlp_service.audit.rules import (
    FollowUpRules,
    concerned_finding,
    default_rules,
    finding_name,
    recommendation_due_window,
)
from nlp_service.notify.resources import sync_task
from nlp_service.storage.annotation_tasks import new_task, pre_annotation
from nlp_service.storage.fhir_store import FhirWriter
from nlp_service.storage.models import (
    AnnotationTask,
    FollowUp,
    FollowUpEvent,
    MeasureResult,
    Recommendation,
    Report,
    TaskAnnotation,
    is_current,
)
from pipelines.schema import ReportAnalysis

NOT_A_RECOMMENDATION = "not_a_recommendation"
DECISIONS = ("not_needed", "completed_elsewhere", "cancelled", NOT_A_RECOMMENDATION)
STATUSES = ("open", "overdue", "completed_on_time", "completed_late", *DECISIONS, "withdrawn")
SYSTEM = "system"
# How the FHIR ServiceRequest of a recommendation follows its tracking.
REQUEST_STATUS = {"completed": "completed", "completed_elsewhere": "completed",
                  "not_needed": "revoked", "cancelled": "revoked",
                  NOT_A_RECOMMENDATION: "revoked"}
# Where a task made for a follow-up marked "not a recommendation" says it came from.
CORRECTION_SOURCE = "follow_up"
EXAM_STATUSES = ("F", "C")  # the result statuses of an exam that can complete a follow-up
PatientKey = tuple[str, str | None]  # MRN and its assigning authority


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
           actor: str = SYSTEM, status: str | None = None, actor_key_id: str | None = None,
           assignee: str | None = None, annotation_task_id: int | None = None) -> FollowUpEvent:
    assert follow_up.id is not None
    event = FollowUpEvent(follow_up_id=follow_up.id, at=at, actor=actor, kind=kind,
                          status=status, reason=reason, actor_key_id=actor_key_id,
                          assignee=assignee, annotation_task_id=annotation_task_id)
    session.add(event)
    return event


def report_time(report: Report) -> datetime:
    return report.observed_at or report.created_at


def _patient(row: Report | FollowUp) -> PatientKey:
    return row.patient_mrn, row.mrn_authority


@dataclass(frozen=True)
class Assessment:
    """What the guidelines say of a report's recommendations (by index) and where the report
    stands in the QPP measures: computed from the report alone, so before any transaction."""

    verdicts: tuple[GuidelineVerdict, ...]
    measures: tuple[MeasureOutcome, ...]


def assess(report: Report, analysis: ReportAnalysis) -> Assessment:
    """The guideline verdicts and measure results of ``report`` (stored or not yet)."""
    facts = ReportFacts(text=report.text, age_years=report.patient_age_years,
                        modality=report.modality, body_region=report.body_region,
                        procedure_name=report.procedure_name)
    return Assessment(
        tuple(check_recommendation(analysis, index, facts)
              for index in range(len(analysis.recommendations))),
        tuple(evaluate_measures(analysis, facts)))


class FollowUpTracker:
    """Follow-up and measure bookkeeping for the report versions stored in one session.

    ``preload`` reads, for a batch, the follow-ups of its accessions, the open follow-ups of
    its patients, their exams since the batch's earliest report and which accessions have
    current measure results, one query each; the tracker keeps these up to date as it syncs,
    and reads what was not preloaded when first needed. New follow-ups get their events on
    ``flush``, which must come before the session commits.
    """

    def __init__(self, session: Session, fhir: FhirWriter, *, now: datetime,
                 rules: FollowUpRules | None = None) -> None:
        self.session = session
        self.fhir = fhir
        self.now = now
        self.rules = rules or default_rules()
        self._by_accession: dict[str, dict[int, FollowUp]] = {}  # by recommendation index
        # By id() of the object (new ones have no id yet); entries of a follow-up whose
        # patient a correction changed stay behind under the old patient, and are skipped.
        self._by_patient: dict[PatientKey, dict[int, FollowUp]] = {}
        self._accessions: set[str] = set()  # those whose follow-ups are all known
        self._open_patients: set[PatientKey] = set()  # those whose open follow-ups are known
        # Current final exams by patient, complete for those observed after the bound (None:
        # all of them).
        self._exams: dict[PatientKey, dict[int, Report]] = {}
        self._exams_after: dict[PatientKey, datetime | None] = {}
        self._measured: dict[str, bool] = {}  # accession: it has current measure rows stored
        self._new_measures: dict[str, list[MeasureResult]] = {}
        self._events: list[tuple[FollowUp, dict[str, Any]]] = []

    # --- What is read, once. ---------------------------------------------------------------

    def preload(self, *, accessions: Iterable[str], patients: Iterable[PatientKey],
                exams_after: dict[PatientKey, datetime | None] | None = None) -> None:
        """Read the follow-ups of ``accessions``, the open follow-ups of ``patients``, and the
        exams of the patients in ``exams_after`` observed after the time it gives them (None:
        all), one query each, plus which of ``accessions`` have current measure results."""
        accessions = [a for a in dict.fromkeys(accessions) if a not in self._accessions]
        patients = [p for p in dict.fromkeys(patients) if p not in self._open_patients]
        if accessions or patients:
            wanted: list[Any] = [col(FollowUp.accession).in_(accessions)] if accessions else []
            if patients:
                wanted.append(and_(col(FollowUp.patient_mrn).in_(_mrns(patients)),
                                   col(FollowUp.completed_at).is_(None),
                                   col(FollowUp.withdrawn_at).is_(None)))
            for follow_up in self.session.exec(
                    select(FollowUp).where(or_(*wanted)).order_by(col(FollowUp.id))):
                self._remember(follow_up)
            self._accessions.update(accessions)
            self._open_patients.update(patients)
        if exams_after:
            self._load_exams(exams_after)
        measured = [a for a in accessions if a not in self._measured]
        if measured:
            self._measured.update(dict.fromkeys(measured, False))
            self._measured.update(dict.fromkeys(self.session.exec(
                select(MeasureResult.accession).distinct().where(
                    col(MeasureResult.accession).in_(measured), col(MeasureResult.is_current))),
                True))

    def _load_exams(self, after: dict[PatientKey, datetime | None]) -> None:
        # Neither the text nor the analysis: exams are only compared and linked to.
        query = (select(Report).options(defer(Report.text), defer(Report.analysis))  # type: ignore[arg-type]
                 .where(col(Report.patient_mrn).in_(_mrns(after)),
                        is_current(Report),
                        col(Report.entered_in_error).is_(False),
                        col(Report.result_status).in_(EXAM_STATUSES),
                        col(Report.observed_at).is_not(None)))
        bounds = [bound for bound in after.values() if bound is not None]
        if len(bounds) == len(after):
            query = query.where(col(Report.observed_at) > min(bounds))
        for patient, bound in after.items():
            self._exams.setdefault(patient, {})
            self._exams_after[patient] = bound
        for exam in self.session.exec(query):
            if _patient(exam) in after:
                assert exam.id is not None
                self._exams[_patient(exam)][exam.id] = exam

    def _remember(self, follow_up: FollowUp) -> None:
        self._by_accession.setdefault(follow_up.accession, {})[follow_up.rec_index] = follow_up
        self._by_patient.setdefault(_patient(follow_up), {})[id(follow_up)] = follow_up

    def _of_accession(self, accession: str) -> dict[int, FollowUp]:
        if accession not in self._accessions:
            self.session.flush()
            self.preload(accessions=[accession], patients=[])
        return dict(self._by_accession.get(accession, {}))

    def _open_of_patient(self, patient: PatientKey) -> list[FollowUp]:
        """The patient's follow-ups neither completed nor withdrawn, oldest first."""
        if patient not in self._open_patients:
            self.session.flush()
            self.preload(accessions=[], patients=[patient])
        found = [f for f in self._by_patient.get(patient, {}).values() if _patient(f) == patient
                 and f.completed_at is None and f.withdrawn_at is None]
        # The order of the (patient, report time) index; new ones without an id yet come
        # after the stored ones in the order they were made, as their ids will.
        return sorted(found, key=lambda f: (f.report_time, f.id is None, f.id or 0))

    def _exams_of(self, patient: PatientKey, after: datetime) -> list[Report]:
        """The patient's current final exams observed after ``after``, in time order."""
        bound = self._exams_after.get(patient, after)
        if patient not in self._exams_after or (bound is not None and after < bound):
            self.session.flush()
            self._load_exams({patient: after})
        exams = [e for e in self._exams[patient].values()
                 if e.is_current and not e.entered_in_error and e.result_status in EXAM_STATUSES
                 and e.observed_at is not None and e.observed_at > after]
        return sorted(exams, key=lambda e: (e.observed_at, e.id))

    # --- Syncing a stored version. ---------------------------------------------------------

    def sync(self, report: Report, analysis: ReportAnalysis, *,
             recommendations: Sequence[Recommendation] | None = None,
             assessment: Assessment | None = None) -> None:
        """Bring follow-ups and measures up to date after ``report`` (a new current version,
        flushed) was stored: derive its recommendations' follow-ups, withdraw those it no
        longer has, and let it complete earlier follow-ups of the same patient.
        ``recommendations`` (its rows) and ``assessment`` are read or computed if not given."""
        assert report.id is not None
        if _patient(report) in self._exams:
            self._exams[_patient(report)][report.id] = report
        follow_ups = self._of_accession(report.accession)
        if report.entered_in_error:
            for leftover in follow_ups.values():
                self._withdraw(leftover, "the report was cancelled (entered in error)")
            self._unlink_completions(report.accession)
            self._store_measures(report, [])
            return
        if recommendations is None:
            recommendations = self.session.exec(select(Recommendation).where(
                Recommendation.report_id == report.id).order_by(col(Recommendation.index))).all()
        assessment = assessment or assess(report, analysis)
        for rec in recommendations:
            follow_up = follow_ups.pop(rec.index) if rec.index in follow_ups else None
            self._derive(report, analysis, rec, follow_up, assessment.verdicts[rec.index])
        for leftover in follow_ups.values():
            self._withdraw(leftover, f"report version {report.version} no longer has this "
                                     "recommendation")
        if report.result_status in EXAM_STATUSES:
            self._complete_earlier(report)
        self._store_measures(report, assessment.measures)

    def flush(self) -> None:
        """Send new follow-ups to the database, then the events of this batch."""
        if not self._events:
            return
        self.session.flush()
        for follow_up, event in self._events:
            _event(self.session, follow_up, **event)
        self._events = []

    def _record(self, follow_up: FollowUp, kind: str, reason: str, *,
               status: str | None = None) -> None:
        # Kept until flush: a new follow-up has no id before it is inserted.
        self._events.append((follow_up, dict(at=self.now, kind=kind, reason=reason,
                                             status=status)))

    def _derive(self, report: Report, analysis: ReportAnalysis, rec: Recommendation,
                follow_up: FollowUp | None, verdict: GuidelineVerdict) -> None:
        assert report.id is not None and rec.id is not None
        start = report_time(report)
        stated = analysis.recommendations[rec.index]
        window = recommendation_due_window(start, stated, analysis.findings, self.rules)
        due_start, due_end, default = window.start, window.end, window.default
        values: dict[str, Any] = dict(
            recommendation_id=rec.id, source_report_id=report.id,
            patient_mrn=report.patient_mrn, mrn_authority=report.mrn_authority,
            report_time=start, kind=stated.kind, modality=stated.modality,
            modalities=list(stated.modalities),
            body_region=rec.body_region or report.body_region,
            finding=finding_name(concerned_finding(stated, analysis.findings)),
            text=rec.text, start=rec.start, end=rec.end, conditional=rec.conditional,
            due_start=due_start, due_end=due_end,
            late_after=due_end + timedelta(days=self.rules.grace_days),
            default_window=default,
            ordering_provider=report.ordering_provider, radiologist=report.interpreter,
            guideline=verdict.guideline, guideline_verdict=verdict.verdict,
            guideline_reason=verdict.reason, fhir_id=rec.fhir_id, withdrawn_at=None)
        if follow_up is None:
            follow_up = FollowUp(accession=report.accession, rec_index=rec.index, **values)
            self.session.add(follow_up)
            self._remember(follow_up)
            self._record(follow_up, "created", f"from report version {report.version}: "
                        f"due {due_start.date()} to {due_end.date()}"
                        + (" (default window: no interval stated)" if default else ""))
        else:
            changed = sorted(key for key, value in values.items()
                             if getattr(follow_up, key) != value
                             and key not in ("recommendation_id", "source_report_id"))
            for key, value in values.items():
                setattr(follow_up, key, value)
            self.session.add(follow_up)
            self._remember(follow_up)  # under its patient, if that changed
            self._record(follow_up, "rederived", f"from report version {report.version}"
                        + (f"; changed: {', '.join(changed)}" if changed else "; unchanged"))
        if follow_up.completed_at is None:
            exam = self._first_satisfying_exam(follow_up)
            if exam is not None:
                self._complete(follow_up, exam)
        _sync_request(self.fhir, follow_up)

    def _withdraw(self, follow_up: FollowUp, reason: str) -> None:
        if follow_up.withdrawn_at is not None:
            return
        follow_up.withdrawn_at = self.now
        self.session.add(follow_up)
        self._record(follow_up, "withdrawn", reason, status="withdrawn")

    def _first_satisfying_exam(self, follow_up: FollowUp) -> Report | None:
        return next((exam for exam in self._exams_of(_patient(follow_up), follow_up.report_time)
                     if exam.accession != follow_up.accession
                     and _satisfies(self.rules, follow_up, exam)), None)

    def _complete(self, follow_up: FollowUp, exam: Report) -> None:
        follow_up.completed_by_report_id = exam.id
        follow_up.completed_at = report_time(exam)
        self.session.add(follow_up)
        self._record(follow_up, "completed",
                    f"{exam.modality or 'exam'} {exam.body_region or ''} of {exam.observed_at} "
                    f"(accession {exam.accession})".replace("  ", " "), status="completed")
        _sync_request(self.fhir, follow_up)

    def _complete_earlier(self, exam: Report) -> None:
        """Complete the patient's earlier open follow-ups that ``exam`` satisfies."""
        if exam.observed_at is None:
            return
        observed_at = exam.observed_at
        done = [f for f in self._open_of_patient(_patient(exam))
                if f.accession != exam.accession and f.report_time < observed_at
                and _satisfies(self.rules, f, exam)]
        self.fhir.prefetch(("ServiceRequest", f.fhir_id) for f in done)
        for follow_up in done:
            self._complete(follow_up, exam)

    def _unlink_completions(self, accession: str) -> None:
        """Follow-ups completed by a version of ``accession`` (now cancelled) look again."""
        self.session.flush()
        versions = select(Report.id).where(Report.accession == accession)
        for follow_up in self.session.exec(select(FollowUp).where(
                col(FollowUp.completed_by_report_id).in_(versions))).all():
            self._remember(follow_up)
            follow_up.completed_by_report_id, follow_up.completed_at = None, None
            self.session.add(follow_up)
            self._record(follow_up, "unlinked",
                        f"the completing exam (accession {accession}) was cancelled")
            exam = self._first_satisfying_exam(follow_up)
            if exam is not None:
                self._complete(follow_up, exam)
            else:
                _sync_request(self.fhir, follow_up)

    def _store_measures(self, report: Report, results: Sequence[MeasureOutcome]) -> None:
        if report.accession not in self._measured:
            self.session.flush()
            self.preload(accessions=[report.accession], patients=[])
        if self._measured[report.accession]:
            self.session.exec(update(MeasureResult)
                              .where(col(MeasureResult.accession) == report.accession)
                              .values(is_current=False))
        for earlier in self._new_measures.pop(report.accession, []):
            earlier.is_current = False  # stored in this batch, perhaps not yet flushed
        assert report.id is not None
        rows = [MeasureResult(
            report_id=report.id, accession=report.accession, measure=result.measure,
            is_current=True, report_time=report_time(report),
            in_denominator=result.in_denominator, in_numerator=result.in_numerator,
            excluded=result.excluded, reason=result.reason) for result in results]
        self.session.add_all(rows)
        self._new_measures[report.accession] = rows


def _mrns(patients: Iterable[PatientKey]) -> list[str]:
    # The MRN authority is compared in Python: SQL would need an OR per patient.
    return sorted({mrn for mrn, _ in patients})


def _satisfies(rules: FollowUpRules, follow_up: FollowUp, exam: Report) -> bool:
    return (rules.modality_satisfied(follow_up.modalities or follow_up.modality, exam.modality)
            and rules.region_satisfied(follow_up.body_region, exam.body_region))


def _check_actor(actor: str) -> None:
    if not actor.strip():
        raise ValueError("who acted is required")


def set_decision(session: Session, fhir: FhirWriter, follow_up: FollowUp, status: str, *,
                 actor: str, reason: str, at: datetime,
                 actor_key_id: str | None = None) -> FollowUpEvent:
    """Record a person's decision (one of ``DECISIONS``, or "open" to undo one) as a "manual"
    event. ``actor`` is who decided (an API key's name, with its ``actor_key_id``).

    ``not_a_recommendation`` (an extraction error) also queues the report for annotation with
    the correction pre-filled (``correction_task``); the event names the task. Undoing it
    keeps the task: the annotators' work is never thrown away."""
    if status not in (*DECISIONS, "open"):
        raise ValueError(f"status must be one of {', '.join((*DECISIONS, 'open'))}")
    if not reason.strip():
        raise ValueError("a reason is required")
    _check_actor(actor)
    previous = follow_up.manual_status
    follow_up.manual_status = None if status == "open" else status
    follow_up.manual_at = at
    session.add(follow_up)
    task = None
    if status == NOT_A_RECOMMENDATION and previous != NOT_A_RECOMMENDATION:
        who = f"{actor} (key {actor_key_id})" if actor_key_id else actor
        task = correction_task(session, follow_up, note=(
            f"not a recommendation (extraction error): follow-up {follow_up.id}, "
            f"{follow_up.text!r} at {follow_up.start}-{follow_up.end}; by {who} on "
            f"{at:%Y-%m-%d %H:%M} UTC; reason: {reason}"))
    event = _event(session, follow_up, at, "manual", reason, actor=actor, status=status,
                   actor_key_id=actor_key_id,
                   annotation_task_id=task.id if task is not None else None)
    _sync_request(fhir, follow_up)
    return event


def assign(session: Session, follow_up: FollowUp, assignee: str | None, *, actor: str,
           at: datetime, note: str = "", actor_key_id: str | None = None) -> FollowUpEvent:
    """Give the follow-up to ``assignee`` (None or blank: take it from whoever has it), as an
    "assigned" or "unassigned" event."""
    _check_actor(actor)
    name = (assignee or "").strip() or None
    follow_up.assignee = name
    session.add(follow_up)
    if name is None:
        return _event(session, follow_up, at, "unassigned", note.strip() or "unassigned",
                      actor=actor, actor_key_id=actor_key_id)
    return _event(session, follow_up, at, "assigned", note.strip() or f"assigned to {name}",
                  actor=actor, actor_key_id=actor_key_id, assignee=name)


def add_note(session: Session, follow_up: FollowUp, text: str, *, actor: str, at: datetime,
             actor_key_id: str | None = None) -> FollowUpEvent:
    """A note on the follow-up (a "note" event; the note is its reason)."""
    if not text.strip():
        raise ValueError("a note needs text")
    _check_actor(actor)
    return _event(session, follow_up, at, "note", text.strip(), actor=actor,
                  actor_key_id=actor_key_id)


def correction_task(session: Session, follow_up: FollowUp, *, note: str) -> AnnotationTask:
    """The annotation task correcting an extraction error: the follow-up's report version,
    pre-annotated from its stored analysis without the recommendations people marked "not a
    recommendation" (this one and any other of the report's). A task already made this way
    for the report that no annotator has touched yet is updated rather than doubled."""
    report = session.get(Report, follow_up.source_report_id)
    assert report is not None
    wrong = {(follow_up.start, follow_up.end)} | set(session.exec(
        select(FollowUp.start, FollowUp.end).where(
            FollowUp.source_report_id == report.id, FollowUp.id != follow_up.id,
            FollowUp.manual_status == NOT_A_RECOMMENDATION)).all())
    analysis = ReportAnalysis.model_validate(report.analysis)
    corrected = analysis.model_copy(update={"recommendations": [
        rec for rec in analysis.recommendations if (rec.start, rec.end) not in wrong]})
    untouched = session.exec(select(AnnotationTask).where(
        AnnotationTask.report_id == report.id, AnnotationTask.source == CORRECTION_SOURCE,
        AnnotationTask.status == "open",
        col(AnnotationTask.id).not_in(select(TaskAnnotation.task_id)))
        .order_by(col(AnnotationTask.id).desc())).first()
    if untouched is None:
        return new_task(session, external_id=report.accession, text=report.text,
                        analysis=corrected, report_id=report.id, source=CORRECTION_SOURCE,
                        note=note)
    untouched.pre_annotation = pre_annotation(corrected, report.text,
                                              external_id=report.accession)
    untouched.note = f"{untouched.note}\n{note}" if untouched.note else note
    session.add(untouched)
    return untouched


def _sync_request(fhir: FhirWriter, follow_up: FollowUp) -> None:
    """The recommendation's ServiceRequest status (and its Task's) follows its tracking."""
    sync_task(fhir, follow_up)
    if follow_up.withdrawn_at is not None:
        return  # the report mapping already marked it entered-in-error
    current = fhir.current("ServiceRequest", follow_up.fhir_id)
    if current is None or current.get("status") == "entered-in-error":
        return
    key = follow_up.manual_status or ("completed" if follow_up.completed_at else None)
    status = REQUEST_STATUS.get(key or "", "draft")
    if current.get("status") != status:
        fhir.put({**current, "status": status})
