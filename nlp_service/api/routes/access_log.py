"""The access log, for admins: who read, exported or changed which patients' data."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from nlp_service.api.deps import Offset, SessionDep
from nlp_service.storage.access_log import AccessQuery, patient_ids_for_mrn, search_access_log

router = APIRouter(prefix="/api/v1", tags=["access log"])


@router.get("/access-log", summary="Who accessed which patients' data")
def access_log(
    session: SessionDep,
    mrn: Annotated[str | None, Query(min_length=1, max_length=100,
                                     description="Patient MRN (PID-3)")] = None,
    authority: Annotated[str | None, Query(max_length=100, description="The MRN's assigning "
                                           "authority (default: every one seen)")] = None,
    patient: Annotated[str | None, Query(max_length=64, description="FHIR Patient id")] = None,
    key_id: Annotated[str | None, Query(max_length=32, description="API key id")] = None,
    action: Literal["read", "export", "change", "refused"] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    path: Annotated[str | None, Query(max_length=500, description="Path prefix, e.g. /fhir/")]
    = None,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    """Logged requests, newest first, each with the Patient ids it reached; filter by patient
    (MRN or Patient id), key, action, time and path."""
    patient_ids: list[str] = [patient] if patient else []
    if mrn:
        patient_ids += patient_ids_for_mrn(session, mrn, authority)
    query = AccessQuery(patient_ids=tuple(patient_ids), key_id=key_id, action=action,
                        since=since, until=until, path_prefix=path)
    total, records = search_access_log(session, query, offset=offset, limit=limit)
    return JSONResponse(jsonable_encoder({
        "total": total, "offset": offset, "limit": limit, "patients": patient_ids,
        "items": [record.as_dict() for record in records]}))
