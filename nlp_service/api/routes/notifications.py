"""Notification admin: webhooks (create, list, switch off), and the dead-letter list of
deliveries that ran out of attempts, each of which can be sent again."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field
from sqlmodel import col, select

from nlp_service.api.deps import EngineDep, Offset, RowId, SessionDep
from nlp_service.notify.dispatcher import dead_letters, resend
from nlp_service.notify.events import EVENT_KINDS
from nlp_service.notify.subscriptions import SubscriptionError, create_webhook
from nlp_service.storage.db import session_scope
from nlp_service.storage.models import NotificationTarget

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])


class WebhookCreate(BaseModel):
    model_config = {"extra": "forbid"}

    url: str = Field(min_length=8, max_length=2000, description="http(s) URL to POST to.")
    name: str | None = Field(default=None, max_length=200)
    event_kinds: list[str] = Field(default_factory=list,
                                   description=f"Any of {', '.join(EVENT_KINDS)}; none: all.")
    secret: str | None = Field(default=None, min_length=16, max_length=200,
                               description="HMAC key; made here when not given.")


class WebhookPublic(BaseModel):
    id: int
    url: str
    name: str | None
    event_kinds: list[str]
    status: str
    secret: str | None = Field(default=None, description="Shown once, when created.")


def _public(target: NotificationTarget, *, with_secret: bool = False) -> WebhookPublic:
    assert target.id is not None
    return WebhookPublic(id=target.id, url=target.url, name=target.name,
                         event_kinds=target.event_kinds, status=target.status,
                         secret=target.secret if with_secret else None)


@router.post("/webhooks", summary="Register a webhook", status_code=201,
             response_model=WebhookPublic, operation_id="notifications-create-webhook")
def add_webhook(body: WebhookCreate, engine: EngineDep) -> WebhookPublic:
    try:
        with session_scope(engine) as session:
            target = create_webhook(session, url=body.url, event_kinds=body.event_kinds,
                                    name=body.name, secret=body.secret)
            return _public(target, with_secret=True)
    except SubscriptionError as error:
        raise HTTPException(status_code=422, detail=str(error)) from error


@router.get("/webhooks", summary="Webhooks", response_model=list[WebhookPublic],
            operation_id="notifications-list-webhooks")
def list_webhooks(session: SessionDep) -> list[WebhookPublic]:
    return [_public(target) for target in session.exec(
        select(NotificationTarget).where(NotificationTarget.kind == "webhook")
        .order_by(col(NotificationTarget.id)))]


@router.post("/webhooks/{target_id}/off", summary="Stop sending to a webhook",
             response_model=WebhookPublic, operation_id="notifications-webhook-off")
def webhook_off(target_id: RowId, engine: EngineDep) -> WebhookPublic:
    with session_scope(engine) as session:
        target = session.get(NotificationTarget, target_id)
        if target is None or target.kind != "webhook":
            raise HTTPException(status_code=404, detail=f"no webhook {target_id}")
        target.status = "off"
        session.add(target)
        return _public(target)


@router.get("/dead-letters", summary="Deliveries that ran out of attempts",
            operation_id="notifications-dead-letters")
def list_dead_letters(session: SessionDep, offset: Offset = 0,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Any:
    return {"items": dead_letters(session, limit=limit, offset=offset)}


@router.post("/dead-letters/{delivery_id}/resend", summary="Send a dead delivery again",
             operation_id="notifications-resend")
def resend_dead_letter(delivery_id: RowId, engine: EngineDep) -> Any:
    with session_scope(engine) as session:
        row = resend(session, delivery_id)
        if row is None:
            raise HTTPException(status_code=404, detail=f"no dead delivery {delivery_id}")
        return {"id": row.id, "status": row.status}
