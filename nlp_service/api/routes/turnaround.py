"""Turnaround KPIs: median and 90th percentile minutes from the exam to the first preliminary
and final results and to the documented communication of critical findings, by modality and
month (JSON or CSV)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from nlp_service.api.deps import SessionDep
from nlp_service.audit.queries import to_csv
from nlp_service.audit.turnaround import INTERVALS, TURNAROUND_COLUMNS, timings, turnaround

router = APIRouter(prefix="/api/v1/audit", tags=["turnaround"])


@router.get("/turnaround", summary="Turnaround times by modality and month",
            operation_id="turnaround-summary")
def turnaround_summary(
    session: SessionDep,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
    exam_from: datetime | None = None, exam_to: datetime | None = None,
    modality: str | None = None,
) -> Any:
    rows = turnaround(timings(session, exam_from=exam_from, exam_to=exam_to,
                              modality=modality))
    if format == "csv":
        return Response(to_csv(rows, TURNAROUND_COLUMNS), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": 'attachment; filename="turnaround.csv"'})
    return {"intervals": list(INTERVALS), "items": rows}
