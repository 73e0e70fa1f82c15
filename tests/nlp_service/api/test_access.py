"""Access control on a live service with auth on: every route of the app against every role,
keys stored hashed, browser sign-in with a session cookie, and ``radnlp keys``."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from playwright.sync_api import Browser
from sqlalchemy import Engine, select
from sqlmodel import Session, SQLModel

from nlp_service.api.main import create_app
from nlp_service.api.security import SESSION_COOKIE
from nlp_service.core.config import Settings
from nlp_service.fhir.mapping import patient_resource_id
from nlp_service.security import ROLES, create_key, find_key, revoke_key
from nlp_service.storage.db import make_engine, session_scope
from nlp_service.storage.models import AccessLogEntry, AccessLogPatient, ApiKey, Report
from nlp_service.worker import Worker
from pipelines.pipeline import RadiologyPipeline
from tests.conftest import build_oru, serving
from tests.nlp_service.test_service_cli import radnlp

# How each route answers a refusal: open (no check), json (401/403 JSON), fhir
# (OperationOutcome), page (redirect to /login, 403 page).
OPEN, JSON, FHIR, PAGE = "open", "json", "fhir", "page"
EVERYONE = frozenset(ROLES)


def _roles(*names: str) -> frozenset[str]:
    return frozenset(names) | {"admin"}


# Every route of the app: a new one without an entry fails test_role_matrix.
EXPECTED: dict[tuple[str, str], tuple[str, frozenset[str]]] = {
    # Open: the API description, sign-in, and probes for load balancers.
    ("GET", "/openapi.json"): (OPEN, EVERYONE),
    ("GET", "/docs"): (OPEN, EVERYONE),
    ("GET", "/docs/oauth2-redirect"): (OPEN, EVERYONE),
    ("GET", "/redoc"): (OPEN, EVERYONE),
    ("GET", "/login"): (OPEN, EVERYONE),
    ("GET", "/auth/static/login.css"): (OPEN, EVERYONE),
    ("POST", "/auth/session"): (OPEN, EVERYONE),
    ("POST", "/auth/logout"): (OPEN, EVERYONE),
    ("GET", "/healthz"): (OPEN, EVERYONE),
    ("GET", "/readyz"): (OPEN, EVERYONE),
    ("POST", "/api/v1/hl7"): (JSON, _roles("ingest")),
    ("GET", "/api/v1/hl7/inbox"): (JSON, _roles()),
    ("POST", "/api/v1/hl7/inbox/{message_id}/retry"): (JSON, _roles()),
    ("GET", "/api/v1/hl7/dead-letters"): (JSON, _roles()),
    ("GET", "/api/v1/reports"): (JSON, _roles("ehr", "auditor", "navigator")),
    ("GET", "/api/v1/reports/{report_id}"): (JSON, _roles("ehr", "auditor", "navigator")),
    ("POST", "/api/v1/analyze"): (JSON, EVERYONE),
    ("GET", "/fhir/metadata"): (FHIR, _roles("ehr")),
    ("GET", "/fhir/{resource_type}/{resource_id}"): (FHIR, _roles("ehr")),
    ("GET", "/fhir/{resource_type}/{resource_id}/_history/{version_id}"): (FHIR, _roles("ehr")),
    ("GET", "/fhir/{resource_type}/{resource_id}/_history"): (FHIR, _roles("ehr")),
    ("GET", "/fhir/{resource_type}"): (FHIR, _roles("ehr")),
    ("POST", "/fhir/Subscription"): (FHIR, _roles("ehr")),
    ("GET", "/api/v1/audit/recommendations"): (JSON, _roles("auditor", "navigator")),
    ("GET", "/api/v1/audit/recommendations/{follow_up_id}"):
        (JSON, _roles("auditor", "navigator")),
    ("POST", "/api/v1/audit/recommendations/{follow_up_id}/decision"):
        (JSON, _roles("navigator")),
    ("POST", "/api/v1/audit/recommendations/{follow_up_id}/assignment"):
        (JSON, _roles("navigator")),
    ("POST", "/api/v1/audit/recommendations/{follow_up_id}/notes"):
        (JSON, _roles("navigator")),
    ("GET", "/api/v1/audit/me"): (JSON, _roles("auditor", "navigator")),
    ("GET", "/api/v1/audit/summary"): (JSON, _roles("auditor", "navigator")),
    ("GET", "/api/v1/audit/measures/{number}"): (JSON, _roles("auditor", "navigator")),
    ("GET", "/audit"): (PAGE, _roles("auditor", "navigator")),
    ("GET", "/audit/static/{name}"): (PAGE, _roles("auditor", "navigator")),
    ("GET", "/audit/reports/{report_id}"): (PAGE, _roles("auditor", "navigator")),
    ("GET", "/audit/loop"): (PAGE, _roles("auditor", "navigator")),
    ("GET", "/audit/loop/static/{name}"): (PAGE, _roles("auditor", "navigator")),
    ("GET", "/api/v1/audit/critical"): (JSON, _roles("auditor", "navigator")),
    ("GET", "/api/v1/audit/critical/compliance"): (JSON, _roles("auditor", "navigator")),
    ("GET", "/api/v1/audit/turnaround"): (JSON, _roles("auditor", "navigator")),
    ("POST", "/api/v1/annotations/tasks"): (JSON, _roles("annotator")),
    ("GET", "/api/v1/annotations/tasks"): (JSON, _roles("annotator")),
    ("GET", "/api/v1/annotations/tasks/{task_id}"): (JSON, _roles("annotator")),
    ("PUT", "/api/v1/annotations/tasks/{task_id}/annotations/{annotator}"):
        (JSON, _roles("annotator")),
    ("GET", "/api/v1/annotations/tasks/{task_id}/annotations"): (JSON, _roles("annotator")),
    ("PUT", "/api/v1/annotations/tasks/{task_id}/gold"): (JSON, _roles("annotator")),
    ("GET", "/api/v1/annotations/adjudication"): (JSON, _roles("annotator")),
    ("GET", "/api/v1/annotations/agreement"): (JSON, _roles("annotator")),
    ("GET", "/api/v1/annotations/export"): (JSON, _roles("annotator")),
    ("POST", "/api/v1/annotations/import"): (JSON, _roles("annotator")),
    ("GET", "/annotate"): (PAGE, _roles("annotator")),
    ("GET", "/annotate/adjudicate"): (PAGE, _roles("annotator")),
    ("GET", "/annotate/static/{name}"): (PAGE, _roles("annotator")),
    ("GET", "/annotate/api/concepts"): (JSON, _roles("annotator")),
    ("GET", "/api/v1/models"): (JSON, _roles()),
    ("GET", "/api/v1/notifications/webhooks"): (JSON, _roles()),
    ("POST", "/api/v1/notifications/webhooks"): (JSON, _roles()),
    ("POST", "/api/v1/notifications/webhooks/{target_id}/off"): (JSON, _roles()),
    ("GET", "/api/v1/notifications/dead-letters"): (JSON, _roles()),
    ("POST", "/api/v1/notifications/dead-letters/{delivery_id}/resend"): (JSON, _roles()),
    ("POST", "/api/v1/models/{version}/activate"): (JSON, _roles()),
    ("POST", "/api/v1/reports/reanalyze"): (JSON, _roles()),
    ("GET", "/api/v1/keys"): (JSON, _roles()),
    ("POST", "/api/v1/keys"): (JSON, _roles()),
    ("POST", "/api/v1/keys/{key_id}/revoke"): (JSON, _roles()),
    ("GET", "/api/v1/access-log"): (JSON, _roles()),
    ("GET", "/metrics"): (JSON, _roles()),
}


@dataclass
class Secured:
    base_url: str
    app: FastAPI
    engine: Engine
    keys: dict[str, str]  # one key per role, and "revoked" (every role, revoked)


@pytest.fixture
def secured(engine: Engine, rules_pipeline: RadiologyPipeline) -> Iterator[Secured]:
    settings = Settings(database_url="sqlite://", pipeline_mode="rules",
                        secret_key="test-session-secret")
    assert settings.auth_required  # the default
    app = create_app(settings, engine=engine, pipeline=rules_pipeline, run_migrations=False)
    with session_scope(engine) as session:
        keys = {role: create_key(session, name=f"{role} key", roles=[role])[0] for role in ROLES}
        keys["revoked"], record = create_key(session, name="old key", roles=list(ROLES))
        revoke_key(session, record.key_id)
    with serving(app) as base_url:
        yield Secured(base_url, app, engine, keys)


def _routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route and mount, HEAD aside (it follows GET)."""
    found = set()
    for route in iter_route_contexts(app.routes):
        path = route.path
        assert path is not None
        for method in route.methods or {"GET"}:
            if method != "HEAD":
                found.add((method, path))
    return found


