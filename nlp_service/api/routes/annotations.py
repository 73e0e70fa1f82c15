"""Annotation tasks: create them (from stored reports, files or an audit query), the queue,
each annotator's saved work, agreement, adjudication into gold, export and import."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, ValidationError
from sqlmodel import Session, col, func, select

from annotations.agreement import agreement_report
from annotations.document import AnnotatedReport
from annotations.export import read_jsonl_text, to_docbin, to_jsonl_text
from nlp_service.api.access import note_patients
from nlp_service.api.deps import MAX_ROW_ID, EngineDep, Offset, PipelineDep, RowId, SessionDep
from nlp_service.api.limits import json_depth_refusal
from nlp_service.api.security import may_read_reports
from nlp_service.audit.tracking import status_at
from nlp_service.security import REPORT_READERS
from nlp_service.storage.access_log import patient_ids_of_reports
from nlp_service.storage.annotation_tasks import new_task
from nlp_service.storage.db import session_scope
from nlp_service.storage.models import AnnotationTask, FollowUp, Report, TaskAnnotation
from pipelines.pipeline import RadiologyPipeline, ReportInput
from pipelines.schema import AnalysisError, ReportAnalysis

router = APIRouter(prefix="/api/v1/annotations", tags=["annotations"])

Annotator = Annotated[str, Query(min_length=1, max_length=200, pattern=r"^[\w.@-]+$",
                                 description="Annotator name")]


class TextDocument(BaseModel):
    id: str = Field(min_length=1, max_length=200)
    text: str = Field(min_length=1)


class TaskCreate(BaseModel):
    """Where the reports come from: stored report ids, texts (files), or a query."""

    model_config = {"extra": "forbid"}

    report_ids: list[Annotated[int, Field(ge=1, le=MAX_ROW_ID)]] = Field(
        default_factory=list, max_length=5000)
    documents: list[TextDocument] = Field(default_factory=list, max_length=5000)
    follow_up_status: Literal["overdue", "open", "completed_late"] | None = Field(
        default=None, description="The source reports of follow-ups in this state today.")


class AnnotationSave(BaseModel):
    document: dict[str, Any] = Field(description="The annotated report in the gold form.")
    state: Literal["draft", "submitted"] = "draft"


class GoldSave(BaseModel):
    document: dict[str, Any]
    adjudicator: str = Field(min_length=1, max_length=200)


def _task_summary(task: AnnotationTask, annotations: list[TaskAnnotation]) -> dict[str, Any]:
    return {"id": task.id, "external_id": task.external_id, "report_id": task.report_id,
            "source": task.source, "note": task.note, "model_version": task.model_version,
            "uncertainty": task.uncertainty, "status": task.status,
            "annotators": {a.annotator: a.state for a in annotations},
            "created_at": task.created_at.isoformat()}


def _analyse(pipeline: RadiologyPipeline, items: list[tuple[str, str]]
             ) -> list[ReportAnalysis | AnalysisError]:
    return list(pipeline.analyze_stream(ReportInput(i, t) for i, t in items))


@router.post("/tasks", status_code=201, summary="Create annotation tasks")
async def create_tasks(request: TaskCreate, http_request: Request, pipeline: PipelineDep,
                       engine: EngineDep) -> Any:
    """Pre-annotate each report with the active model and queue it (ordered by the model's
    uncertainty). Stored reports (by id or by follow-up state) need a role that may read
    them: a task shows its report's text."""
    if (request.report_ids or request.follow_up_status) and not may_read_reports(http_request):
        raise HTTPException(status_code=403, detail=(
            "tasks from stored reports (report_ids, follow_up_status) need a role that reads "
            f"reports: {', '.join(REPORT_READERS)} or admin; annotators may send documents"))
    items: list[tuple[str, str, int | None, str]] = []
    with Session(engine) as session:
        report_ids = list(request.report_ids)
        if request.follow_up_status:
            now = datetime.now(UTC)
            report_ids += list(session.exec(select(FollowUp.source_report_id).where(
                status_at(now) == request.follow_up_status).distinct()).all())
        for wanted in dict.fromkeys(report_ids):
            report = session.get(Report, wanted)
            if report is None:
                raise HTTPException(status_code=404, detail=f"report {wanted} not found")
            source = "query" if wanted not in request.report_ids else "report"
            items.append((report.accession, report.text, report.id, source))
        note_patients(http_request, patient_ids_of_reports(
            session, [report_id for _, _, report_id, _ in items]))
    items += [(d.id, d.text, None, "file") for d in request.documents]
    if not items:
        raise HTTPException(status_code=422, detail="nothing to annotate: give report_ids, "
                                                    "documents or follow_up_status")
    results = await run_in_threadpool(_analyse, pipeline, [(i, t) for i, t, _, _ in items])
    created = []
    with session_scope(engine) as session:
        for (external_id, text, report_id, source), result in zip(items, results, strict=True):
            if isinstance(result, AnalysisError):
                raise HTTPException(status_code=422,
                                    detail=f"{external_id}: cannot be analysed: {result.error}")
            task = new_task(session, external_id=external_id, text=text, analysis=result,
                            report_id=report_id, source=source)
            created.append(_task_summary(task, []))
    return JSONResponse({"created": created}, status_code=201)


