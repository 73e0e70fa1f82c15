"""Follow-up audit: the worklist, decisions, compliance summaries and QPP measures; every
list as JSON or CSV, every figure reproducible with ``as_of``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlmodel import col, select

from nlp_service.api.access import MAX_LISTED_PATIENTS, note_bulk, note_patients
from nlp_service.api.deps import EngineDep, Offset, RowId, SessionDep
from nlp_service.api.security import require_roles
from nlp_service.audit.queries import (
    FOLLOW_UP_COLUMNS,
    GROUPS,
    MEASURES,
    AuditFilters,
    GroupBy,
    follow_up_row,
    list_follow_ups,
    measure,
    summary,
    to_csv,
)
from nlp_service.audit.tracking import DECISIONS, STATUSES, set_decision, status_at
from nlp_service.storage.access_log import patient_ids_of, patient_ids_of_reports
from nlp_service.storage.db import session_scope
from nlp_service.storage.fhir_store import FhirWriter
from nlp_service.storage.models import FollowUp, FollowUpEvent

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

Format = Annotated[Literal["json", "csv"], Query(description="json, or csv for a download")]
AsOf = Annotated[datetime | None, Query(description="Evaluate states on this date (default "
                                                    "now), for reproducible figures.")]


class DecisionCreate(BaseModel):
    status: Literal["not_needed", "completed_elsewhere", "cancelled", "open"] = Field(
        description="A decision, or open to undo the last one.")
    reason: str = Field(min_length=1, max_length=2000)
    actor: str = Field(min_length=1, max_length=200, description="Who decided.")


def _as_of(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _filters(status: list[str] | None, report_from: datetime | None,
             report_to: datetime | None, modality: str | None, finding: str | None,
             patient: str | None, ordering_provider: str | None, radiologist: str | None,
             guideline_verdict: str | None, include_conditional: bool) -> AuditFilters:
    try:
        return AuditFilters(status=tuple(status) if status else None, report_from=report_from,
                            report_to=report_to, modality=modality, finding=finding,
                            patient=patient, ordering_provider=ordering_provider,
                            radiologist=radiologist, guideline_verdict=guideline_verdict,
                            include_conditional=include_conditional)
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc


def _csv(text: str, name: str) -> Response:
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


@router.get("/recommendations", summary="Follow-up worklist")
def recommendations(
    request: Request, session: SessionDep, as_of: AsOf = None, format: Format = "json",
    status: Annotated[list[str] | None, Query(description=f"Any of {', '.join(STATUSES)}")]
    = None,
    report_from: datetime | None = None, report_to: datetime | None = None,
    modality: str | None = None, finding: str | None = None,
    patient: Annotated[str | None, Query(description="Patient MRN")] = None,
    ordering_provider: str | None = None, radiologist: str | None = None,
    guideline_verdict: str | None = None, include_conditional: bool = True,
    sort: Annotated[str, Query(description="due_end, report_time or id; -key descending")]
    = "due_end",
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
) -> Any:
    """Follow-ups with their state on ``as_of``, filtered, sorted and paged."""
    when = _as_of(as_of)
    filters = _filters(status, report_from, report_to, modality, finding, patient,
                       ordering_provider, radiologist, guideline_verdict, include_conditional)
    try:
        total, rows = list_follow_ups(session, filters, as_of=when, offset=offset, limit=limit,
                                      sort=sort)
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    note_patients(request, patient_ids_of(follow_up for follow_up, _ in rows))
    items = [follow_up_row(follow_up, state) | {"report_id": follow_up.source_report_id,
                                                 "start": follow_up.start,
                                                 "end": follow_up.end}
             for follow_up, state in rows]
    if format == "csv":
        return _csv(to_csv(items, FOLLOW_UP_COLUMNS), "follow-ups")
    return JSONResponse(jsonable_encoder({"as_of": when, "total": total, "offset": offset,
                                   "limit": limit, "items": items}))


@router.get("/recommendations/{follow_up_id}", summary="One follow-up with its history")
def recommendation(follow_up_id: RowId, request: Request, session: SessionDep,
                   as_of: AsOf = None) -> Any:
    when = _as_of(as_of)
    row = session.exec(select(FollowUp, status_at(when)).where(
        FollowUp.id == follow_up_id)).one_or_none()
    if row is None:
        raise HTTPException(status_code=404, detail=f"follow-up {follow_up_id} not found")
    follow_up, state = row
    note_patients(request, patient_ids_of([follow_up]))
    events = session.exec(select(FollowUpEvent).where(
        FollowUpEvent.follow_up_id == follow_up_id).order_by(col(FollowUpEvent.at),
                                                               col(FollowUpEvent.id))).all()
    return JSONResponse(jsonable_encoder({
        **follow_up.model_dump(), "status": state, "as_of": when,
        "history": [event.model_dump(exclude={"follow_up_id"}) for event in events]}))


@router.post("/recommendations/{follow_up_id}/decision", summary="Record a decision",
             dependencies=[Depends(require_roles("admin"))],
             responses={404: {"description": "No such follow-up."}})
def decide(follow_up_id: RowId, decision: DecisionCreate, request: Request,
           engine: EngineDep) -> Any:
    """Set not_needed, completed_elsewhere or cancelled (or open to undo), with a reason."""
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        follow_up = session.get(FollowUp, follow_up_id)
        if follow_up is None:
            raise HTTPException(status_code=404, detail=f"follow-up {follow_up_id} not found")
        note_patients(request, patient_ids_of([follow_up]))
        fhir = FhirWriter(session, now)
        set_decision(session, fhir, follow_up, decision.status, actor=decision.actor,
                     reason=decision.reason, at=now)
        fhir.flush()
        state = session.exec(select(status_at(now)).where(FollowUp.id == follow_up_id)).one()
    return JSONResponse(jsonable_encoder({"id": follow_up_id, "status": state, "decided_at": now,
                                   "decisions": list(DECISIONS)}))


@router.get("/summary", summary="Compliance counts and rates")
def compliance_summary(
    session: SessionDep, as_of: AsOf = None, format: Format = "json",
    group_by: Annotated[GroupBy | None, Query(description=f"One of {', '.join(GROUPS)}")]
    = None,
    report_from: datetime | None = None, report_to: datetime | None = None,
    modality: str | None = None, finding: str | None = None,
    ordering_provider: str | None = None, radiologist: str | None = None,
    include_conditional: Annotated[bool, Query(description="Conditional recommendations "
                                                           "are left out by default.")] = False,
) -> Any:
    """Counts by state and completion / on-time rates (completed or past-due follow-ups)."""
    when = _as_of(as_of)
    filters = _filters(None, report_from, report_to, modality, finding, None,
                       ordering_provider, radiologist, None, include_conditional)
    overall, groups = summary(session, filters, as_of=when, group_by=group_by)
    if format == "csv":
        rows = [g.as_dict() for g in groups] or [overall.as_dict()]
        return _csv(to_csv(rows, list(overall.as_dict())), "summary")
    return JSONResponse(jsonable_encoder({"as_of": when, "group_by": group_by,
                                   "overall": overall.as_dict(),
                                   "groups": [g.as_dict() for g in groups]}))


@router.get("/measures/{number}", summary="QPP measure 364, 405 or 406")
def qpp_measure(number: str, request: Request, session: SessionDep, as_of: AsOf = None,
                format: Format = "json", report_from: datetime | None = None,
                report_to: datetime | None = None) -> Any:
    """Numerator, denominator, exclusions and rate, with the accessions behind each."""
    if number not in MEASURES:
        raise HTTPException(status_code=404, detail=f"measure {number!r} is not computed; "
                                                     f"available: {', '.join(MEASURES)}")
    when = _as_of(as_of)
    figures = measure(session, number, report_from=report_from, report_to=report_to,
                      as_of=when)
    accessions = {*figures.numerator_reports, *figures.denominator_reports,
                  *figures.excluded_reports}
    if len(accessions) > MAX_LISTED_PATIENTS:
        note_bulk(request, len(accessions))
    else:
        note_patients(request, patient_ids_of_reports(session, accessions=accessions))
    if format == "csv":
        rows = ([{"accession": a, "group": "numerator"} for a in figures.numerator_reports]
                + [{"accession": a, "group": "denominator"}
                   for a in figures.denominator_reports]
                + [{"accession": a, "group": "exclusion"} for a in figures.excluded_reports])
        return _csv(to_csv(rows, ["accession", "group"]), f"measure-{number}")
    return JSONResponse(jsonable_encoder({"as_of": when, **figures.as_dict()}))

