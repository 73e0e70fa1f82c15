"""The server's FHIR CapabilityStatement (``GET /fhir/metadata``)."""

from __future__ import annotations

from typing import Any

from nlp_service.fhir.mapping import validate_resource
from nlp_service.fhir.search import CONTROL_PARAMETERS, SEARCH_PARAMETERS

# When the statement's content last changed (CapabilityStatement.date is required).
CAPABILITY_DATE = "2026-11-23"
INTERACTIONS = ("read", "vread", "history-instance", "search-type")
FORMATS = ["json", "application/fhir+json"]


def capability_statement(base_url: str, software_version: str) -> dict[str, Any]:
    """What this server does: read, vread, history and search of the resources it stores."""
    resources = [
        {
            "type": resource_type,
            "versioning": "versioned",
            "readHistory": True,
            "interaction": [{"code": code} for code in INTERACTIONS],
            "searchParam": [{"name": name, "type": kind} for name, kind
                            in {**parameters, **CONTROL_PARAMETERS}.items()],
        }
        for resource_type, parameters in SEARCH_PARAMETERS.items()
    ]
    return validate_resource({
        "resourceType": "CapabilityStatement",
        "name": "RadnlpCapabilityStatement",
        "title": "radnlp FHIR server",
        "status": "active",
        "date": CAPABILITY_DATE,
        "kind": "instance",
        "software": {"name": "radnlp", "version": software_version},
        "implementation": {"description": "Radiology report NLP structured findings",
                           "url": base_url},
        "fhirVersion": "4.0.1",
        "format": FORMATS,
        "rest": [{"mode": "server", "resource": resources}],
    })
