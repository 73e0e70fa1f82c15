"""Re-analysing stored reports with the active model: each becomes a new version of its
report (same message, new analysis), so FHIR resources and follow-ups follow."""

from __future__ import annotations

from collections.abc import Sequence

from loguru import logger
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from nlp_service.intake.message import ParsedMessage
from nlp_service.storage.db import session_scope
from nlp_service.storage.models import InboxMessage, Report
from nlp_service.storage.reports import ReportDraft, prepare_report
from nlp_service.worker import assess_draft, store_drafts
from pipelines.pipeline import RadiologyPipeline, ReportInput
from pipelines.schema import AnalysisError, ReportAnalysis


def reanalyze(engine: Engine, pipeline: RadiologyPipeline,
              accessions: Sequence[str] | None = None, *, batch_size: int = 64,
              only_other_models: bool = True) -> dict[str, int]:
    """Re-analyse the current versions of ``accessions`` (all current reports when None);
    with ``only_other_models``, reports the active model already made are skipped."""
    ids = reports_to_reanalyze(engine, pipeline.model_version, accessions,
                               only_other_models=only_other_models)
    counts = {"reanalysed": 0, "failed": 0}
    for start in range(0, len(ids), batch_size):
        texts = report_texts(engine, ids[start:start + batch_size])
        results = dict(zip(texts, pipeline.analyze_stream(
            (ReportInput(accession, text) for accession, text in texts.values()),
            batch_size=batch_size), strict=True))
        for key, value in store_analyses(engine, results).items():
            counts[key] += value
    return counts


def reports_to_reanalyze(engine: Engine, model_version: str,
                         accessions: Sequence[str] | None = None, *,
                         only_other_models: bool = True) -> list[int]:
    """Ids of the current versions of ``accessions`` (all current reports when None) that came
    from a message; with ``only_other_models``, those ``model_version`` did not make."""
    query = select(Report.id).where(col(Report.is_current),
                                    col(Report.entered_in_error).is_(False),
                                    col(Report.inbox_id).is_not(None))
    if accessions is not None:
        query = query.where(col(Report.accession).in_(accessions))
    if only_other_models:
        query = query.where(Report.model_version != model_version)
    with Session(engine) as session:
        return [int(i) for i in session.exec(query.order_by(col(Report.id))).all()
                if i is not None]


def report_texts(engine: Engine, report_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """The accession and text of each stored report, by id (in id order)."""
    with Session(engine) as session:
        rows = session.exec(select(Report.id, Report.accession, Report.text).where(
            col(Report.id).in_(report_ids)).order_by(col(Report.id))).all()
    return {int(report_id): (accession, text) for report_id, accession, text in rows
            if report_id is not None}


def store_analyses(engine: Engine, results: dict[int, ReportAnalysis | AnalysisError]
                   ) -> dict[str, int]:
    """Store each analysis as a new version of its report (the worker's batch store path, one
    transaction); a report that is no longer current, or whose analysis failed or cannot be
    built, is counted as failed and changes nothing."""
    counts = {"reanalysed": 0, "failed": 0}
    with session_scope(engine) as session:
        current = list(session.exec(select(Report).where(
            col(Report.id).in_(list(results)), col(Report.is_current)).order_by(col(Report.id))))
        inbox = {row.id: row for row in session.exec(select(InboxMessage).where(
            col(InboxMessage.id).in_({r.inbox_id for r in current})))}
        drafts = []
        for report in current:
            assert report.id is not None
            result = results[report.id]
            if isinstance(result, ReportAnalysis) and result.id != report.accession:
                result = result.model_copy(update={"id": report.accession})
            draft = _draft(report, result, inbox.get(report.inbox_id))
            if draft is None:
                counts["failed"] += 1
            else:
                drafts.append((draft, assess_draft(draft)))
        counts["failed"] += len(results) - len(current)
        store_drafts(session, drafts)
        counts["reanalysed"] += len(drafts)
    return counts


def _draft(report: Report, result: ReportAnalysis | AnalysisError,
           inbox: InboxMessage | None) -> ReportDraft | None:
    """The new version of ``report`` with ``result``; None if it failed or its message is gone."""
    if isinstance(result, AnalysisError) or inbox is None or not inbox.parsed:
        return None
    message = ParsedMessage.from_dict(inbox.parsed)
    parsed = next((p for p in message.reports if p.accession == report.accession), None)
    if parsed is None:
        return None
    try:
        return prepare_report(message, parsed, result, inbox_id=report.inbox_id)
    except Exception:  # a version that cannot be built fails alone, not the batch
        logger.exception("re-analysis of report {} could not be prepared", report.id)
        return None
