"""Every error answer, in one place per family: FHIR paths get an ``OperationOutcome``, the
rest of the API ``{"detail": ...}``.

An unexpected exception is answered 500 (a query the statement timeout cut short, 503) with a
request id; the log gets the id and the exception's class, never its message or traceback,
which can hold SQL parameters (MRNs, report text). The answer passes through the access-log
middleware like any other, so errors are logged accesses too.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from loguru import logger
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

FHIR_JSON = "application/fhir+json"
REQUEST_ID_HEADER = "X-Request-ID"
# HTTP status -> FHIR issue type (http://hl7.org/fhir/valueset-issue-type.html).
_ISSUE_TYPES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found",
                405: "not-supported", 409: "conflict", 413: "too-costly", 422: "invalid",
                503: "transient"}


def is_fhir(request: Request) -> bool:
    return request.url.path == "/fhir" or request.url.path.startswith("/fhir/")


def operation_outcome(code: str, diagnostics: str, severity: str = "error") -> dict[str, Any]:
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": severity, "code": code, "diagnostics": diagnostics}]}


def fhir_response(body: dict[str, Any], status: int = 200,
                  headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON, headers=headers)


def error_answer(request: Request, status: int, detail: Any, *,
                 code: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    """The error ``detail`` in the family of ``request``'s path."""
    if is_fhir(request):
        text = detail if isinstance(detail, str) else _validation_text(detail)
        return fhir_response(operation_outcome(code or _ISSUE_TYPES.get(status, "processing"),
                                               text), status, headers=headers)
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _validation_text(errors: Any) -> str:
    if isinstance(errors, list):
        return "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
                         for e in errors if isinstance(e, dict))
    return str(errors)


async def http_error(request: Request, exc: Exception) -> Response:
    """HTTPException (a route's 404, 409, ...) in the path's family."""
    assert isinstance(exc, StarletteHTTPException)
    return error_answer(request, exc.status_code, exc.detail,
                        headers=dict(exc.headers) if exc.headers else None)


async def validation_error(request: Request, exc: Exception) -> Response:
    """A request FastAPI could not validate: 422 with what was wrong."""
    assert isinstance(exc, RequestValidationError)
    # The errors echo the input; a 50,000-digit number is cut to its start.
    errors = [{**{k: v for k, v in error.items() if k not in ("input", "ctx", "url")},
               "msg": str(error.get("msg", ""))[:500]} for error in exc.errors()]
    return error_answer(request, 422, errors)


def _is_timeout(exc: BaseException) -> bool:
    """A statement cut short by the API's statement timeout (PostgreSQL cancels it; SQLite's
    progress handler interrupts it)."""
    if not isinstance(exc, OperationalError):
        return False
    orig = exc.orig
    return (type(orig).__name__ == "QueryCanceled"
            or (orig is not None and "interrupted" in str(orig)))


async def answer_errors(request: Request,
                        call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Middleware (the innermost): an exception becomes an answer in the path's family."""
    request_id = uuid.uuid4().hex[:16]
    request.state.request_id = request_id
    try:
        response = await call_next(request)
    except Exception as exc:  # every failure is answered; its text never reaches the log
        if _is_timeout(exc):
            logger.warning("request {} {} {}: statement timeout", request_id, request.method,
                           request.url.path)
            response = error_answer(
                request, 503, "the query took longer than the statement timeout "
                f"(RADNLP_API_STATEMENT_TIMEOUT_SECONDS); narrow it (request {request_id})",
                code="timeout")
        else:
            logger.error("request {} {} {} failed: {}", request_id, request.method,
                         request.url.path, type(exc).__name__)
            response = error_answer(request, 500, f"internal error (request {request_id})",
                                    code="exception")
    response.headers[REQUEST_ID_HEADER] = request_id
    return response
