"""Storing analysed reports: a new version per message, findings and recommendations rows,
and their FHIR resources; corrections supersede, cancellations mark entered-in-error."""

from __future__ import annotations

from sqlalchemy import insert
from sqlmodel import Session, col, func, select

from nlp_service.fhir import (
    build_report_resources,
    due_window,
    mark_entered_in_error,
    report_resource_id,
)
from nlp_service.intake.message import ParsedMessage, ParsedReport
from nlp_service.storage.fhir_store import FhirWriter
from nlp_service.storage.models import Finding, Recommendation, Report
from pipelines.schema import FindingOut, ReportAnalysis

LENGTH_TO_MM = {"mm": 1.0, "cm": 10.0}


def largest_size_mm(finding: FindingOut) -> float | None:
    """The largest measured dimension of a finding in millimetres, if any."""
    sizes = [max([m.value, *m.dimensions]) * LENGTH_TO_MM[m.unit.lower()]
             for m in finding.measurements if m.unit.lower() in LENGTH_TO_MM]
    return max(sizes) if sizes else None


def current_report(session: Session, accession: str) -> Report | None:
    return session.exec(select(Report).where(Report.accession == accession,
                                             col(Report.is_current))).one_or_none()


def store_report(session: Session, fhir: FhirWriter, message: ParsedMessage,
                 parsed: ParsedReport, analysis: ReportAnalysis | None, *,
                 inbox_id: int | None) -> Report:
    """Store one report version from ``parsed`` and its ``analysis`` (``None`` only for a
    cancellation, which reuses the analysis of the version it cancels); its FHIR resources
    go to ``fhir``, which the caller flushes before committing."""
    current = current_report(session, parsed.accession)
    latest = session.exec(select(func.max(Report.version)).where(
        Report.accession == parsed.accession)).one() or 0
    cancelled = parsed.result_status == "X"
    text = parsed.text
    if analysis is None:
        if current is not None and not text.strip():
            text = current.text
        analysis = (ReportAnalysis.model_validate(current.analysis) if current is not None
                    else ReportAnalysis(id=parsed.accession, model_version="none"))
    # A message older than the current version (a retried or reordered delivery) is kept as
    # history and changes nothing that is current.
    stale = (current is not None and current.inbox_id is not None and inbox_id is not None
             and inbox_id < current.inbox_id)
    report = Report(
        accession=parsed.accession, version=latest + 1, is_current=not stale,
        superseded_by=current.id if stale and current is not None else None,
        entered_in_error=cancelled, fhir_id=report_resource_id(parsed.accession),
        patient_mrn=message.patient_mrn, mrn_authority=message.patient_mrn_authority,
        patient_age_years=_age(message, parsed),
        placer_number=parsed.placer_number, procedure_code=parsed.procedure_code,
        procedure_name=parsed.procedure_name, procedure_system=parsed.procedure_system,
        modality=parsed.modality, body_region=parsed.body_region, observed_at=parsed.observed_at,
        result_status=parsed.result_status, ordering_provider=parsed.ordering_provider,
        interpreter=parsed.interpreter, text=text, model_version=analysis.model_version,
        analysis=analysis.model_dump(mode="json"), inbox_id=inbox_id,
        control_id=message.control_id)
    if current is not None and not stale:
        current.is_current = False
        session.add(current)
    session.add(report)
    session.flush()
    if current is not None and not stale:
        current.superseded_by = report.id
    resources = build_report_resources(message.patient_mrn, message.patient_mrn_authority,
                                       parsed, analysis, issued=message.message_time)
    observation_ids = {i: obs["id"] for i, obs in zip(
        _observed_indexes(analysis), resources.observations, strict=True)}
    _add_rows(session, report, analysis, observation_ids, [r["id"] for r in
                                                           resources.service_requests])
    if stale:
        return report
    written = resources.all()
    if cancelled:
        written = [mark_entered_in_error(resource) for resource in written
                   if resource["resourceType"] != "Patient"] + [resources.patient]
    fhir.prefetch((r["resourceType"], r["id"]) for r in written)
    for resource in written:
        fhir.put(resource)
    _retire_dropped(session, fhir, current, {(r["resourceType"], r["id"]) for r in written})
    return report


def _observed_indexes(analysis: ReportAnalysis) -> list[int]:
    return [i for i, finding in enumerate(analysis.findings) if not finding.in_indication]


def _add_rows(session: Session, report: Report, analysis: ReportAnalysis,
              observation_ids: dict[int, str], request_ids: list[str]) -> None:
    assert report.id is not None
    findings = []
    for index, finding in enumerate(analysis.findings):
        concept = finding.concept
        findings.append({
            "report_id": report.id, "index": index, "text": finding.text,
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
        due_start, due_end = due_window(report.observed_at, rec)
        recommendations.append({
            "report_id": report.id, "index": index, "text": rec.text, "start": rec.start,
            "end": rec.end, "modality": rec.modality, "body_region": rec.body_region,
            "interval_min_days": rec.interval_min_days,
            "interval_max_days": rec.interval_max_days, "due_start": due_start,
            "due_end": due_end, "conditional": rec.conditional, "guideline": rec.guideline,
            "finding_index": rec.finding_index, "fhir_id": fhir_id})
    if findings:
        session.exec(insert(Finding), params=findings)
    if recommendations:
        session.exec(insert(Recommendation), params=recommendations)


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
