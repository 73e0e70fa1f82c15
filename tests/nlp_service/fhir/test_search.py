"""Search index values of stored resources, FHIR date values, and the CapabilityStatement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from nlp_service.fhir import (
    CONTROL_PARAMETERS,
    SEARCH_PARAMETERS,
    ReportResources,
    build_report_resources,
    capability_statement,
    parse_date_param,
    parse_fhir_date_range,
    patient_resource_id,
    search_values,
)
from nlp_service.fhir.search import LATEST
from nlp_service.intake.message import ParsedReport

TEXT = (
    "FINDINGS: 4 mm nodule in the right upper lobe. No pneumothorax.\n"
    "IMPRESSION: 4 mm nodule in the right upper lobe.\n"
    "Recommend follow-up CT chest in 6-12 months per Fleischner.\n"
)
OBSERVED_AT = datetime(2026, 3, 1, 10, 30, tzinfo=timezone(timedelta(hours=-5)))
PATIENT = "Patient/" + patient_resource_id("MRN7", "HOSP")
MICROSECOND = timedelta(microseconds=1)


@pytest.fixture(scope="module")
def resources(rules_pipeline) -> ReportResources:
    report = ParsedReport(accession="ACC7", text=TEXT, result_status="F",
                          procedure_code="71250", procedure_name="CT CHEST",
                          procedure_system="CPT", observed_at=OBSERVED_AT)
    return build_report_resources("MRN7", "HOSP", report, rules_pipeline.analyze(TEXT, "ACC7"))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
        microsecond: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


def test_diagnostic_report_values(resources):
    values = search_values(resources.diagnostic_report)
    tokens = set(values.tokens)
    assert {("identifier", "urn:radnlp:accession|ACC7"), ("identifier", "ACC7"),
            ("status", "final"), ("code", "http://www.ama-assn.org/go/cpt|71250"),
            ("code", "71250"), ("category", "http://loinc.org|LP29684-5"),
            ("category", "LP29684-5"), ("_id", "ACC7")} <= tokens
    # Text is not a token; MRN identifiers of the subject are not indexed on the report.
    assert not any(value in ("CT CHEST", "MRN7") for _, value in tokens)
    instant = utc(2026, 3, 1, 15, 30)
    assert values.dates == [("date", instant, instant + timedelta(seconds=1) - MICROSECOND)]
    references = set(values.references)
    assert {("patient", PATIENT), ("subject", PATIENT),
            ("based-on", "ServiceRequest/ACC7-order")} <= references
    assert {value for param, value in references if param == "result"} == {
        f"Observation/{o['id']}" for o in resources.observations}


def test_observation_values(resources):
    absent = next(o for o in resources.observations
                  if o["valueCodeableConcept"]["coding"][0]["code"] == "2667000")
    values = search_values(absent)
    assert {("value-concept", "http://snomed.info/sct|2667000"), ("value-concept", "2667000"),
            ("code", "http://snomed.info/sct|36118008"), ("code", "36118008"),
            ("code", "http://radlex.org|RID5352"), ("code", "RID5352"),
            ("category", "imaging"), ("status", "final"),
            ("identifier", f"urn:radnlp:accession/finding|{absent['identifier'][0]['value']}"),
            } <= set(values.tokens)
    assert [param for param, _, _ in values.dates] == ["date"]
    assert {("patient", PATIENT), ("subject", PATIENT),
            ("based-on", "ServiceRequest/ACC7-order")} == set(values.references)


def test_recommendation_values(resources):
    [request] = resources.service_requests
    values = search_values(request)
    assert {("status", "draft"), ("intent", "proposal"), ("code", "CT"),
            ("code", "http://dicom.nema.org/resources/ontology/DCM|CT"),
            ("category", "RAD")} <= set(values.tokens)
    start, end = OBSERVED_AT + timedelta(days=180), OBSERVED_AT + timedelta(days=365)
    dates = {param: (low, high) for param, low, high in values.dates}
    assert dates["occurrence"] == (start, end + timedelta(seconds=1) - MICROSECOND)
    assert dates["authored"][0] == OBSERVED_AT
    reason = request["reasonReference"][0]["reference"]
    assert ("reason-reference", reason) in values.references


def test_patient_values(resources):
    values = search_values(resources.patient)
    assert ("identifier", "urn:radnlp:mrn:HOSP|MRN7") in values.tokens
    assert ("identifier", "MRN7") in values.tokens
    assert values.references == [] and values.dates == []


def test_every_search_parameter_has_values_on_a_built_report(resources, rules_pipeline):
    # A critical finding's Observation has an interpretation (the Task and Communication
    # types are covered in tests/nlp_service/notify).
    text = "IMPRESSION: Large right tension pneumothorax."
    critical = build_report_resources("MRN7", "HOSP", ParsedReport(
        accession="ACC8", text=text, result_status="F", observed_at=OBSERVED_AT),
        rules_pipeline.analyze(text, "ACC8"))
    by_type: dict[str, set[str]] = {}
    for resource in [*resources.all(), *critical.observations]:
        values = search_values(resource)
        found = by_type.setdefault(resource["resourceType"], set())
        found |= {p for p, _ in values.tokens} | {p for p, _ in values.references}
        found |= {p for p, _, _ in values.dates}
    for resource_type in by_type:
        parameters = SEARCH_PARAMETERS[resource_type]
        assert set(parameters) - by_type[resource_type] == {"_lastUpdated"}, resource_type
        assert set(parameters.values()) <= {"token", "date", "reference"}


def test_last_updated_open_periods_and_patient_only_references():
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest", "id": "x", "status": "draft", "intent": "proposal",
        "subject": {"reference": "Group/g1"},
        "occurrencePeriod": {"start": "2026-05"},
        "reasonReference": [{"display": "no literal reference"},
                            {"reference": "https://h.example/fhir/Observation/o1/_history/2"}],
        "meta": {"versionId": "2", "lastUpdated": "2026-05-02T08:00:00Z"},
    }
    values = search_values(resource)
    assert ("_lastUpdated", utc(2026, 5, 2, 8), utc(2026, 5, 2, 8, 0, 0, 999999)) in values.dates
    assert ("occurrence", utc(2026, 5, 1), LATEST) in values.dates
    assert values.references == [("subject", "Group/g1"),
                                 ("reason-reference", "Observation/o1")]


def test_unknown_resource_type_is_refused():
    with pytest.raises(ValueError, match="Bundle"):
        search_values({"resourceType": "Bundle"})


@pytest.mark.parametrize(("value", "low", "high"), [
    ("2026", utc(2026, 1, 1), utc(2026, 12, 31, 23, 59, 59, 999999)),
    ("2026-02", utc(2026, 2, 1), utc(2026, 2, 28, 23, 59, 59, 999999)),
    ("2024-02", utc(2024, 2, 1), utc(2024, 2, 29, 23, 59, 59, 999999)),
    ("2026-12", utc(2026, 12, 1), utc(2026, 12, 31, 23, 59, 59, 999999)),
    ("2026-03-01", utc(2026, 3, 1), utc(2026, 3, 1, 23, 59, 59, 999999)),
    ("2026-03-01T10:00", utc(2026, 3, 1, 10), utc(2026, 3, 1, 10, 0, 59, 999999)),
    ("2026-03-01T10:00:00+01:00", utc(2026, 3, 1, 9), utc(2026, 3, 1, 9, 0, 0, 999999)),
    ("2026-03-01T10:00:00.5Z", utc(2026, 3, 1, 10, 0, 0, 500000),
     utc(2026, 3, 1, 10, 0, 0, 599999)),
    ("2026-03-01T10:00:00.123456Z", utc(2026, 3, 1, 10, 0, 0, 123456),
     utc(2026, 3, 1, 10, 0, 0, 123456)),
    ("9999", utc(9999, 1, 1), LATEST),
    ("9999-12-31", utc(9999, 12, 31), LATEST),
])
def test_parse_fhir_date_range_covers_the_precision(value, low, high):
    assert parse_fhir_date_range(value) == (low, high)


@pytest.mark.parametrize("value", ["", "26", "2026-13", "2026-1-1", "2026-02-30", "bogus",
                                   "2026-03-01T25:00", "2026-03-01 10:00", "0000"])
def test_parse_fhir_date_range_refuses_bad_dates(value):
    with pytest.raises(ValueError, match="FHIR date"):
        parse_fhir_date_range(value)


@pytest.mark.parametrize("prefix", ["eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"])
def test_parse_date_param_prefixes(prefix):
    assert parse_date_param(f"{prefix}2026-01") == (
        prefix, utc(2026, 1, 1), utc(2026, 1, 31, 23, 59, 59, 999999))


def test_parse_date_param_defaults_to_eq_and_repairs_a_decoded_plus():
    assert parse_date_param("2026-01-01")[0] == "eq"
    assert parse_date_param("ge2026-01-01T00:00:00 01:00")[1] == utc(2025, 12, 31, 23)
    with pytest.raises(ValueError):
        parse_date_param("xx2026")
    with pytest.raises(ValueError):
        parse_date_param("ge")


def test_capability_statement_lists_what_search_supports():
    statement = capability_statement("https://h.example/fhir", "1.2.3")
    assert CapabilityStatement.model_validate(statement).model_dump(
        mode="json", exclude_none=True) == statement
    assert (statement["status"], statement["kind"], statement["fhirVersion"]) == (
        "active", "instance", "4.0.1")
    assert "application/fhir+json" in statement["format"]
    assert statement["software"]["version"] == "1.2.3"
    assert statement["implementation"]["url"] == "https://h.example/fhir"
    [rest] = statement["rest"]
    assert rest["mode"] == "server"
    resources = {r["type"]: r for r in rest["resource"]}
    assert set(resources) == set(SEARCH_PARAMETERS)
    for resource_type, resource in resources.items():
        assert [i["code"] for i in resource["interaction"]] == [
            "read", "vread", "history-instance", "search-type"]
        assert {p["name"]: p["type"] for p in resource["searchParam"]} == {
            **SEARCH_PARAMETERS[resource_type], **CONTROL_PARAMETERS}
