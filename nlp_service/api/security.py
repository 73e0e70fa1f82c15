"""Access control: who is calling (API key header or session cookie) and whether their roles
allow the endpoint. Refusals are JSON, FHIR OperationOutcomes, or a redirect to /login."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from nlp_service.security import REPORT_READERS, ROLES, find_key, live_key, read_session
from nlp_service.storage.db import read_only, session_scope
from nlp_service.storage.models import ApiKey

SESSION_COOKIE = "radnlp_session"
# last_used_at is written at most this often per key: a write per request would serialise
# every reader behind SQLite's write lock.
LAST_USED_RESOLUTION = timedelta(minutes=1)

Style = Literal["json", "fhir", "page"]

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`.")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="An API key, as an alternative to Bearer.")


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    roles: frozenset[str]


@dataclass(frozen=True)
class Authentication:
    principal: Principal | None
    reason: str
    by_session: bool = False  # a browser's cookie, not a key the client sent itself


class AuthError(Exception):
    """A refused request: 401 (no valid credential) or 403 (the roles do not allow it)."""

    def __init__(self, status: int, reason: str, style: Style) -> None:
        super().__init__(reason)
        self.status, self.reason, self.style = status, reason, style


def _touch(request: Request, record: ApiKey) -> None:
    now = datetime.now(UTC)
    if record.last_used_at is not None and now - record.last_used_at < LAST_USED_RESOLUTION:
        return
    with session_scope(request.app.state.engine) as session:
        stored = session.get(ApiKey, record.id)
        if stored is not None:
            stored.last_used_at = now
            session.add(stored)


def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    header_key: Annotated[str | None, Depends(api_key_header)],
) -> Authentication:
    """The caller, from a key header, else the session cookie (a bad header is not retried
    with the cookie)."""
    key = credentials.credentials if credentials is not None else header_key
    cookie = request.cookies.get(SESSION_COOKIE)
    if key is None and cookie is None:
        return Authentication(None, "no credential: send Authorization: Bearer <API key> "
                                    "or X-API-Key, or sign in at /login")
    with Session(read_only(request.app.state.engine)) as session:
        if key is not None:
            record = find_key(session, key)
            reason = "invalid or revoked API key"
        else:
            assert cookie is not None
            key_id = read_session(request.app.state.session_secret, cookie)
            record = live_key(session, key_id) if key_id is not None else None
            reason = "session expired, invalid or revoked: sign in again at /login"
    if record is None:
        return Authentication(None, reason)
    _touch(request, record)
    return Authentication(Principal(record.key_id, record.name, frozenset(record.roles)), "",
                          by_session=key is None)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# What a page of another site cannot send without CORS's consent... but text/plain it can.
_PAGE_CONTENT_TYPES = ("application/json", "application/x-www-form-urlencoded",
                       "multipart/form-data")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def cross_site_refusal(request: Request) -> str | None:
    """Why a state-changing request made with a browser session is refused as possible
    cross-site request forgery, if it is: it must come from a page of this service (Origin,
    else Referer, naming the public URL or the address the browser reached) and carry JSON
    or a form. SameSite cookies do not cover another port on the same host."""
    from nlp_service.api.deps import public_url

    origin = request.headers.get("origin")
    if not origin and (referer := request.headers.get("referer")):
        origin = _origin(referer)
    if not origin or origin == "null":
        return ("a change made with a browser session needs an Origin (or Referer) header "
                "naming this service")
    own = {_origin(public_url(request)), _origin(str(request.base_url))}
    if origin.lower() not in own:
        return f"a change from another site ({origin[:100]}) with a browser session is refused"
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    has_body = request.headers.get("content-length", "0") != "0" or (
        "transfer-encoding" in request.headers)
    if has_body and not (media_type in _PAGE_CONTENT_TYPES or media_type.endswith("+json")):
        return (f"a change made with a browser session must send JSON or a form, not "
                f"{media_type or 'no content type'}")
    return None


def may_read_reports(request: Request) -> bool:
    """Whether the caller's roles may read stored reports (always, without access control)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if not request.app.state.settings.auth_required:
        return True
    return principal is not None and bool(principal.roles & (set(REPORT_READERS) | {"admin"}))


def require_roles(*roles: str, style: Style = "json") -> Callable[..., Principal | None]:
    """A dependency letting through keys with one of ``roles`` (admin always); none when
    ``auth_required`` is off."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")
    allowed = frozenset(roles) | {"admin"}

    def dependency(request: Request,
                   auth: Annotated[Authentication, Depends(authenticate)]) -> Principal | None:
        request.state.principal = auth.principal  # for the access log
        if not request.app.state.settings.auth_required:
            return None
        if auth.principal is None:
            raise AuthError(401, auth.reason, style)
        if not auth.principal.roles & allowed:
            raise AuthError(403, f"key {auth.principal.key_id} has role(s) "
                                 f"{', '.join(sorted(auth.principal.roles))}; this needs one "
                                 f"of {', '.join(sorted(allowed))}", style)
        if auth.by_session and request.method not in SAFE_METHODS:
            refusal = cross_site_refusal(request)
            if refusal is not None:
                raise AuthError(403, refusal, style)
        return auth.principal

    return dependency


def auth_error_response(request: Request, exc: Exception) -> Response:
    """The refusal in the endpoint's own terms."""
    from nlp_service.api.errors import fhir_response, operation_outcome
    from nlp_service.api.pages import PAGE_HEADERS

    assert isinstance(exc, AuthError)
    challenge = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
    if exc.style == "fhir":
        code = "login" if exc.status == 401 else "forbidden"
        return fhir_response(operation_outcome(code, exc.reason), exc.status, headers=challenge)
    if exc.style == "page" and "/api/" not in request.url.path:
        if exc.status == 401 and request.method in ("GET", "HEAD"):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
        return HTMLResponse(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>Not allowed · radnlp</title><link rel=\"icon\" href=\"data:,\"></head>"
            f"<body><main><h1>Not allowed</h1><p id=\"error\" role=\"alert\">"
            f"{html.escape(exc.reason)}</p><form method=\"post\" action=\"/auth/logout\">"
            "<button type=\"submit\">Sign in with another key</button></form></main></body>"
            "</html>\n", status_code=exc.status, headers={**PAGE_HEADERS, **challenge})
    return JSONResponse({"detail": exc.reason}, status_code=exc.status, headers=challenge)
