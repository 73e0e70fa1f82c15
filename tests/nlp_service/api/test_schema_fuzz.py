"""Schemathesis against the service's own OpenAPI schema, with an admin key: whatever the
generated request (huge numbers, odd strings, broken bodies), no answer is a server error.
Then SQL-injection and path-traversal strings in every search parameter do nothing."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from urllib.parse import urlencode

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlmodel import Session, func, select

from nlp_service.api.main import create_app
from nlp_service.core.config import Settings
from nlp_service.security import create_key
from nlp_service.storage.db import session_scope
from nlp_service.storage.models import ApiKey, Report
from pipelines.pipeline import RadiologyPipeline
from tests.conftest import serving

# Activation writes the real models/DEFAULT file: it has its own tests.
SKIPPED = ["/api/v1/models/{version}/activate"]


@schemathesis.serializer("application/x-ndjson", "x-application/hl7-v2+er7")
def _as_text(ctx: schemathesis.SerializationContext, value: object) -> bytes:
    """Bodies that are plain text (JSON Lines, HL7 ER7): whatever was generated, as text."""
    text = value if isinstance(value, str) else json.dumps(value)
    return text.encode("utf-8", "surrogatepass")


@pytest.fixture
def secured_app(engine: Engine, rules_pipeline: RadiologyPipeline) -> tuple[FastAPI, str]:
    settings_ = Settings(database_url="sqlite://", pipeline_mode="rules",
                         secret_key="schema-fuzz-secret")
    app = create_app(settings_, engine=engine, pipeline=rules_pipeline, run_migrations=False)
    with session_scope(engine) as session:
        key, _ = create_key(session, name="fuzz admin", roles=["admin"])
    return app, key


def test_no_server_errors(secured_app: tuple[FastAPI, str],
                          figures: Callable[[str], None]) -> None:
    """Every operation, 12 generated requests each (hypothesis drives schemathesis's
    strategies directly: its pytest plugin does not load on this pytest)."""
    app, key = secured_app
    api = schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path=SKIPPED)
    headers = {"Authorization": f"Bearer {key}"}
    tested = cases = 0
    for result in api.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def no_server_error(case: schemathesis.Case) -> None:
            nonlocal cases
            cases += 1
            response = case.call(headers=headers)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path}: {response.status_code} "
                f"{response.text[:300]}")

        no_server_error()
        tested += 1
    assert tested >= 35
    figures(f"schemathesis: {cases} generated requests over {tested} operations, no 5xx")


HOSTILE = ["' OR '1'='1", "1; DROP TABLE report; --", "\" OR 1=1 --", "../../../etc/passwd",
           "..%2F..%2Fetc%2Fpasswd", "%00", "Patient/../../Observation", "*", "%", "_",
           "' UNION SELECT resource FROM fhir_resource --", "\\x00\\n", "🙂" * 20]


@pytest.fixture
def served(secured_app: tuple[FastAPI, str]) -> Iterator[tuple[str, str]]:
    app, key = secured_app
    with serving(app) as base_url:
        yield base_url, key


def test_hostile_strings_in_search_parameters_do_nothing(
        served: tuple[str, str], engine: Engine) -> None:
    base, key = served
    headers = {"Authorization": f"Bearer {key}"}
    searches = {
        "/fhir/DiagnosticReport": ["identifier", "patient", "status", "code", "based-on"],
        "/fhir/Observation": ["code", "value-concept", "patient", "based-on", "_id"],
        "/fhir/ServiceRequest": ["status", "intent", "reason-reference", "patient"],
        "/api/v1/reports": ["accession", "patient", "modality"],
        "/api/v1/audit/recommendations": ["modality", "finding", "patient", "radiologist",
                                          "ordering_provider"],
    }
    with Session(engine) as session:
        tables_before = session.exec(select(func.count()).select_from(Report)).one()
        keys_before = session.exec(select(func.count()).select_from(ApiKey)).one()
    for path, names in searches.items():
        for name in names:
            for value in HOSTILE:
                response = httpx.get(f"{base}{path}", params={name: value}, headers=headers)
                assert response.status_code in (200, 400, 422), (path, name, value)
                if response.status_code == 200:
                    body = response.json()
                    assert body.get("total", 0) == 0, (path, name, value)
        for value in HOSTILE[3:7]:  # traversal in path segments
            response = httpx.get(f"{base}/fhir/Observation/{value}", headers=headers)
            assert "root:" not in response.text, value
            # Either no such resource, or (the client resolved "..") an empty search.
            assert response.status_code in (400, 404) or response.json()["total"] == 0, value
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(Report)).one() == tables_before
        assert session.exec(select(func.count()).select_from(ApiKey)).one() == keys_before


WORDS = ["No", "pleural", "effusion", "nodule", "5 mm", "left", "right", "lobe", "without",
         "IMPRESSION:", "FINDINGS:", "recommend", "CT", "in 3 months", ".", "\n", "\t", "?"]


def test_analyze_answers_any_text(secured_app: tuple[FastAPI, str],
                                  figures: Callable[[str], None]) -> None:
    """Hostile and odd texts (control characters, any Unicode, report-like word salad):
    always an answer below 500, and every span returned indexes the text it came from."""
    app, key = secured_app
    statuses: Counter[int] = Counter()
    with TestClient(app) as client:

        @settings(max_examples=200, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(text=st.one_of(
            st.text(max_size=2000),
            st.lists(st.sampled_from(WORDS), max_size=120).map(" ".join),
            st.text(alphabet=st.characters(max_codepoint=0x2FF), max_size=500),
        ))
        def check(text: str) -> None:
            response = client.post("/api/v1/analyze", json={"text": text, "id": "fuzz"},
                                   headers={"Authorization": f"Bearer {key}"})
            statuses[response.status_code] += 1
            assert response.status_code in (200, 400, 422), response.text[:300]
            if response.status_code == 200:
                for finding in response.json()["findings"]:
                    assert text[finding["start"]:finding["end"]] == finding["text"]

        check()
    assert statuses[200] > 0
    figures(f"POST /api/v1/analyze: {sum(statuses.values())} generated texts, no 5xx "
            f"({', '.join(f'{code}: {n}' for code, n in sorted(statuses.items()))})")


# FHIR search values as careless and hostile clients send them: numbers of any size, digits of
# other scripts ("²", "٣"), repetition past the limits, long values.
_NUMBERS = st.one_of(st.integers(min_value=-10, max_value=10**30).map(str),
                     st.text(alphabet=st.characters(whitelist_categories=["Nd", "No"]),
                             min_size=1, max_size=30),
                     st.integers(min_value=1, max_value=5000).map(lambda n: "9" * n))
_VALUES = st.one_of(_NUMBERS, st.text(max_size=60), st.text(min_size=300, max_size=3000),
                    st.lists(st.text(alphabet="ABC012|", max_size=8), min_size=1,
                             max_size=400).map(",".join))
MAX_QUERY_CHARS = 8000
_SEARCH_NAMES = ["identifier", "_count", "_offset", "patient", "date", "_lastUpdated", "code",
                 "status", "_id", "subject:identifier", "_include", "_sort"]


def test_generated_fhir_searches_are_answered_below_500(
        served: tuple[str, str], figures: Callable[[str], None]) -> None:
    """Every generated search is answered 200 or a 4xx OperationOutcome; refusals of a limit
    say the limit."""
    base, key = served
    statuses: Counter[int] = Counter()
    sizes: Counter[str] = Counter()
    with httpx.Client(base_url=base, timeout=60,
                      headers={"Authorization": f"Bearer {key}"}) as client:

        @settings(max_examples=60, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(resource=st.sampled_from(["DiagnosticReport", "Observation", "Patient"]),
               params=st.lists(st.tuples(st.sampled_from(_SEARCH_NAMES), _VALUES),
                               min_size=1, max_size=40),
               repeat=st.integers(min_value=1, max_value=40),
               version=_NUMBERS)
        def check(resource: str, params: list[tuple[str, str]], repeat: int,
                  version: str) -> None:
            query = params * repeat
            while len(urlencode(query)) > MAX_QUERY_CHARS:  # what servers take in a URL
                query = query[:len(query) // 2 or 1]
                if len(query) == 1:
                    query = [(query[0][0], query[0][1][:MAX_QUERY_CHARS // 4])]
                    break
            sizes["over 20 parameters" if len(query) > 20 else "up to 20 parameters"] += 1
            for response in (client.get(f"/fhir/{resource}", params=query),
                             client.get(f"/fhir/{resource}/x/_history/{version}")):
                statuses[response.status_code] += 1
                assert response.status_code in (200, 400, 404), response.text[:300]
                body = response.json()
                assert response.headers["content-type"].startswith("application/fhir+json")
                if response.status_code != 200:
                    diagnostics = body["issue"][0]["diagnostics"]
                    assert body["resourceType"] == "OperationOutcome" and diagnostics
                    if body["issue"][0]["code"] == "too-costly":
                        assert "at most" in diagnostics

        check()
    figures(f"FHIR search: {sum(sizes.values())} generated searches "
            f"({', '.join(f'{k}: {n}' for k, n in sorted(sizes.items()))}) and as many vreads, "
            f"no 5xx ({', '.join(f'{code}: {n}' for code, n in sorted(statuses.items()))})")