def _check_refusal(response: httpx.Response, status: int, style: str, label: str) -> None:
    assert response.status_code == status, (label, response.status_code, response.text[:200])
    if style == FHIR:
        outcome = response.json()
        assert outcome["resourceType"] == "OperationOutcome", label
        assert outcome["issue"][0]["code"] == ("login" if status == 401 else "forbidden")
        assert response.headers["content-type"].startswith("application/fhir+json")
    elif style == JSON:
        assert response.json()["detail"], label
    else:
        assert response.headers["content-type"].startswith("text/html"), label


def test_role_matrix(secured: Secured) -> None:
    routes = _routes(secured.app)
    missing = sorted(routes - EXPECTED.keys())
    assert not missing, f"routes without an access entry in EXPECTED: {missing}"
    stale = sorted(EXPECTED.keys() - routes)
    assert not stale, f"EXPECTED names routes the app no longer has: {stale}"
    with httpx.Client(base_url=secured.base_url, follow_redirects=False, timeout=60) as client:
        for method, path in sorted(routes):
            style, allowed = EXPECTED[method, path]
            url = re.sub(r"\{[^}]+\}", "1", path)
            anonymous = client.request(method, url)
            revoked = client.request(method, url, headers={
                "Authorization": f"Bearer {secured.keys['revoked']}"})
            label = f"{method} {path}"
            if style == OPEN:
                assert anonymous.status_code not in (401, 403), label
            elif style == PAGE:
                # A page sends whoever is not signed in (no key, or a dead one) to /login.
                for response in (anonymous, revoked):
                    assert response.status_code == 303, (label, response.status_code)
                    location = urlsplit(response.headers["location"])
                    assert location.path == "/login", label
                    assert parse_qs(location.query)["next"] == [url], label
            else:
                _check_refusal(anonymous, 401, style, label)
                _check_refusal(revoked, 401, style, label)
                assert anonymous.headers["www-authenticate"] == "Bearer", label
            for role in ROLES:
                # X-API-Key for half the roles, Bearer for the others: both are accepted.
                header = ({"X-API-Key": secured.keys[role]} if ROLES.index(role) % 2
                          else {"Authorization": f"Bearer {secured.keys[role]}"})
                response = client.request(method, url, headers=header)
                if role in allowed:
                    assert response.status_code not in (401, 403), (label, role, response.text)
                else:
                    _check_refusal(response, 403, style, f"{label} as {role}")


