"""Annotation tasks: one report queued for annotators, pre-annotated from an analysis and
ranked by the model's uncertainty. Every way of making a task (the annotations API, a
follow-up marked "not a recommendation") goes through ``new_task``."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from annotations.active_learning import uncertainty
from annotations.document import AnnotatedReport
from nlp_service.storage.models import AnnotationTask
from pipelines.schema import ReportAnalysis


def pre_annotation(analysis: ReportAnalysis, text: str, *, external_id: str) -> dict[str, Any]:
    """The task's starting point: ``analysis`` as a gold-form document, every item pending."""
    return AnnotatedReport.from_analysis(analysis, text, report_id=external_id).to_gold_dict()


def new_task(session: Session, *, external_id: str, text: str, analysis: ReportAnalysis,
             report_id: int | None, source: str, note: str | None = None) -> AnnotationTask:
    """Queue ``text`` pre-annotated from ``analysis`` (every item pending review), flushed so
    it has its id. ``source`` says where it came from (report, file, query, follow_up);
    ``note`` why, when a person asked for it."""
    task = AnnotationTask(external_id=external_id, report_id=report_id, source=source,
                          note=note, text=text,
                          pre_annotation=pre_annotation(analysis, text, external_id=external_id),
                          model_version=analysis.model_version,
                          uncertainty=uncertainty(analysis))
    session.add(task)
    session.flush()
    return task
