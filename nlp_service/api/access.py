"""Writing the access log: routes note the patients whose data they answer with, and a
middleware stores one entry per data request (including refused ones) before the answer
leaves. An entry that cannot be stored withholds the answer (503): no unlogged reads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool
from loguru import logger
from sqlalchemy.exc import SQLAlchemyError

from nlp_service.api.errors import error_answer
from nlp_service.storage.access_log import record_access
from nlp_service.storage.models import AccessLogEntry

# Requests under these prefixes can reach patient data; pages and their static files, the
# login and the operations endpoints cannot.
LOGGED_PREFIXES = ("/api/", "/fhir/", "/audit/reports/")
# Posting a message or a text to analyse sends data in and reads nothing stored.
NOT_LOGGED = {("POST", "/api/v1/hl7"), ("POST", "/api/v1/analyze")}
_PATIENTS = "accessed_patients"
_BULK = "accessed_bulk"
# Above this many patients an answer is logged as bulk (no patient rows, see the model).
MAX_LISTED_PATIENTS = 10_000


def note_patients(request: Request, patient_ids: Iterable[str]) -> None:
    """Record that the answer to ``request`` holds data of these patients (Patient ids)."""
    noted: set[str] = getattr(request.state, _PATIENTS, set())
    noted.update(patient_ids)
    setattr(request.state, _PATIENTS, noted)


def note_bulk(request: Request, reports: int) -> None:
    """Record that the answer to ``request`` covers ``reports`` reports, too many to list
    their patients (the entry is found by every patient search)."""
    setattr(request.state, _BULK, reports)


def note_fhir_resources(request: Request, resources: Iterable[dict[str, Any]]) -> None:
    """Note the patients FHIR resources are about (their ``subject``, or a Patient's id)."""
    ids: set[str] = set()
    for resource in resources:
        if resource.get("resourceType") == "Patient" and resource.get("id"):
            ids.add(str(resource["id"]))
        reference = (resource.get("subject") or {}).get("reference", "")
        if isinstance(reference, str) and reference.startswith("Patient/"):
            ids.add(reference.removeprefix("Patient/"))
    note_patients(request, ids)


def _action(request: Request, response: Response) -> str:
    if response.status_code in (401, 403):
        return "refused"
    if request.method not in ("GET", "HEAD"):
        return "change"
    if "attachment" in response.headers.get("content-disposition", ""):
        return "export"
    return "read"


def _logged(request: Request) -> bool:
    path = request.url.path
    return path.startswith(LOGGED_PREFIXES) and (request.method, path) not in NOT_LOGGED


async def log_access(request: Request,
                     call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Middleware: one access-log entry per data request, stored before the answer is sent."""
    if not _logged(request):
        return await call_next(request)
    response = await call_next(request)
    principal = getattr(request.state, "principal", None)
    entry = AccessLogEntry(
        key_id=principal.key_id if principal else None,
        key_name=principal.name if principal else None,
        # NUL (a refused request's) is text no database stores: shown as U+FFFD.
        method=request.method, path=request.url.path[:2000].replace("\x00", "\ufffd"),
        query=request.url.query[:4000].replace("\x00", "\ufffd") or None,
        status=response.status_code,
        action=_action(request, response),
        client=request.client.host if request.client else None)
    patients: set[str] = getattr(request.state, _PATIENTS, set())
    bulk: int | None = getattr(request.state, _BULK, None)
    if bulk is not None or len(patients) > MAX_LISTED_PATIENTS:
        entry.bulk, entry.patient_count = True, max(len(patients), bulk or 0)
    try:
        await run_in_threadpool(record_access, request.app.state.engine, entry, patients)
    except SQLAlchemyError as exc:
        logger.error("access log write failed ({}): answer withheld", type(exc).__name__)
        return error_answer(request, 503, "the access could not be recorded; try again")
    return response