@router.get("/tasks", summary="The annotation queue")
def queue(session: SessionDep, annotator: str | None = None,
          order: Literal["uncertainty", "created"] = "uncertainty",
          status: Literal["open", "adjudicated"] | None = "open",
          offset: Offset = 0,
          limit: Annotated[int, Query(ge=1, le=500)] = 50) -> Any:
    """Tasks, most uncertain first by default; ``annotator`` leaves out the ones they
    submitted."""
    query = select(AnnotationTask)
    if status:
        query = query.where(AnnotationTask.status == status)
    if annotator:
        done = select(TaskAnnotation.task_id).where(TaskAnnotation.annotator == annotator,
                                                    TaskAnnotation.state == "submitted")
        query = query.where(col(AnnotationTask.id).not_in(done))
    order_by = ((col(AnnotationTask.uncertainty).desc().nulls_last(), col(AnnotationTask.id))
                if order == "uncertainty" else (col(AnnotationTask.id),))
    tasks = session.exec(query.order_by(*order_by).offset(offset).limit(limit)).all()
    ids = [t.id for t in tasks]
    saved = session.exec(select(TaskAnnotation).where(col(TaskAnnotation.task_id).in_(ids))).all()
    return {"items": [_task_summary(t, [a for a in saved if a.task_id == t.id]) for t in tasks]}


def _task(session: Session, task_id: int) -> AnnotationTask:
    task = session.get(AnnotationTask, task_id)
    if task is None:
        raise HTTPException(status_code=404, detail=f"task {task_id} not found")
    return task


@router.get("/tasks/{task_id}", summary="A task for one annotator")
def read_task(task_id: RowId, request: Request, session: SessionDep,
              annotator: str | None = None) -> Any:
    """The text, the model's pre-annotation, and the annotator's saved work (if any)."""
    task = _task(session, task_id)
    note_patients(request, patient_ids_of_reports(session, [task.report_id]))
    annotations = session.exec(select(TaskAnnotation).where(
        TaskAnnotation.task_id == task_id)).all()
    mine = next((a for a in annotations if a.annotator == annotator), None)
    return {**_task_summary(task, list(annotations)), "text": task.text,
            "pre_annotation": task.pre_annotation, "gold": task.gold,
            "annotation": mine.document if mine else None,
            "state": mine.state if mine else None,
            "updated_at": mine.updated_at.isoformat() if mine else None}


def _document(data: dict[str, Any], task: AnnotationTask, annotator: str) -> AnnotatedReport:
    try:
        document = AnnotatedReport.from_gold_dict({**data, "id": task.external_id,
                                                   "annotator": annotator})
    except (ValidationError, ValueError, KeyError, TypeError) as exc:
        raise HTTPException(status_code=422, detail=f"invalid annotation: {exc}") from exc
    if document.text != task.text:
        raise HTTPException(status_code=422, detail="the annotation's text is not the task's")
    return document


@router.put("/tasks/{task_id}/annotations/{annotator}", summary="Save an annotator's work")
def save_annotation(task_id: RowId, annotator: str, body: AnnotationSave,
                    engine: EngineDep) -> Any:
    """Save a draft or submit; the stored document is validated (offsets match the text)."""
    if not annotator.replace(".", "").replace("-", "").replace("_", "").replace("@", "") \
            .isalnum():
        raise HTTPException(status_code=422, detail="annotator names are letters, digits and "
                                                    "._-@")
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        task = _task(session, task_id)
        document = _document(body.document, task, annotator)
        row = session.exec(select(TaskAnnotation).where(
            TaskAnnotation.task_id == task_id, TaskAnnotation.annotator == annotator)
        ).one_or_none() or TaskAnnotation(task_id=task_id, annotator=annotator, document={})
        row.document, row.state, row.updated_at = document.to_gold_dict(), body.state, now
        session.add(row)
    return {"task_id": task_id, "annotator": annotator, "state": body.state,
            "updated_at": now.isoformat()}


@router.get("/tasks/{task_id}/annotations", summary="Every annotator's work on a task")
def task_annotations(task_id: RowId, request: Request, session: SessionDep) -> Any:
    task = _task(session, task_id)
    note_patients(request, patient_ids_of_reports(session, [task.report_id]))
    rows = session.exec(select(TaskAnnotation).where(TaskAnnotation.task_id == task_id)
                        .order_by(col(TaskAnnotation.annotator))).all()
    return {"task_id": task.id, "text": task.text, "gold": task.gold,
            "annotations": [{"annotator": r.annotator, "state": r.state,
                             "document": r.document} for r in rows]}


@router.put("/tasks/{task_id}/gold", summary="Adjudicate a task into its gold version")
def adjudicate(task_id: RowId, body: GoldSave, engine: EngineDep) -> Any:
    with session_scope(engine) as session:
        task = _task(session, task_id)
        document = _document(body.document, task, body.adjudicator)
        task.gold, task.status, task.adjudicated_by = (document.to_gold_dict(), "adjudicated",
                                                       body.adjudicator)
        session.add(task)
    return {"task_id": task_id, "status": "adjudicated", "adjudicator": body.adjudicator}


