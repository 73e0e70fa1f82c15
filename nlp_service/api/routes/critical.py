"""Critical and actionable findings and their communication: the list (each with its
category, target time, documented communication and verdict) and the compliance figures by
month, modality, radiologist or category, with the reports behind each count."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from nlp_service.api.access import note_patients
from nlp_service.api.deps import SessionDep
from nlp_service.audit.critical import (
    COMPLIANCE,
    Compliance,
    CriticalGroup,
    communication_compliance,
    critical_row_dict,
    critical_table,
    list_critical,
)
from nlp_service.audit.queries import to_csv
from nlp_service.fhir.mapping import patient_resource_id

router = APIRouter(prefix="/api/v1/audit/critical", tags=["critical"])

Format = Annotated[Literal["json", "csv"], Query(description="json, or csv for a download")]
CRITICAL_COLUMNS = ["accession", "concept", "category", "target_minutes", "modality",
                    "radiologist", "report_time", "communicated_at",
                    "communication_time_source", "minutes_to_communication", "compliance"]
COMPLIANCE_COLUMNS = ["critical", *COMPLIANCE, "rate_in_time"]


def _csv(text: str, name: str) -> Response:
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


@router.get("", summary="Critical findings and their communication",
            operation_id="critical-list")
def critical_findings(
    request: Request, session: SessionDep, format: Format = "json",
    report_from: datetime | None = None, report_to: datetime | None = None,
    accession: str | None = None, modality: str | None = None, radiologist: str | None = None,
    compliance: Annotated[Compliance | None, Query(description=", ".join(COMPLIANCE))] = None,
) -> Any:
    rows = list_critical(session, report_from=report_from, report_to=report_to,
                         accession=accession, modality=modality, radiologist=radiologist,
                         compliance=compliance)
    note_patients(request, {patient_resource_id(row.patient_mrn, row.mrn_authority)
                            for row in rows})
    items = [critical_row_dict(row) for row in rows]
    if format == "csv":
        return _csv(to_csv(items, CRITICAL_COLUMNS), "critical-findings")
    categories = {str(number): {"name": name, "target_minutes": minutes}
                  for number, (name, minutes) in critical_table().categories.items()}
    return JSONResponse(jsonable_encoder({"total": len(items), "categories": categories,
                                          "items": items}))


@router.get("/compliance", summary="Communication within the category's target time",
            operation_id="critical-compliance")
def compliance_figures(
    session: SessionDep, group: Annotated[CriticalGroup, Query()] = "month",
    format: Format = "json", report_from: datetime | None = None,
    report_to: datetime | None = None, modality: str | None = None,
    radiologist: str | None = None,
) -> Any:
    """Per group: critical findings, communicated in time / late / not documented, the rate in
    time, and (JSON) the accessions behind each count."""
    rows = list_critical(session, report_from=report_from, report_to=report_to,
                         modality=modality, radiologist=radiologist)
    groups = communication_compliance(rows, group)
    if format == "csv":
        return _csv(to_csv(groups, [group, *COMPLIANCE_COLUMNS]), f"critical-by-{group}")
    total = communication_compliance(rows, "category")
    return JSONResponse(jsonable_encoder({"group": group, "groups": groups,
                                          "by_category": total}))
