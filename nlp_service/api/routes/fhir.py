"""FHIR R4 REST: capability statement, read, vread, history and search (Bundle searchset).

Answers are ``application/fhir+json``; every error is an ``OperationOutcome``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlmodel import Session, col, select

from nlp_service import __version__
from nlp_service.api.access import note_fhir_resources
from nlp_service.api.deps import MAX_ROW_ID, SessionDep, SettingsDep, public_url
from nlp_service.api.errors import fhir_response, operation_outcome
from nlp_service.api.limits import MAX_SEARCH_PARAMETERS, MAX_SEARCH_VALUES, parse_ascii_int
from nlp_service.fhir.capability import capability_statement
from nlp_service.fhir.search import SEARCH_PARAMETERS, parse_date_param
from nlp_service.storage.fhir_store import (
    Criterion,
    read_resource,
    resource_history,
    search_resources,
)
from nlp_service.storage.models import FhirResource, FhirSearchToken

router = APIRouter(prefix="/fhir", tags=["fhir"])

DEFAULT_COUNT = 50
MAX_COUNT = 500
MAX_OFFSET = 10**9
# Search controls understood besides the parameters of SEARCH_PARAMETERS.
CONTROLS = {"_count", "_offset", "_sort", "_include", "_total", "_format", "_summary"}


class FhirError(Exception):
    """An error answered as an OperationOutcome."""

    def __init__(self, status: int, code: str, diagnostics: str) -> None:
        super().__init__(diagnostics)
        self.status, self.code, self.diagnostics = status, code, diagnostics


def error_response(error: FhirError) -> JSONResponse:
    return fhir_response(operation_outcome(error.code, error.diagnostics), error.status)


def _base_url(request: Request, configured: str | None) -> str:
    """The public base of /fhir: configured, never taken from the request's Host header."""
    return (configured or public_url(request) + "/fhir").rstrip("/")


def _self_link(request: Request) -> str:
    query = f"?{request.url.query}" if request.url.query else ""
    return public_url(request) + request.url.path + query


def _check_type(resource_type: str) -> None:
    if resource_type not in SEARCH_PARAMETERS:
        raise FhirError(404, "not-supported", f"resource type {resource_type!r} is not served "
                        f"here; supported: {', '.join(sorted(SEARCH_PARAMETERS))}")


def _version_headers(row: FhirResource) -> dict[str, str]:
    return {"ETag": f'W/"{row.version_id}"',
            "Last-Modified": row.last_updated.strftime("%a, %d %b %Y %H:%M:%S GMT")}


@router.get("/metadata", summary="CapabilityStatement")
def metadata(request: Request, settings: SettingsDep) -> JSONResponse:
    return fhir_response(capability_statement(_base_url(request, settings.fhir_base_url),
                                              __version__))


@router.get("/{resource_type}/{resource_id}", summary="Read a resource")
def read(resource_type: str, resource_id: str, request: Request,
         session: SessionDep) -> JSONResponse:
    try:
        _check_type(resource_type)
        row = read_resource(session, resource_type, resource_id)
        if row is None:
            raise FhirError(404, "not-found", f"{resource_type}/{resource_id} not found")
    except FhirError as error:
        return error_response(error)
    note_fhir_resources(request, [row.resource])
    return fhir_response(row.resource, headers=_version_headers(row))


@router.get("/{resource_type}/{resource_id}/_history/{version_id}",
            summary="Read a version of a resource")
def vread(resource_type: str, resource_id: str, version_id: str, request: Request,
          session: SessionDep) -> JSONResponse:
    try:
        _check_type(resource_type)
        try:
            version = parse_ascii_int(version_id, name="version id", low=1, high=MAX_ROW_ID)
        except ValueError as exc:
            raise FhirError(400, "invalid", str(exc)) from exc
        row = read_resource(session, resource_type, resource_id, version)
        if row is None:
            raise FhirError(404, "not-found",
                            f"{resource_type}/{resource_id}/_history/{version_id} not found")
    except FhirError as error:
        return error_response(error)
    note_fhir_resources(request, [row.resource])
    return fhir_response(row.resource, headers=_version_headers(row))