@router.get("/adjudication", summary="Tasks awaiting adjudication")
def adjudication_queue(session: SessionDep, offset: Offset = 0,
                       limit: Annotated[int, Query(ge=1, le=500)] = 100) -> Any:
    """Open tasks with two or more submitted annotations, oldest first, each with the span F1
    and assertion kappa of every pair of its annotators."""
    ready = (select(TaskAnnotation.task_id).where(TaskAnnotation.state == "submitted")
             .group_by(col(TaskAnnotation.task_id))
             .having(func.count(col(TaskAnnotation.id)) >= 2))
    tasks = session.exec(select(AnnotationTask).where(
        AnnotationTask.status == "open", col(AnnotationTask.id).in_(ready))
        .order_by(col(AnnotationTask.id)).offset(offset).limit(limit)).all()
    rows = session.exec(select(TaskAnnotation).where(
        col(TaskAnnotation.task_id).in_([t.id for t in tasks]))).all()
    items = []
    for task in tasks:
        own = [r for r in rows if r.task_id == task.id]
        submitted = {r.annotator: [AnnotatedReport.from_gold_dict(r.document)]
                     for r in own if r.state == "submitted"}
        pairs = [{key: pair[key] for key in ("annotators", "span_f1", "assertion_kappa",
                                             "matched_findings")}
                 for pair in agreement_report(submitted).as_dict()["pairs"]]
        items.append({**_task_summary(task, own), "submitted": sorted(submitted),
                      "agreement": pairs})
    return {"items": items}


def _submitted(session: Session) -> dict[str, list[AnnotatedReport]]:
    by_annotator: dict[str, list[AnnotatedReport]] = {}
    for row in session.exec(select(TaskAnnotation).where(TaskAnnotation.state == "submitted")
                            .order_by(col(TaskAnnotation.task_id))).all():
        by_annotator.setdefault(row.annotator, []).append(
            AnnotatedReport.from_gold_dict(row.document))
    return by_annotator


@router.get("/agreement", summary="Inter-annotator agreement")
def agreement(session: SessionDep) -> Any:
    """Span F1 (overall and per label) and Cohen's kappa on assertions, per annotator pair,
    over the submitted annotations of the tasks both annotated."""
    return agreement_report(_submitted(session)).as_dict()


def accepted_documents(session: Session) -> list[tuple[AnnotationTask, AnnotatedReport]]:
    """The accepted annotation of each task: its gold version when adjudicated, else its only
    submitted annotation (tasks with several unadjudicated annotations are left out)."""
    out = []
    for task in session.exec(select(AnnotationTask).order_by(col(AnnotationTask.id))).all():
        if task.gold is not None:
            out.append((task, AnnotatedReport.from_gold_dict(task.gold)))
            continue
        submitted = session.exec(select(TaskAnnotation).where(
            TaskAnnotation.task_id == task.id, TaskAnnotation.state == "submitted")).all()
        if len(submitted) == 1:
            out.append((task, AnnotatedReport.from_gold_dict(submitted[0].document)))
    return out


@router.get("/export", summary="Export accepted annotations")
def export(request: Request, session: SessionDep,
           format: Literal["jsonl", "docbin"] = "jsonl") -> Response:
    """JSON Lines with character offsets (the gold form), or a spaCy DocBin."""
    accepted = accepted_documents(session)
    note_patients(request, patient_ids_of_reports(session, [t.report_id for t, _ in accepted]))
    documents = [d.model_copy(update={"split": d.split or "train"}) for _, d in accepted]
    if format == "docbin":
        return Response(to_docbin(documents), media_type="application/octet-stream",
                        headers={"Content-Disposition": 'attachment; filename="annotations.spacy"'})
    return Response(to_jsonl_text(documents), media_type="application/x-ndjson",
                    headers={"Content-Disposition": 'attachment; filename="annotations.jsonl"'})


@router.post("/import", status_code=201, summary="Import annotated reports",
             openapi_extra={"requestBody": {"content": {"application/x-ndjson": {
                 "schema": {"type": "string"}}}, "required": True}})
async def import_annotations(request: Request, engine: EngineDep,
                             annotator: Annotator = "import") -> Any:
    """Gold-form JSON Lines: each report becomes a task with this annotator's submitted
    annotation."""
    raw = await request.body()
    if (refusal := json_depth_refusal(raw)) is not None:  # whatever its content type
        raise HTTPException(status_code=422, detail=refusal)
    body = raw.decode("utf-8", errors="replace")
    try:
        documents = read_jsonl_text(body)
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    created = []
    with session_scope(engine) as session:
        for document in documents:
            task = AnnotationTask(external_id=document.id, source="import", text=document.text,
                                  pre_annotation=document.to_gold_dict(),
                                  model_version=document.model_version or "imported")
            session.add(task)
            session.flush()
            assert task.id is not None
            session.add(TaskAnnotation(task_id=task.id, annotator=annotator, state="submitted",
                                       document=document.to_gold_dict()))
            created.append(task.id)
    return JSONResponse({"created": created}, status_code=201)
