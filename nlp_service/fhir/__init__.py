"""FHIR R4: map analyses to resources, what they are searchable by, and the CapabilityStatement."""

from nlp_service.fhir.capability import capability_statement
from nlp_service.fhir.mapping import (
    EXTENSION_BASE,
    ReportResources,
    build_report_resources,
    mark_entered_in_error,
    mrn_system,
    patient_resource_id,
    report_resource_id,
    validate_resource,
)
from nlp_service.fhir.search import (
    CONTROL_PARAMETERS,
    SEARCH_PARAMETERS,
    SearchValues,
    parse_date_param,
    parse_fhir_date_range,
    search_values,
)

__all__ = [
    "CONTROL_PARAMETERS",
    "EXTENSION_BASE",
    "SEARCH_PARAMETERS",
    "ReportResources",
    "SearchValues",
    "build_report_resources",
    "capability_statement",
    "mark_entered_in_error",
    "mrn_system",
    "parse_date_param",
    "parse_fhir_date_range",
    "patient_resource_id",
    "report_resource_id",
    "search_values",
    "validate_resource",
]