@router.get("/{resource_type}/{resource_id}/_history", summary="History of a resource")
def history(resource_type: str, resource_id: str, request: Request, session: SessionDep,
            settings: SettingsDep) -> JSONResponse:
    try:
        _check_type(resource_type)
        rows = resource_history(session, resource_type, resource_id)
        if not rows:
            raise FhirError(404, "not-found", f"{resource_type}/{resource_id} not found")
    except FhirError as error:
        return error_response(error)
    note_fhir_resources(request, [row.resource for row in rows])
    base = _base_url(request, settings.fhir_base_url)
    entries = [{"fullUrl": f"{base}/{resource_type}/{resource_id}/_history/{row.version_id}",
                "resource": row.resource,
                "request": {"method": "POST" if row.version_id == 1 else "PUT",
                            "url": f"{resource_type}/{resource_id}"},
                "response": {"status": "201" if row.version_id == 1 else "200",
                             "etag": f'W/"{row.version_id}"',
                             "lastModified": row.last_updated.isoformat()}}
               for row in rows]
    return fhir_response({"resourceType": "Bundle", "type": "history", "total": len(rows),
                          "link": [{"relation": "self", "url": _self_link(request)}],
                          "entry": entries})


@router.get("/{resource_type}", summary="Search resources")
def search(resource_type: str, request: Request, session: SessionDep,
           settings: SettingsDep) -> JSONResponse:
    """Search with the parameters of the CapabilityStatement; a Bundle searchset, paged
    with ``_count`` and ``_offset`` (the ``next`` link)."""
    try:
        _check_type(resource_type)
        params = list(request.query_params.multi_items())
        criteria, controls = _parse_search(session, resource_type, params)
        count = _int_control(controls, "_count", DEFAULT_COUNT, MAX_COUNT)
        offset = _int_control(controls, "_offset", 0, MAX_OFFSET)
        sort = controls.get("_sort", ["-_lastUpdated"])[-1]
        if sort not in ("_lastUpdated", "-_lastUpdated"):
            raise FhirError(400, "not-supported",
                            f"_sort={sort} is not supported; use _lastUpdated or -_lastUpdated")
        if controls.get("_summary", [""])[-1] == "count":
            count = 0
        total, rows = search_resources(session, resource_type, criteria, offset=offset,
                                       count=count, newest_first=sort.startswith("-"))
        included = _includes(session, rows, controls.get("_include", []))
    except FhirError as error:
        return error_response(error)
    base = _base_url(request, settings.fhir_base_url)
    kept = [(name, value) for name, value in params if name != "_offset"]
    links = [{"relation": "self", "url": _self_link(request)}]
    if count and offset + count < total:
        links.append({"relation": "next", "url": f"{base}/{resource_type}?"
                      + urlencode([*kept, ("_offset", str(offset + count))])})
    if offset > 0 and count:
        links.append({"relation": "previous", "url": f"{base}/{resource_type}?"
                      + urlencode([*kept, ("_offset", str(max(0, offset - count)))])})
    entries = [_entry(base, row, "match") for row in rows]
    entries += [_entry(base, row, "include") for row in included]
    note_fhir_resources(request, [entry["resource"] for entry in entries])
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": total,
                              "link": links}
    if entries:
        bundle["entry"] = entries
    return fhir_response(bundle)


def _entry(base: str, row: FhirResource, mode: str) -> dict[str, Any]:
    return {"fullUrl": f"{base}/{row.resource_type}/{row.resource_id}",
            "resource": row.resource, "search": {"mode": mode}}


def _int_control(controls: dict[str, list[str]], name: str, default: int, high: int) -> int:
    """A non-negative integer control; a larger one means ``high`` (FHIR lets a server
    return fewer than ``_count`` asks)."""
    values = controls.get(name)
    if not values:
        return default
    try:
        return parse_ascii_int(values[-1], name=name, low=0, high=high, clamp=True)
    except ValueError as exc:
        raise FhirError(400, "invalid", str(exc)) from exc