def test_keys_are_stored_hashed(secured: Secured) -> None:
    dumped = []
    with Session(secured.engine) as session:
        for table in SQLModel.metadata.sorted_tables:
            dumped += [repr(tuple(row)) for row in session.execute(select(table)).all()]
        records = {r.name: r for r in session.execute(select(ApiKey)).scalars()}
    text = "\n".join(dumped)
    for role, key in secured.keys.items():
        secret = key.split("_", 2)[2]
        assert key not in text and secret not in text, role
    record = records["auditor key"]
    assert record.key_hash == hashlib.sha256(secured.keys["auditor"].encode()).hexdigest()
    assert secured.keys["auditor"].startswith(f"radnlp_{record.key_id}_")
    assert records["old key"].revoked_at is not None
    with Session(secured.engine) as session:
        assert find_key(session, secured.keys["auditor"]) is not None
        assert find_key(session, secured.keys["auditor"][:-1] + "x") is None
        assert find_key(session, secured.keys["revoked"]) is None


def test_session_cookie_login_and_logout(secured: Secured) -> None:
    base = secured.base_url
    with httpx.Client(base_url=base, follow_redirects=False) as client:
        refused = client.post("/auth/session", data={"key": "radnlp_nope_nope", "next": "/audit"})
        assert refused.status_code == 401 and SESSION_COOKIE not in refused.cookies
        # Only paths of this service are followed after signing in.
        elsewhere = client.post("/auth/session", data={"key": secured.keys["auditor"],
                                                       "next": "//evil.example/x"})
        assert elsewhere.status_code == 303 and elsewhere.headers["location"] == "/audit"
        cookie = elsewhere.headers["set-cookie"]
        assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
        assert secured.keys["auditor"] not in cookie
        assert client.get("/api/v1/audit/summary").status_code == 200
        assert client.get("/audit").status_code == 200
        assert client.get("/api/v1/annotations/tasks").status_code == 403
        # A tampered session is no session.
        value = client.cookies[SESSION_COOKIE]
        tampered = httpx.get(f"{base}/api/v1/audit/summary",
                             cookies={SESSION_COOKIE: value[:-2] + "AA"})
        assert tampered.status_code == 401
        out = client.post("/auth/logout")
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert SESSION_COOKIE not in client.cookies
        assert client.get("/api/v1/audit/summary").status_code == 401
        # Revoking the key ends the sessions made from it.
        client.post("/auth/session", data={"key": secured.keys["auditor"]})
        assert client.get("/api/v1/audit/summary").status_code == 200
        with session_scope(secured.engine) as session:
            record = find_key(session, secured.keys["auditor"])
            assert record is not None
            revoke_key(session, record.key_id)
        assert client.get("/api/v1/audit/summary").status_code == 401




