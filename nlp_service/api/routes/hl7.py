"""HL7 v2 over HTTP: ``POST /api/v1/hl7`` with the message as the body, the ACK as the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from sqlmodel import col, func, select

from nlp_service.api.access import note_patients
from nlp_service.api.deps import EngineDep, Offset, RowId, SessionDep, SettingsDep
from nlp_service.api.schemas import DeadLetterPage, DeadLetterPublic, InboxFailure, InboxStatus
from nlp_service.api.security import require_roles
from nlp_service.fhir.mapping import patient_resource_id
from nlp_service.intake.receiver import receive_message
from nlp_service.storage.db import session_scope
from nlp_service.storage.models import DeadLetter, InboxMessage

router = APIRouter(prefix="/api/v1", tags=["hl7"])

HL7_MEDIA_TYPE = "x-application/hl7-v2+er7"
ADMIN = [Depends(require_roles("admin"))]


@router.post(
    "/hl7",
    summary="Receive one HL7 v2 ORU^R01 message",
    response_class=Response,
    responses={200: {"description": "AA: the message is stored.",
                     "content": {HL7_MEDIA_TYPE: {}}},
               400: {"description": "AE/AR: the message was refused and kept as a dead letter; "
                                    "the ACK's ERR segment says why."},
               413: {"description": "The message exceeds RADNLP_MAX_MESSAGE_BYTES."},
               503: {"description": "AE: storage unavailable, send the message again."}},
    openapi_extra={"requestBody": {"required": True, "content": {
        HL7_MEDIA_TYPE: {"schema": {"type": "string"}},
        "text/plain": {"schema": {"type": "string"}}}}},
)
async def receive_hl7(request: Request, engine: EngineDep, settings: SettingsDep) -> Response:
    """The body is one ER7-encoded message; the answer is its ACK (AA only once stored)."""
    limit = settings.max_message_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return Response(f"message exceeds {limit} bytes", status_code=413,
                        media_type="text/plain")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            return Response(f"message exceeds {limit} bytes", status_code=413,
                            media_type="text/plain")
    source = f"http:{request.client.host}" if request.client else "http"
    receipt = await run_in_threadpool(receive_message, engine, bytes(body), source=source,
                                      max_bytes=limit,
                                      max_report_chars=settings.max_report_chars)
    status = 200 if receipt.ack_code == "AA" else 503 if receipt.storage_failed else 400
    return Response(receipt.ack, status_code=status, media_type=HL7_MEDIA_TYPE)


@router.get("/hl7/inbox", response_model=InboxStatus, summary="Inbox status",
            dependencies=ADMIN)
def inbox_status(request: Request, session: SessionDep,
                 limit: Annotated[int, Query(ge=1, le=500)] = 50) -> InboxStatus:
    """How many messages are waiting, in work, done and set aside; the set-aside ones."""
    counts = dict(session.exec(select(InboxMessage.status, func.count())
                               .group_by(col(InboxMessage.status))).all())
    failed = session.exec(select(InboxMessage).where(InboxMessage.status == "failed")
                          .order_by(col(InboxMessage.id).desc()).limit(limit)).all()
    # Each set-aside message is a patient's report: the answer is an access to it.
    note_patients(request, {patient_resource_id(row.parsed["patient_mrn"],
                                                row.parsed.get("patient_mrn_authority"))
                            for row in failed if row.parsed and row.parsed.get("patient_mrn")})
    return InboxStatus(counts={status: counts.get(status, 0) for status in
                               ("pending", "processing", "done", "failed")},
                       failed=[InboxFailure.model_validate(row) for row in failed])


@router.post("/hl7/inbox/{message_id}/retry", response_model=InboxFailure,
             summary="Retry a set-aside message", dependencies=ADMIN,
             responses={404: {"description": "No such message."},
                        409: {"description": "The message is not set aside."}})
def retry_message(message_id: RowId, engine: EngineDep) -> InboxFailure:
    """Put a set-aside (failed) message back in the queue with a fresh count of attempts."""
    with session_scope(engine) as session:
        row = session.get(InboxMessage, message_id)
        if row is None:
            raise HTTPException(status_code=404, detail=f"inbox message {message_id} not found")
        if row.status != "failed":
            raise HTTPException(status_code=409, detail=(
                f"inbox message {message_id} is {row.status}, not failed"))
        row.status, row.attempts = "pending", 0
        session.add(row)
        return InboxFailure.model_validate(row)


@router.get("/hl7/dead-letters", response_model=DeadLetterPage,
            summary="Refused messages", dependencies=ADMIN)
def dead_letters(session: SessionDep, offset: Offset = 0,
                 limit: Annotated[int, Query(ge=1, le=500)] = 50) -> DeadLetterPage:
    """Messages answered AE/AR, newest first, with the reason (the raw bytes are kept)."""
    total = session.exec(select(func.count()).select_from(DeadLetter)).one()
    rows = session.exec(select(DeadLetter).order_by(col(DeadLetter.id).desc())
                        .offset(offset).limit(limit)).all()
    return DeadLetterPage(total=total, offset=offset, limit=limit, items=[
        DeadLetterPublic.model_validate({**row.model_dump(exclude={"raw"}),
                                         "size": len(row.raw)}) for row in rows])