def _parse_search(session: Session, resource_type: str,
                  params: list[tuple[str, str]]) -> tuple[list[Criterion], dict[str, list[str]]]:
    known = SEARCH_PARAMETERS[resource_type]
    criteria: list[Criterion] = []
    controls: dict[str, list[str]] = {}
    if len(params) > MAX_SEARCH_PARAMETERS:
        raise FhirError(400, "too-costly", f"{len(params)} search parameters; at most "
                        f"{MAX_SEARCH_PARAMETERS} are accepted (list values with commas)")
    values_asked = sum(len(value.split(",")) for _, value in params)
    if values_asked > MAX_SEARCH_VALUES:
        raise FhirError(400, "too-costly", f"{values_asked} search values; at most "
                        f"{MAX_SEARCH_VALUES} are accepted in one search")
    for raw_name, raw_value in params:
        name, _, modifier = raw_name.partition(":")
        if name in CONTROLS:
            controls.setdefault(name, []).append(raw_value)
            continue
        values = tuple(v for v in raw_value.split(",") if v)
        if not values:
            raise FhirError(400, "invalid", f"search parameter {raw_name} has no value")
        if name == "_id":
            criteria.append(Criterion(name, "id", values))
        elif name == "_lastUpdated":
            _check_dates(name, values)
            criteria.append(Criterion(name, "last_updated", values))
        elif name not in known:
            raise FhirError(400, "not-supported", f"unknown search parameter {name!r} for "
                            f"{resource_type}; supported: {', '.join(sorted(known))}")
        elif known[name] == "date":
            if modifier:
                raise FhirError(400, "not-supported", f"modifier :{modifier} on {name}")
            _check_dates(name, values)
            criteria.append(Criterion(name, "date", values))
        elif known[name] == "reference":
            criteria.append(Criterion(name, "reference",
                                      _reference_values(session, name, modifier, values)))
        else:
            if modifier:
                raise FhirError(400, "not-supported", f"modifier :{modifier} on {name}")
            criteria.append(Criterion(name, "token", values))
    return criteria, controls


def _check_dates(name: str, values: tuple[str, ...]) -> None:
    for value in values:
        try:
            parse_date_param(value)
        except ValueError as exc:
            raise FhirError(400, "invalid", f"{name}={value!r}: {exc}") from exc


def _reference_values(session: Session, name: str, modifier: str,
                      values: tuple[str, ...]) -> tuple[str, ...]:
    """Reference parameter values as stored ("Type/id"); ``:identifier`` looks the target up
    by identifier (e.g. ``patient:identifier=system|MRN``)."""
    target = {"patient": "Patient", "subject": "Patient"}.get(name)
    if modifier == "identifier":
        if target is None:
            raise FhirError(400, "not-supported", f":identifier on {name}")
        ids = session.exec(select(FhirSearchToken.resource_id).where(
            FhirSearchToken.resource_type == target, FhirSearchToken.param == "identifier",
            col(FhirSearchToken.value).in_(values))).all()
        return tuple(f"{target}/{i}" for i in ids) or ("-",)
    if modifier and modifier != target:
        raise FhirError(400, "not-supported", f"modifier :{modifier} on {name}")
    out = []
    for value in values:
        # Accept "id", "Type/id", absolute URLs and versioned references.
        parts = value.split("/_history/")[0].rstrip("/").split("/")
        if len(parts) >= 2:
            out.append(f"{parts[-2]}/{parts[-1]}")
        else:
            out.append(f"{modifier or target}/{parts[0]}" if modifier or target else parts[0])
    return tuple(out)


def _includes(session: Session, rows: list[FhirResource],
              includes: list[str]) -> list[FhirResource]:
    """Resources named by ``_include=Type:param`` in the matched resources."""
    wanted: list[tuple[str, str]] = []
    for include in includes:
        source_type, _, param = include.partition(":")
        param = param.split(":")[0]
        if SEARCH_PARAMETERS.get(source_type, {}).get(param) != "reference":
            raise FhirError(400, "not-supported", f"_include={include}")
        ids = [row.resource_id for row in rows if row.resource_type == source_type]
        if not ids:
            continue
        wanted += [tuple(ref.split("/", 1)) for ref in session.exec(  # type: ignore[misc]
            select(FhirSearchToken.value).where(
                FhirSearchToken.resource_type == source_type, FhirSearchToken.param == param,
                col(FhirSearchToken.resource_id).in_(ids))).all() if "/" in ref]
    seen = {(row.resource_type, row.resource_id) for row in rows}
    out = []
    for key in dict.fromkeys(wanted):
        if key in seen:
            continue
        row = read_resource(session, *key)
        if row is not None:
            out.append(row)
            seen.add(key)
    return out