@contextmanager
def _signed_in(secured: Secured, role: str) -> Iterator[httpx.Client]:
    """A client holding a browser session cookie of ``role``'s key."""
    with httpx.Client(base_url=secured.base_url, follow_redirects=False, timeout=60) as client:
        signed = client.post("/auth/session", data={"key": secured.keys[role], "next": "/audit"})
        assert signed.status_code == 303 and SESSION_COOKIE in client.cookies
        yield client


def test_a_browser_session_changes_nothing_from_another_site(secured: Secured) -> None:
    """CSRF (issue 17, case 9): with a session cookie, a change needs an Origin (or Referer)
    of this service and JSON or a form; SameSite does not cover another port on this host."""
    own = secured.base_url
    hl7_message = build_oru("CSRF1", "ACC-CSRF", ["IMPRESSION: Normal."]).encode()
    with _signed_in(secured, "admin") as browser_like:
        forged = [
            browser_like.post("/api/v1/hl7", content=hl7_message, headers={
                "Origin": "https://evil.example", "Content-Type": "text/plain"}),
            browser_like.post("/api/v1/keys", json={"name": "evil", "roles": ["admin"]},
                              headers={"Origin": "https://evil.example"}),
            browser_like.post("/api/v1/keys", json={"name": "evil", "roles": ["admin"]},
                              headers={"Origin": own.replace("127.0.0.1:", "127.0.0.1:1")}),
            browser_like.post("/api/v1/keys", json={"name": "evil", "roles": ["admin"]}),
            browser_like.post("/api/v1/hl7", content=hl7_message, headers={
                "Origin": own, "Content-Type": "text/plain"}),
        ]
        assert [answer.status_code for answer in forged] == [403] * 5
        assert "another site" in forged[0].json()["detail"]
        assert "JSON or a form" in forged[4].json()["detail"]
        # The service's own pages: same origin (or a Referer from it), JSON.
        made = browser_like.post("/api/v1/keys", json={"name": "from the page",
                                                       "roles": ["ehr"]},
                                 headers={"Origin": own})
        referred = browser_like.post("/api/v1/keys", json={"name": "referred", "roles": ["ehr"]},
                                     headers={"Referer": f"{own}/audit"})
        assert (made.status_code, referred.status_code) == (201, 201)
        assert browser_like.get("/api/v1/keys", headers={
            "Origin": "https://evil.example"}).status_code == 200  # reads change nothing
    with Session(secured.engine) as session:
        names = set(session.exec(select(ApiKey.name)).scalars().all())
    assert "evil" not in names and {"from the page", "referred"} <= names
    # An API key is no ambient credential: its requests are unaffected.
    sent = httpx.post(f"{own}/api/v1/hl7", content=hl7_message, headers={
        "Authorization": f"Bearer {secured.keys['ingest']}", "Origin": "https://evil.example",
        "Content-Type": "text/plain"})
    assert sent.status_code == 200


def test_annotators_make_tasks_only_from_reports_they_may_read(
        secured: Secured, rules_pipeline: RadiologyPipeline) -> None:
    """Authorisation by data (issue 17, case 8): a task shows its report's text."""
    sent = httpx.post(f"{secured.base_url}/api/v1/hl7", content=build_oru(
        "TASK1", "ACC-TASK", ["FINDINGS: 6 mm nodule.", "IMPRESSION: Follow-up CT in 1 month."],
        observed_at=datetime(2020, 1, 1, tzinfo=UTC)).encode(),
        headers={"Authorization": f"Bearer {secured.keys['ingest']}"})
    assert sent.status_code == 200
    Worker(secured.engine, rules_pipeline, batch_size=8).run_until_empty()
    with session_scope(secured.engine) as session:
        both, record = create_key(session, name="annotating auditor",
                                  roles=["annotator", "auditor"])
        report_id = session.exec(select(Report.id)).scalars().one()

    def create(key: str, body: dict[str, object]) -> httpx.Response:
        return httpx.post(f"{secured.base_url}/api/v1/annotations/tasks", json=body,
                          headers={"Authorization": f"Bearer {key}"}, timeout=60)

    annotator = secured.keys["annotator"]
    for body in ({"follow_up_status": "overdue"}, {"report_ids": [report_id]}):
        refused = create(annotator, body)
        assert refused.status_code == 403 and "reads reports" in refused.json()["detail"]
    assert create(annotator, {"documents": [{"id": "d1", "text": "No nodule."}]}
                  ).status_code == 201
    made = create(both, {"follow_up_status": "overdue"})
    assert made.status_code == 201 and [t["report_id"] for t in made.json()["created"]] == [
        report_id]
    with Session(secured.engine) as session:
        entry = session.exec(select(AccessLogEntry).where(
            AccessLogEntry.key_id == record.key_id)).scalars().one()
        patients = session.exec(select(AccessLogPatient.patient_id).where(
            AccessLogPatient.entry_id == entry.id)).scalars().all()
    assert (entry.path, entry.status) == ("/api/v1/annotations/tasks", 201)
    assert patients == [patient_resource_id("MRN500001", "HOSP")]


