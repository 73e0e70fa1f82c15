"""Operations: liveness, readiness and Prometheus metrics.

/healthz and /readyz stay open for load balancers (they tell nothing about the data);
/metrics is for admin keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, func, select

from nlp_service.api.deps import EngineDep
from nlp_service.api.security import require_roles
from nlp_service.storage.db import read_only
from nlp_service.storage.models import InboxMessage

router = APIRouter(tags=["operations"])

INBOX_STATES = ("pending", "processing", "done", "failed")


@router.get("/healthz", summary="Liveness")
def healthz() -> Any:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness", responses={503: {"description": "Not ready."}})
def readyz(request: Request, engine: EngineDep) -> Any:
    """Ready when the database answers (and the schema is migrated)."""
    try:
        with Session(read_only(engine)) as session:
            session.exec(text("SELECT 1"))  # type: ignore[call-overload]
            session.exec(select(func.count()).select_from(InboxMessage)).one()
    except SQLAlchemyError as exc:
        return JSONResponse({"status": "unavailable", "database": type(exc).__name__},
                            status_code=503)
    pipeline = getattr(request.app.state, "pipeline", None)
    return {"status": "ready", "database": "ok",
            "model_version": pipeline.model_version if pipeline else None}


def _queue_lines(engine: Any) -> str:
    """The inbox depth by state, as Prometheus gauge lines (read at scrape time)."""
    counts: dict[str, int] = dict.fromkeys(INBOX_STATES, 0)
    try:
        with Session(read_only(engine)) as session:
            for state, count in session.exec(select(InboxMessage.status, func.count())
                                             .group_by(col(InboxMessage.status))).all():
                counts[state] = count
    except SQLAlchemyError:
        return "# radnlp_inbox_messages unavailable: database error\n"
    lines = ["# HELP radnlp_inbox_messages Inbox messages by state",
             "# TYPE radnlp_inbox_messages gauge"]
    lines += [f'radnlp_inbox_messages{{state="{state}"}} {count}'
              for state, count in counts.items()]
    return "\n".join(lines) + "\n"


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            dependencies=[Depends(require_roles("admin"))])
def metrics(engine: EngineDep) -> Response:
    """Messages received / acknowledged / failed, queue depth, batch latency."""
    body = generate_latest().decode() + _queue_lines(engine)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
