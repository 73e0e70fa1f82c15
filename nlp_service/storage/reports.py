"""Storing analysed reports: a new version per message, findings and recommendations rows,
and their FHIR resources; corrections supersede, cancellations mark entered-in-error.

``prepare_report`` does everything that does not depend on the database (the row's values,
the analysis as JSON, the FHIR resources, built and validated, and what they are searchable by)
before any transaction, and ``ReportWriter`` stores a batch of prepared reports with a few
queries for the whole batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import MultipleResultsFound
from sqlmodel import Session, col, func, select

from nlp_service.audit.rules import recommendation_due_window
from nlp_service.fhir import (
    build_report_resources,
    mark_entered_in_error,
    report_resource_id,
)
from nlp_service.fhir.mapping import LENGTH_TO_MM, Resource
from nlp_service.fhir.search import SearchValues
from nlp_service.intake.message import ParsedMessage, ParsedReport
from nlp_service.storage.fhir_store import FhirWriter, content_search_values
from nlp_service.storage.models import Finding, Recommendation, Report, is_current
from pipelines.schema import FindingOut, ReportAnalysis


def largest_size_mm(finding: FindingOut) -> float | None:
    """The largest measured dimension of a finding in millimetres, if any."""
    sizes = [max([m.value, *m.dimensions]) * LENGTH_TO_MM[m.unit.lower()]
             for m in finding.measurements if m.unit.lower() in LENGTH_TO_MM]
    return max(sizes) if sizes else None


@dataclass(frozen=True)
class ReportDraft:
    """One report version ready to store. Without an analysis (a cancellation that reuses
    the analysis of the version it cancels) only the message parts are set, and the writer
    completes it once it has read that version."""

    message: ParsedMessage
    parsed: ParsedReport
    inbox_id: int | None
    analysis: ReportAnalysis | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # the Report row's values
    finding_rows: list[dict[str, Any]] = field(default_factory=list)
    recommendation_rows: list[dict[str, Any]] = field(default_factory=list)
    written: list[Resource] = field(default_factory=list)  # FHIR resources of a current version
    searches: list[SearchValues] = field(default_factory=list)  # what each is searchable by

    @property
    def resource_keys(self) -> list[tuple[str, str]]:
        return [(r["resourceType"], r["id"]) for r in self.written]

    @property
    def patient(self) -> tuple[str, str | None]:
        return self.message.patient_mrn, self.message.patient_mrn_authority


def prepare_report(message: ParsedMessage, parsed: ParsedReport,
                   analysis: ReportAnalysis | None, *, inbox_id: int | None) -> ReportDraft:
    """A draft of the version ``parsed`` makes, with everything computed that needs no
    database (``analysis`` is ``None`` only for a cancellation without its own text)."""
    draft = ReportDraft(message, parsed, inbox_id)
    return draft if analysis is None else _complete(draft, parsed.text, analysis)


def _complete(draft: ReportDraft, text: str, analysis: ReportAnalysis) -> ReportDraft:
    message, parsed = draft.message, draft.parsed
    cancelled = parsed.result_status == "X"
    fields = dict(
        accession=parsed.accession, entered_in_error=cancelled,
        fhir_id=report_resource_id(parsed.accession),
        patient_mrn=message.patient_mrn, mrn_authority=message.patient_mrn_authority,
        patient_age_years=_age(message, parsed),
        placer_number=parsed.placer_number, procedure_code=parsed.procedure_code,
        procedure_name=parsed.procedure_name, procedure_system=parsed.procedure_system,
        modality=parsed.modality, body_region=parsed.body_region, observed_at=parsed.observed_at,
        result_status=parsed.result_status, ordering_provider=parsed.ordering_provider,
        interpreter=parsed.interpreter, text=text, model_version=analysis.model_version,
        analysis=analysis.model_dump(mode="json"), inbox_id=draft.inbox_id,
        control_id=message.control_id)
    resources = build_report_resources(message.patient_mrn, message.patient_mrn_authority,
                                       parsed, analysis, issued=message.message_time)
    observation_ids = {i: obs["id"] for i, obs in zip(
        _observed_indexes(analysis), resources.observations, strict=True)}
    findings, recommendations = _rows(parsed, analysis, observation_ids,
                                      [r["id"] for r in resources.service_requests])
    written = resources.all()
    if cancelled:
        written = [mark_entered_in_error(resource) for resource in written
                   if resource["resourceType"] != "Patient"] + [resources.patient]
    return ReportDraft(message, parsed, draft.inbox_id, analysis, fields, findings,
                       recommendations, written, [content_search_values(r) for r in written])


@dataclass(frozen=True)
class StoredReport:
    """A stored version, the analysis it was stored with and its recommendation rows."""

    row: Report
    analysis: ReportAnalysis
    recommendations: list[Recommendation]


class ReportWriter:
    """Stores report versions in one session, their FHIR resources going to ``fhir`` (which
    the caller flushes before committing). ``preload`` reads the current version and the
    latest version number of a batch's accessions, and their FHIR resources, in one query
    each; the writer then keeps them up to date itself."""

    def __init__(self, session: Session, fhir: FhirWriter) -> None:
        self.session = session
        self.fhir = fhir
        self._current: dict[str, Report | None] = {}
        self._latest: dict[str, int] = {}

    def preload(self, drafts: Iterable[ReportDraft]) -> None:
        """Read what storing ``drafts`` needs from the database."""
        drafts = list(drafts)
        accessions = list(dict.fromkeys(d.parsed.accession for d in drafts
                                        if d.parsed.accession not in self._latest))
        if accessions:
            current: dict[str, Report | None] = dict.fromkeys(accessions)
            for report in self.session.exec(select(Report).where(
                    col(Report.accession).in_(accessions), is_current(Report))):
                if current[report.accession] is not None:
                    raise MultipleResultsFound(
                        f"accession {report.accession!r} has several current versions")
                current[report.accession] = report
            latest = dict.fromkeys(accessions, 0)
            latest.update(self.session.exec(
                select(Report.accession, func.max(Report.version))
                .where(col(Report.accession).in_(accessions)).group_by(Report.accession)).all())
            self._current.update(current)
            self._latest.update(latest)
        self.fhir.prefetch(key for draft in drafts for key in draft.resource_keys)

    def store(self, draft: ReportDraft) -> StoredReport:
        """Store the version ``draft`` makes of its report."""
        session, parsed = self.session, draft.parsed
        if parsed.accession not in self._latest:
            self.preload([draft])
        current = self._current[parsed.accession]
        if draft.analysis is None:
            text = (current.text if current is not None and not parsed.text.strip()
                    else parsed.text)
            draft = _complete(draft, text, (
                ReportAnalysis.model_validate(current.analysis) if current is not None
                else ReportAnalysis(id=parsed.accession, model_version="none")))
        assert draft.analysis is not None
        # A message older than the current version (a retried or reordered delivery) is kept
        # as history and changes nothing that is current.
        stale = (current is not None and current.inbox_id is not None
                 and draft.inbox_id is not None and draft.inbox_id < current.inbox_id)
        report = Report(**draft.fields, version=self._latest[parsed.accession] + 1,
                        is_current=not stale,
                        superseded_by=current.id if stale and current is not None else None)
        if current is not None and not stale:
            current.is_current = False
            session.add(current)
        session.add(report)
        session.flush()
        self._latest[parsed.accession] = report.version
        if not stale:
            self._current[parsed.accession] = report
            if current is not None:
                current.superseded_by = report.id
        recommendations = self._add_rows(report, draft)
        stored = StoredReport(report, draft.analysis, recommendations)
        if stale:
            return stored
        self.fhir.prefetch(draft.resource_keys)
        for resource, search in zip(draft.written, draft.searches, strict=True):
            self.fhir.put(resource, search)
        _retire_dropped(session, self.fhir, current, set(draft.resource_keys))
        return stored

    def _add_rows(self, report: Report, draft: ReportDraft) -> list[Recommendation]:
        assert report.id is not None
        owner = {"report_id": report.id}
        if draft.finding_rows:  # plain executemany: the ORM's bulk insert costs more per row
            self.session.connection().execute(insert(Finding), [{**row, **owner}
                                                                for row in draft.finding_rows])
        if not draft.recommendation_rows:
            return []
        # The rows come back as objects, so follow-up tracking need not read them again;
        # render_nulls, or the ORM makes a statement per pattern of None values.
        return list(self.session.exec(
            insert(Recommendation).execution_options(render_nulls=True)
            .returning(Recommendation, sort_by_parameter_order=True),
            params=[{**row, **owner} for row in draft.recommendation_rows]).scalars())


def _observed_indexes(analysis: ReportAnalysis) -> list[int]:
    return [i for i, finding in enumerate(analysis.findings) if not finding.in_indication]


def _rows(parsed: ParsedReport, analysis: ReportAnalysis, observation_ids: dict[int, str],
          request_ids: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The finding and recommendation rows of a version, without their ``report_id``."""
    findings = []
    for index, finding in enumerate(analysis.findings):
        concept = finding.concept
        findings.append({
            "index": index, "text": finding.text,
            "start": finding.start, "end": finding.end, "section": finding.section,
            "concept": concept.name if concept else None,
            "radlex": concept.radlex if concept else None,
            "snomed": concept.snomed if concept else None, "assertion": finding.assertion,
            "historical": finding.historical, "hypothetical": finding.hypothetical,
            "change": finding.change, "anatomy": finding.anatomy.name if finding.anatomy else None,
            "laterality": finding.laterality, "size_mm": largest_size_mm(finding),
            "in_indication": finding.in_indication, "fhir_id": observation_ids.get(index)})
    recommendations = []
    for index, (rec, fhir_id) in enumerate(zip(analysis.recommendations, request_ids,
                                                strict=True)):
        window = (recommendation_due_window(parsed.observed_at, rec, analysis.findings)
                  if parsed.observed_at is not None else None)
        recommendations.append({
            "index": index, "text": rec.text, "start": rec.start,
            "end": rec.end, "kind": rec.kind, "modality": rec.modality,
            "modalities": list(rec.modalities), "body_region": rec.body_region,
            "interval_min_days": rec.interval_min_days,
            "interval_max_days": rec.interval_max_days, "short_interval": rec.short_interval,
            "due_start": window.start if window else None,
            "due_end": window.end if window else None, "conditional": rec.conditional,
            "next_step": rec.next_step.model_dump() if rec.next_step else None,
            "guideline": rec.guideline,
            "finding_index": rec.finding_index, "fhir_id": fhir_id})
    return findings, recommendations


