"""FHIR R4 Subscription (rest-hook): ``POST /fhir/Subscription`` creates one (status
``active``); reads and searches go through the FHIR router like any stored resource, and
show ``status`` and ``error`` as deliveries succeed or fail."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from nlp_service.api.deps import EngineDep, SettingsDep
from nlp_service.api.routes.fhir import FhirError, error_response, fhir_response
from nlp_service.notify.subscriptions import SubscriptionError, create_subscription
from nlp_service.storage.db import session_scope
from nlp_service.storage.fhir_store import current_resource

router = APIRouter(prefix="/fhir", tags=["fhir"])


@router.post("/Subscription", summary="Create a Subscription (rest-hook)",
             operation_id="fhir-create-subscription")
async def create(request: Request, engine: EngineDep, settings: SettingsDep) -> JSONResponse:
    try:
        try:
            body = json.loads(await request.body())
        except ValueError as error:
            raise FhirError(400, "invalid", f"the body is not JSON: {error}") from error
        if not isinstance(body, dict):
            raise FhirError(400, "invalid", "the body must be a JSON object")
        try:
            with session_scope(engine) as session:
                target = create_subscription(session, body)
                session.flush()
                row = current_resource(session, "Subscription", target.fhir_id or "")
                assert row is not None
                resource = row.resource
        except SubscriptionError as error:
            raise FhirError(422, "invalid", str(error)) from error
    except FhirError as error:
        return error_response(error)
    base = (settings.fhir_base_url or str(request.base_url).rstrip("/") + "/fhir").rstrip("/")
    return fhir_response(resource, 201, headers={
        "Location": f"{base}/Subscription/{resource['id']}/_history/1",
        "ETag": 'W/"1"'})