def test_browser_sign_in(secured: Secured, browser: Browser,
                         rules_pipeline: RadiologyPipeline) -> None:
    base = secured.base_url
    message = build_oru("ACCESS1", "ACC-ACCESS", [
        "FINDINGS: 7 mm solid nodule in the right upper lobe.",
        "IMPRESSION: 7 mm nodule. Recommend follow-up CT chest in 3 months."])
    sent = httpx.post(f"{base}/api/v1/hl7", content=message.encode(), headers={
        "Authorization": f"Bearer {secured.keys['ingest']}",
        "Content-Type": "x-application/hl7-v2+er7"})
    assert sent.status_code == 200, sent.text
    Worker(secured.engine, rules_pipeline, batch_size=8).run_until_empty()

    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{base}/audit")
    page.wait_for_url(f"{base}/login?next=%2Faudit")
    page.fill("#key", secured.keys["auditor"])
    page.click("#login button[type=submit]")
    page.wait_for_url(f"{base}/audit")
    page.wait_for_selector('#dashboard[data-state="ready"]')
    rows = page.locator("#worklist tbody tr[data-id]")
    assert rows.count() == 1 and "ACC-ACCESS" in (rows.first.text_content() or "")
    cookies = {c["name"]: c for c in context.cookies()}
    assert cookies[SESSION_COOKIE]["httpOnly"] and cookies[SESSION_COOKIE]["sameSite"] == "Strict"
    page.click("#sign-out button")
    page.wait_for_url(f"{base}/login")
    assert SESSION_COOKIE not in {c["name"] for c in context.cookies()}
    page.goto(f"{base}/audit")
    page.wait_for_url(f"{base}/login?next=%2Faudit")
    context.close()

    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{base}/login?next=%2Faudit")
    page.fill("#key", secured.keys["annotator"])
    with page.expect_navigation() as navigation:
        page.click("#login button[type=submit]")
    response = navigation.value
    assert response is not None and response.status == 403
    assert page.url == f"{base}/audit"
    assert "auditor" in (page.text_content("#error") or "")
    annotate = page.goto(f"{base}/annotate")
    assert annotate is not None and annotate.status == 200
    context.close()
    assert not errors, errors


def test_keys_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    env = {"RADNLP_DATABASE_URL": url}
    created = radnlp("keys", "create", "--name", "pacs feed", "--role", "ingest", "--role",
                     "ehr", env=env, timeout=120)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("radnlp_") and "shown once" in created.stderr
    key_id = key.split("_")[1]
    listed = radnlp("keys", "list", env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if line.startswith(key_id))
    assert "pacs feed" in line and "ingest,ehr" in line and key not in listed.stdout
    assert line.rstrip().endswith("-")  # not revoked
    bad = radnlp("keys", "create", "--name", "x", "--role", "root", env=env, timeout=120)
    assert bad.returncode == 2 and "unknown role" in bad.stderr

    engine = make_engine(url)
    with Session(engine) as session:
        assert find_key(session, key) is not None
    revoked = radnlp("keys", "revoke", key_id, env=env, timeout=120)
    assert revoked.returncode == 0 and f"revoked key {key_id}" in revoked.stdout
    with Session(engine) as session:
        assert find_key(session, key) is None
    engine.dispose()
    listed = radnlp("keys", "list", env=env, timeout=120)
    line = next(line for line in listed.stdout.splitlines() if line.startswith(key_id))
    assert not line.rstrip().endswith("-")
    unknown = radnlp("keys", "revoke", "nosuchkey", env=env, timeout=120)
    assert unknown.returncode == 1 and "no key" in unknown.stderr
