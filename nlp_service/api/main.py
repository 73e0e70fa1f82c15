"""The FastAPI application."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from loguru import logger
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from nlp_service import __version__
from nlp_service.api.access import log_access
from nlp_service.api.deps import public_url
from nlp_service.api.errors import answer_errors, error_answer, http_error, validation_error
from nlp_service.api.limits import json_depth_refusal
from nlp_service.api.routes import access_log as access_log_routes
from nlp_service.api.routes import (
    annotate,
    audit,
    auth,
    critical,
    dashboard,
    fhir,
    fhir_subscription,
    hl7,
    loop_dashboard,
    models,
    notifications,
    ops,
    reports,
    turnaround,
)
from nlp_service.api.routes import annotations as annotation_routes
from nlp_service.api.routes.fhir import FhirError, error_response
from nlp_service.api.security import AuthError, Style, auth_error_response, require_roles
from nlp_service.core.config import Settings
from nlp_service.security import ROLES
from nlp_service.storage.db import make_engine, migrate, with_statement_timeout
from pipelines.pipeline import RadiologyPipeline

# A JSON string holds NUL only as the escape \u0000 after an even number of backslashes
# (an odd number would make the backslash before "u0000" itself escaped text).
_JSON_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_JSON_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(body: bytes) -> bool:
    """Whether a JSON (or JSON Lines) body decodes to a string with an unpaired surrogate,
    which is not Unicode text: no database or JSON answer can encode it."""
    try:
        for line in body.splitlines():
            if line.strip():
                json.dumps(json.loads(line), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return True
    except ValueError:
        pass  # not JSON Lines (pretty-printed JSON, or broken): decoded as a whole below
    else:
        return False
    try:
        json.dumps(json.loads(body), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return True
    except ValueError:
        pass  # broken JSON: the route answers 422
    return False


async def _refusal(request: Request) -> str | None:
    """Why ``request`` cannot be stored as text, if it cannot: a NUL character in the path,
    query or JSON body, an unpaired surrogate in a JSON body, or JSON nested deeper than a
    parser can follow."""
    if "\x00" in request.url.path or any("\x00" in key or "\x00" in value
                                         for key, value in request.query_params.multi_items()):
        return "NUL characters are not allowed in the path or query"
    if "json" in request.headers.get("content-type", ""):
        body = await request.body()  # cached by Starlette for the route
        if b"\x00" in body or _JSON_NUL_ESCAPE.search(body):
            return "NUL characters are not allowed in the request body"
        if (depth_refusal := json_depth_refusal(body)) is not None:
            return depth_refusal
        if _JSON_SURROGATE_ESCAPE.search(body) and _has_lone_surrogate(body):
            return "the request body holds an unpaired UTF-16 surrogate (not Unicode text)"
    return None


async def refuse_unstorable_text(request: Request,
                                 call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """NUL characters (path, query or JSON body) and unpaired surrogates (JSON body) are
    answered 400: no database stores them in text (PostgreSQL refuses NUL) and no real client
    sends them."""
    reason = await _refusal(request)
    if reason is not None:
        return error_answer(request, 400, reason)
    return await call_next(request)


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}


def limit_and_harden(max_body_bytes: int) -> Callable[..., Awaitable[Response]]:
    """Middleware: refuse bodies over ``max_body_bytes`` (413) before reading them, add the
    security headers to every answer, and point redirects at the public URL."""

    async def middleware(request: Request,
                         call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        declared = request.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > max_body_bytes:
            response: Response = error_answer(
                request, 413, f"request body exceeds {max_body_bytes} bytes")
        else:
            response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        # Pages, JSON and FHIR answers can hold patient data: no browser or proxy keeps them
        # (the static pages and scripts say no-cache themselves).
        response.headers.setdefault("Cache-Control", "no-store")
        location = response.headers.get("location")
        own = str(request.base_url)
        if location and location.startswith(own):
            # Starlette's own redirects (a trailing slash) are absolute, built on Host.
            response.headers["location"] = (public_url(request) + "/"
                                            + location.removeprefix(own))
        return response

    return middleware


def create_app(settings: Settings | None = None, *, engine: Engine | None = None,
               pipeline: RadiologyPipeline | None = None, run_migrations: bool = True) -> FastAPI:
    """The API on ``engine`` (made from ``settings.database_url`` when not given); the
    pipeline is loaded on first use unless one is given."""
    settings = settings or Settings()
    if engine is None:
        engine = make_engine(settings.database_url)
    if run_migrations:
        migrate(engine)
    app = FastAPI(
        title="radnlp",
        version=__version__,
        summary="Radiology report NLP: HL7 v2 intake, structured findings, FHIR R4.",
    )
    app.state.settings = settings
    # Every query of a request ends by the statement timeout, on both databases.
    app.state.engine = with_statement_timeout(engine, settings.api_statement_timeout_seconds)
    app.state.pipeline = pipeline
    if settings.secret_key:
        app.state.session_secret = settings.secret_key.encode()
    else:
        app.state.session_secret = secrets.token_bytes(32)
        if settings.auth_required:
            logger.warning("RADNLP_SECRET_KEY is not set: browser sessions are signed with a "
                           "random key and end when the service restarts")
    # One handler per error family (see api/errors.py); the last middleware added runs first.
    app.add_exception_handler(AuthError, auth_error_response)
    app.add_exception_handler(FhirError, lambda _request, exc: error_response(exc))
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.middleware("http")(answer_errors)
    app.middleware("http")(refuse_unstorable_text)
    app.middleware("http")(log_access)  # refusals and errors are accesses too
    # Bodies: one HL7 message or report, or an annotation export; never more than twice the
    # message limit (the HL7 route refuses larger ones itself, with an ACK).
    app.middleware("http")(limit_and_harden(max(2 * settings.max_message_bytes, 10_000_000)))
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST", "PUT"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"])

    def roles(*names: str, style: Style = "json") -> list[Any]:
        return [Depends(require_roles(*names, style=style))]

    # Routers that mix roles narrow them per route (admin-only actions, report reads);
    # /healthz, /readyz, /login, /auth/* and the API docs are open (see README).
    app.include_router(hl7.router, dependencies=roles("ingest"))
    app.include_router(reports.router, dependencies=roles(*ROLES))
    app.include_router(fhir_subscription.router, dependencies=roles("ehr", style="fhir"))
    app.include_router(fhir.router, dependencies=roles("ehr", style="fhir"))
    app.include_router(critical.router, dependencies=roles("auditor", "navigator"))
    app.include_router(turnaround.router, dependencies=roles("auditor", "navigator"))
    app.include_router(loop_dashboard.router, dependencies=roles("auditor", "navigator",
                                                                 style="page"))
    app.include_router(notifications.router, dependencies=roles("admin"))
    app.include_router(audit.router, dependencies=roles("auditor", "navigator"))
    app.include_router(dashboard.router, dependencies=roles("auditor", "navigator",
                                                            style="page"))
    app.include_router(annotation_routes.router, dependencies=roles("annotator"))
    app.include_router(annotate.router, dependencies=roles("annotator", style="page"))
    app.include_router(models.router, dependencies=roles("admin"))
    app.include_router(auth.keys_router, dependencies=roles("admin"))
    app.include_router(access_log_routes.router, dependencies=roles("admin"))
    app.include_router(auth.router)
    app.include_router(ops.router)
    return app
