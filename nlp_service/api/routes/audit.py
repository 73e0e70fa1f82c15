"""Follow-up audit: the worklist, compliance summaries and QPP measures (every list as JSON or
CSV, every figure reproducible with ``as_of``), and the quality team's actions on follow-ups:
decisions, assignment and notes (navigator or admin keys; each is an event naming the key)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from nlp_service.api.access import MAX_LISTED_PATIENTS, note_bulk, note_patients
from nlp_service.api.deps import EngineDep, Offset, RowId, SessionDep
from nlp_service.api.security import Principal, require_roles
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
    tracked_kinds,
)
from nlp_service.audit.rules import KINDS
from nlp_service.audit.tracking import (
    DECISIONS,
    STATUSES,
    add_note,
    assign,
    set_decision,
    status_at,
)
from nlp_service.storage.access_log import patient_ids_of, patient_ids_of_reports
from nlp_service.storage.db import session_scope
from nlp_service.storage.fhir_store import FhirWriter
from nlp_service.storage.models import FollowUp, FollowUpEvent

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

Format = Annotated[Literal["json", "csv"], Query(description="json, or csv for a download")]
AsOf = Annotated[datetime | None, Query(description="Evaluate states on this date (default "
                                                    "now), for reproducible figures.")]


Kinds = Annotated[list[str] | None, Query(
    alias="kind", description=f"Recommendation kinds, any of {', '.join(KINDS)} (repeat for "
                              "several); default: the kinds the follow-up rules track")]
# Acting on follow-ups: navigator keys (admin always). The actor is the calling key.
act = require_roles("navigator")
Actor = Annotated[Principal | None, Depends(act)]
# Who acted when access control is off (RADNLP_AUTH_REQUIRED=false: tests, never production).
UNAUTHENTICATED = "unauthenticated"


class DecisionCreate(BaseModel):
    """A decision on a follow-up; who made it is the calling key, never a field."""

    model_config = {"extra": "forbid"}

    status: Literal["not_needed", "completed_elsewhere", "not_a_recommendation", "cancelled",
                    "open"] = Field(
        description="A decision (not_a_recommendation: an extraction error, which also queues "
                    "the report for annotation with the correction), or open to undo the "
                    "last one.")
    reason: str = Field(min_length=1, max_length=2000, pattern=r"\S")


class AssignmentCreate(BaseModel):
    """Give a follow-up to a person, or take it back (assignee null or empty)."""

    model_config = {"extra": "forbid"}

    assignee: str | None = Field(max_length=200, description="Who works on it; null unassigns.")
    note: str = Field(default="", max_length=2000)


class NoteCreate(BaseModel):
    model_config = {"extra": "forbid"}

    text: str = Field(min_length=1, max_length=4000, pattern=r"\S")


def _as_of(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _filters(status: list[str] | None, report_from: datetime | None,
             report_to: datetime | None, modality: str | None, finding: str | None,
             patient: str | None, ordering_provider: str | None, radiologist: str | None,
             guideline_verdict: str | None, include_conditional: bool,
             kinds: list[str] | None = None) -> AuditFilters:
    try:
        return AuditFilters(status=tuple(status) if status else None, report_from=report_from,
                            report_to=report_to, modality=modality, finding=finding,
                            patient=patient, ordering_provider=ordering_provider,
                            radiologist=radiologist, guideline_verdict=guideline_verdict,
                            include_conditional=include_conditional,
                            kinds=tuple(dict.fromkeys(kinds)) if kinds else tracked_kinds())
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc


def _actor(principal: Principal | None) -> tuple[str, str | None]:
    """(name, key id) of who acts: the calling key."""
    return (principal.name, principal.key_id) if principal else (UNAUTHENTICATED, None)


def _event_dict(event: FollowUpEvent) -> dict[str, Any]:
    return event.model_dump(exclude={"follow_up_id"})


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
    kinds: Kinds = None,
    sort: Annotated[str, Query(description="due_end, report_time or id; -key descending")]
    = "due_end",
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
) -> Any:
    """Follow-ups with their state on ``as_of``, filtered, sorted and paged; ``kinds`` in the
    answer are the recommendation kinds it covers."""
    when = _as_of(as_of)
    filters = _filters(status, report_from, report_to, modality, finding, patient,
                       ordering_provider, radiologist, guideline_verdict, include_conditional,
                       kinds)
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
    return JSONResponse(jsonable_encoder({"as_of": when, "kinds": filters.kinds, "total": total,
                                          "offset": offset, "limit": limit, "items": items}))


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
        "history": [_event_dict(event) for event in events]}))


@router.get("/me", summary="The calling key and what it may do here")
def me(request: Request) -> Any:
    """Its key id, name and roles, whether it may act on follow-ups (navigator or admin), the
    decisions it can record, every recommendation kind and those counted by default."""
    principal: Principal | None = getattr(request.state, "principal", None)
    auth_off = not request.app.state.settings.auth_required
    roles = sorted(principal.roles) if principal else []
    return {"key_id": principal.key_id if principal else None,
            "name": principal.name if principal else None, "roles": roles,
            "can_act": auth_off or bool({"navigator", "admin"} & set(roles)),
            "decisions": list(DECISIONS), "kinds": list(KINDS),
            "tracked_kinds": list(tracked_kinds())}


NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such follow-up."}}


def _acted_on(session: Session, follow_up_id: int, request: Request) -> FollowUp:
    follow_up = session.get(FollowUp, follow_up_id)
    if follow_up is None:
        raise HTTPException(status_code=404, detail=f"follow-up {follow_up_id} not found")
    note_patients(request, patient_ids_of([follow_up]))
    return follow_up


@router.post("/recommendations/{follow_up_id}/decision", summary="Record a decision",
             responses=NOT_FOUND)
def decide(follow_up_id: RowId, decision: DecisionCreate, request: Request,
           engine: EngineDep, principal: Actor) -> Any:
    """Set not_needed, completed_elsewhere, not_a_recommendation or cancelled (or open to
    undo), with a reason; the calling key is the actor. not_a_recommendation leaves the rates
    and queues the report for annotation without that recommendation
    (``annotation_task_id``)."""
    now = datetime.now(UTC)
    actor, key_id = _actor(principal)
    with session_scope(engine) as session:
        follow_up = _acted_on(session, follow_up_id, request)
        fhir = FhirWriter(session, now)
        event = set_decision(session, fhir, follow_up, decision.status, actor=actor,
                             actor_key_id=key_id, reason=decision.reason, at=now)
        fhir.flush()
        session.flush()
        state = session.exec(select(status_at(now)).where(FollowUp.id == follow_up_id)).one()
        answer = {"id": follow_up_id, "status": state, "decided_at": now,
                  "decisions": list(DECISIONS),
                  "annotation_task_id": event.annotation_task_id, "event": _event_dict(event)}
    return JSONResponse(jsonable_encoder(answer))


@router.post("/recommendations/{follow_up_id}/assignment", summary="Assign or unassign",
             responses=NOT_FOUND)
def assign_follow_up(follow_up_id: RowId, body: AssignmentCreate, request: Request,
                     engine: EngineDep, principal: Actor) -> Any:
    """Give the follow-up to a person (``assignee``), or take it back (null)."""
    now = datetime.now(UTC)
    actor, key_id = _actor(principal)
    with session_scope(engine) as session:
        follow_up = _acted_on(session, follow_up_id, request)
        event = assign(session, follow_up, body.assignee, actor=actor, actor_key_id=key_id,
                       note=body.note, at=now)
        session.flush()
        answer = {"id": follow_up_id, "assignee": follow_up.assignee,
                  "event": _event_dict(event)}
    return JSONResponse(jsonable_encoder(answer))


@router.post("/recommendations/{follow_up_id}/notes", summary="Add a note", status_code=201,
             responses=NOT_FOUND)
def note_follow_up(follow_up_id: RowId, body: NoteCreate, request: Request,
                   engine: EngineDep, principal: Actor) -> Any:
    now = datetime.now(UTC)
    actor, key_id = _actor(principal)
    with session_scope(engine) as session:
        follow_up = _acted_on(session, follow_up_id, request)
        event = add_note(session, follow_up, body.text, actor=actor, actor_key_id=key_id,
                         at=now)
        session.flush()
        answer = {"id": follow_up_id, "event": _event_dict(event)}
    return JSONResponse(jsonable_encoder(answer), status_code=201)


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
    kinds: Kinds = None,
) -> Any:
    """Counts by state and completion / on-time rates (completed or past-due follow-ups;
    not needed, cancelled, not a recommendation and withdrawn ones are left out)."""
    when = _as_of(as_of)
    filters = _filters(None, report_from, report_to, modality, finding, None,
                       ordering_provider, radiologist, None, include_conditional, kinds)
    overall, groups = summary(session, filters, as_of=when, group_by=group_by)
    if format == "csv":
        rows = [g.as_dict() for g in groups] or [overall.as_dict()]
        return _csv(to_csv(rows, list(overall.as_dict())), "summary")
    return JSONResponse(jsonable_encoder({"as_of": when, "group_by": group_by,
                                   "kinds": filters.kinds, "overall": overall.as_dict(),
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