def _retire_dropped(session: Session, fhir: FhirWriter, previous: Report | None,
                    kept: set[tuple[str, str]]) -> None:
    """Mark entered-in-error the Observations and ServiceRequests of ``previous`` that the new
    version no longer has (a correction removed a finding or recommendation)."""
    if previous is None:
        return
    stale: list[tuple[str, str]] = []
    for fhir_id in session.exec(select(Finding.fhir_id).where(
            Finding.report_id == previous.id, col(Finding.fhir_id).is_not(None))).all():
        stale.append(("Observation", str(fhir_id)))
    for fhir_id in session.exec(select(Recommendation.fhir_id).where(
            Recommendation.report_id == previous.id)).all():
        stale.append(("ServiceRequest", fhir_id))
    dropped = [key for key in stale if key not in kept]
    fhir.prefetch(dropped)
    for key in dropped:
        resource = fhir.current(*key)
        if resource is not None:
            fhir.put(mark_entered_in_error(resource))


def _age(message: ParsedMessage, parsed: ParsedReport) -> float | None:
    """Age in years at the exam (for guideline checks), from PID-7 and OBR-7."""
    born, seen = message.patient_birth_date, parsed.observed_at
    if born is None or seen is None or seen.date() < born:
        return None
    return round((seen.date() - born).days / 365.25, 2)
