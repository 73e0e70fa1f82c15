"""Signing in from a browser (an API key exchanged for a signed session cookie), signing out,
and API key management over HTTP (admin)."""

from __future__ import annotations

import html
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlmodel import Session

from nlp_service.api.deps import EngineDep, SessionDep, SettingsDep
from nlp_service.api.pages import PAGE_HEADERS, static_file
from nlp_service.api.security import SESSION_COOKIE
from nlp_service.security import ROLES, create_key, find_key, list_keys, revoke_key, sign_session
from nlp_service.storage.db import read_only, session_scope
from nlp_service.storage.models import ApiKey

MAX_FORM_BYTES = 4096

router = APIRouter(tags=["auth"], include_in_schema=False)
keys_router = APIRouter(prefix="/api/v1/keys", tags=["keys"])


def _safe_next(target: str | None) -> str:
    """Only a path on this service: never an open redirect to another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/audit"
    return target


def _login_page(target: str, error: str | None = None, status_code: int = 200) -> HTMLResponse:
    message = (f"<p id=\"error\" class=\"error\" role=\"alert\">{html.escape(error)}</p>\n"
               if error else "")
    return HTMLResponse(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<title>Sign in · radnlp</title>\n<link rel=\"icon\" href=\"data:,\">\n"
        "<link rel=\"stylesheet\" href=\"/auth/static/login.css\">\n</head>\n<body>\n<main>\n"
        "<h1>Sign in to radnlp</h1>\n" + message +
        "<form id=\"login\" method=\"post\" action=\"/auth/session\">\n"
        f"<input type=\"hidden\" name=\"next\" value=\"{html.escape(target)}\">\n"
        "<label for=\"key\">API key</label>\n"
        "<input type=\"password\" id=\"key\" name=\"key\" autocomplete=\"current-password\" "
        "required autofocus>\n<button type=\"submit\">Sign in</button>\n</form>\n"
        "<p class=\"hint\">An administrator creates keys with <code>radnlp keys create</code>."
        "</p>\n</main>\n</body>\n</html>\n",
        status_code=status_code, headers={"Cache-Control": "no-store", **PAGE_HEADERS})


@router.get("/login", response_class=HTMLResponse)
def login_page(next: Annotated[str | None, Query()] = None) -> HTMLResponse:
    """The sign-in form: paste an API key."""
    return _login_page(_safe_next(next))


@router.get("/auth/static/login.css", response_class=FileResponse)
def login_css() -> FileResponse:
    return static_file("login.css", "text/css")


@router.post("/auth/session")
async def create_session(request: Request, settings: SettingsDep,
                         engine: EngineDep) -> Response:
    """Check the posted key; on success set the session cookie and go to ``next``."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return _login_page("/audit", "The form is too large.", 413)
    form = parse_qs(body.decode("utf-8", errors="replace"))
    target = _safe_next((form.get("next") or [""])[0])
    key = (form.get("key") or [""])[0].strip()
    if not key:
        return _login_page(target, "Paste an API key.", 400)
    with Session(read_only(engine)) as session:
        record = find_key(session, key)
    if record is None:
        return _login_page(target, "This key is not valid (or was revoked).", 401)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE, sign_session(request.app.state.session_secret, record.key_id,
                                     max_age=settings.session_max_age_seconds),
        max_age=settings.session_max_age_seconds, path="/", httponly=True, samesite="strict",
        secure=request.url.scheme == "https")
    return response


@router.post("/auth/logout")
def logout() -> Response:
    """Forget the session cookie (revoking the key ends every session made from it)."""
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    roles: list[str] = Field(min_length=1, description=f"Any of {', '.join(ROLES)}.")


class KeyPublic(BaseModel):
    key_id: str
    name: str
    roles: list[str]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


def _public(record: ApiKey) -> dict[str, Any]:
    return KeyPublic.model_validate(record, from_attributes=True).model_dump(mode="json")


@keys_router.get("", summary="API keys")
def keys(session: SessionDep) -> Any:
    """Every key (never the key itself: only its hash is stored)."""
    return {"items": [_public(record) for record in list_keys(session)]}


@keys_router.post("", status_code=201, summary="Create an API key")
def new_key(body: KeyCreate, engine: EngineDep) -> Any:
    """The answer holds the key: it is shown this once."""
    try:
        with session_scope(engine) as session:
            key, record = create_key(session, name=body.name, roles=body.roles)
            public = _public(record)
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    return {"key": key, **public}


@keys_router.post("/{key_id}/revoke", summary="Revoke an API key",
                  responses={404: {"description": "No such key."}})
def revoke(key_id: str, engine: EngineDep) -> Any:
    with session_scope(engine) as session:
        record = revoke_key(session, key_id)
        if record is None:
            raise HTTPException(status_code=404, detail=f"key {key_id} not found")
        return _public(record)
