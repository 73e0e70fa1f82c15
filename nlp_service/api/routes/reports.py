"""Stored reports with their findings and recommendations, and analysis without storage."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from sqlmodel import col, func, select

from nlp_service.api.access import note_patients
from nlp_service.api.deps import Offset, PipelineDep, RowId, SessionDep, SettingsDep
from nlp_service.api.schemas import (
    AnalyzeRequest,
    CriticalPublic,
    FindingPublic,
    RecommendationPublic,
    ReportDetail,
    ReportPage,
    ReportPublic,
)
from nlp_service.api.security import require_roles
from nlp_service.audit.critical import critical_of_report
from nlp_service.security import REPORT_READERS
from nlp_service.storage.access_log import patient_ids_of
from nlp_service.storage.models import Finding, Recommendation, Report
from pipelines.pipeline import ReportInput
from pipelines.schema import AnalysisError, ReportAnalysis

router = APIRouter(prefix="/api/v1", tags=["reports"])
READERS = [Depends(require_roles(*REPORT_READERS))]


@router.get("/reports", response_model=ReportPage, summary="List reports",
            dependencies=READERS)
def list_reports(
    request: Request,
    session: SessionDep,
    accession: str | None = None,
    patient: Annotated[str | None, Query(description="Patient MRN (PID-3).")] = None,
    modality: str | None = None,
    status: Annotated[str | None, Query(pattern="^[PFCX]$",
                                        description="OBR-25 result status.")] = None,
    observed_from: datetime | None = None,
    observed_to: datetime | None = None,
    all_versions: Annotated[bool, Query(description="Include superseded versions.")] = False,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ReportPage:
    """Reports, newest observation first; current versions only unless ``all_versions``."""
    query = select(Report)
    if not all_versions:
        query = query.where(col(Report.is_current))
    if accession is not None:
        query = query.where(Report.accession == accession)
    if patient is not None:
        query = query.where(Report.patient_mrn == patient)
    if modality is not None:
        query = query.where(Report.modality == modality)
    if status is not None:
        query = query.where(Report.result_status == status)
    if observed_from is not None:
        query = query.where(col(Report.observed_at) >= observed_from)
    if observed_to is not None:
        query = query.where(col(Report.observed_at) <= observed_to)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(col(Report.observed_at).desc(), col(Report.id).desc())
                        .offset(offset).limit(limit)).all()
    note_patients(request, patient_ids_of(rows))
    return ReportPage(total=total, offset=offset, limit=limit,
                      items=[ReportPublic.model_validate(row) for row in rows])


@router.get("/reports/{report_id}", response_model=ReportDetail, summary="Read a report",
            dependencies=READERS,
            responses={404: {"description": "No such report."}})
def read_report(report_id: RowId, request: Request, session: SessionDep) -> ReportDetail:
    """One report version with its text, findings and recommendations."""
    report = session.get(Report, report_id)
    if report is None:
        raise HTTPException(status_code=404, detail=f"report {report_id} not found")
    findings = session.exec(select(Finding).where(Finding.report_id == report_id)
                            .order_by(col(Finding.index))).all()
    recommendations = session.exec(select(Recommendation)
                                   .where(Recommendation.report_id == report_id)
                                   .order_by(col(Recommendation.index))).all()
    versions = session.exec(select(Report.id).where(Report.accession == report.accession)
                            .order_by(col(Report.version))).all()
    note_patients(request, patient_ids_of([report]))
    return ReportDetail(
        **ReportPublic.model_validate(report).model_dump(), text=report.text,
        findings=[FindingPublic.model_validate(f) for f in findings],
        recommendations=[RecommendationPublic.model_validate(r) for r in recommendations],
        versions=[v for v in versions if v is not None],
        critical_findings=[CriticalPublic.model_validate(item)
                           for item in critical_of_report(session, report_id)])


@router.post("/analyze", response_model=ReportAnalysis, summary="Analyse a report text",
             responses={422: {"description": "Text that cannot be analysed, with the reason."}})
async def analyze(request: AnalyzeRequest, pipeline: PipelineDep,
                  settings: SettingsDep) -> ReportAnalysis:
    """Run the pipeline on ``text`` and return the analysis; nothing is stored."""
    if len(request.text) > settings.max_report_chars:
        raise HTTPException(status_code=413, detail=(
            f"text of {len(request.text)} characters exceeds the limit of "
            f"{settings.max_report_chars}"))
    results = await run_in_threadpool(
        lambda: list(pipeline.analyze_stream([ReportInput(request.id, request.text)])))
    result = results[0]
    if isinstance(result, AnalysisError):
        raise HTTPException(status_code=422, detail=result.error)
    return result
