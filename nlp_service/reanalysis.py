"""Re-analysing stored reports with the active model: each becomes a new version of its
report (same message, new analysis), so FHIR resources and follow-ups follow."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from nlp_service.audit.tracking import sync_report
from nlp_service.intake.message import ParsedMessage
from nlp_service.storage.db import session_scope
from nlp_service.storage.fhir_store import FhirWriter
from nlp_service.storage.models import InboxMessage, Report, utcnow
from nlp_service.storage.reports import store_report
from pipelines.pipeline import RadiologyPipeline, ReportInput
from pipelines.schema import AnalysisError


def reanalyze(engine: Engine, pipeline: RadiologyPipeline,
              accessions: Sequence[str] | None = None, *, batch_size: int = 64,
              only_other_models: bool = True) -> dict[str, int]:
    """Re-analyse the current versions of ``accessions`` (all current reports when None);
    with ``only_other_models``, reports the active model already made are skipped."""
    query = select(Report.id).where(col(Report.is_current),
                                    col(Report.entered_in_error).is_(False),
                                    col(Report.inbox_id).is_not(None))
    if accessions is not None:
        query = query.where(col(Report.accession).in_(accessions))
    if only_other_models:
        query = query.where(Report.model_version != pipeline.model_version)
    with Session(engine) as session:
        ids = list(session.exec(query.order_by(col(Report.id))).all())
    counts = {"reanalysed": 0, "failed": 0}
    for start in range(0, len(ids), batch_size):
        with session_scope(engine) as session:
            reports = [session.get(Report, i) for i in ids[start:start + batch_size]]
            current = [r for r in reports if r is not None and r.is_current]
            results = list(pipeline.analyze_stream(
                (ReportInput(r.accession, r.text) for r in current), batch_size=batch_size))
            fhir = FhirWriter(session, utcnow())
            for report, result in zip(current, results, strict=True):
                inbox = session.get(InboxMessage, report.inbox_id)
                if isinstance(result, AnalysisError) or inbox is None or not inbox.parsed:
                    counts["failed"] += 1
                    continue
                message = ParsedMessage.from_dict(inbox.parsed)
                parsed = next((p for p in message.reports if p.accession == report.accession),
                              None)
                if parsed is None:
                    counts["failed"] += 1
                    continue
                row = store_report(session, fhir, message, parsed, result,
                                   inbox_id=report.inbox_id)
                sync_report(session, fhir, row, result, now=fhir.now)
                counts["reanalysed"] += 1
            fhir.flush()
    return counts
