"""The quality team's actions on follow-ups, on a live service with access control on: a
navigator (or admin) records decisions with a reason, assigns and adds notes, always as the
calling key; an auditor only reads. Every action is an event (as-of queries give the same
answer before and after it) and an access-log entry. "Not a recommendation" leaves the rates
and queues the report for annotation with that recommendation removed. Then the same from the
dashboard, in a real Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page
from sqlalchemy import Engine, update
from sqlmodel import col

from nlp_service.api.main import create_app
from nlp_service.core.config import Settings
from nlp_service.fhir.mapping import patient_resource_id
from nlp_service.intake.hl7 import build_oru
from nlp_service.security import create_key
from nlp_service.storage.db import session_scope
from nlp_service.storage.models import FollowUp
from nlp_service.worker import Worker
from pipelines.pipeline import RadiologyPipeline
from tests.conftest import serving

HL7_TYPE = {"content-type": "x-application/hl7-v2+er7"}
CT_CHEST = ("71250", "CT CHEST WITHOUT CONTRAST", "CPT4")
NODULE = ("FINDINGS: 7 mm solid nodule in the right upper lobe.\nIMPRESSION: 7 mm right upper "
          "lobe nodule. Recommend follow-up CT chest in 3 months.")
# Two recommendations; the thyroid one is the "extraction error" the tests correct.
TWO = ("FINDINGS: 7 mm solid nodule in the right upper lobe. 1.8 cm hypodense nodule in the "
       "right lobe of the thyroid gland.\nIMPRESSION: 7 mm right upper lobe nodule. Recommend "
       "follow-up CT chest in 3 months. Incidental 1.8 cm thyroid nodule. Recommend thyroid "
       "ultrasound.")
THYROID = "Recommend thyroid ultrasound."
CT_FOLLOW_UP = "Recommend follow-up CT chest in 3 months."
# (accession, MRN, text, observed): every follow-up is overdue today, none done.
REPORTS = [("ACC-LATE", "MRN-LATE", NODULE, datetime(2025, 2, 10, 9, tzinfo=UTC)),
           ("ACC-TWO", "MRN-TWO", TWO, datetime(2025, 3, 3, 10, tzinfo=UTC))]
ROLES = ("navigator", "auditor", "admin", "annotator", "ingest", "ehr")


@dataclass
class Service:
    base_url: str
    engine: Engine
    keys: dict[str, str]  # role -> key
    key_ids: dict[str, str]  # role -> key id

    def client(self, role: str) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=60,
                            headers={"Authorization": f"Bearer {self.keys[role]}"})


@pytest.fixture
def service(engine: Engine, rules_pipeline: RadiologyPipeline) -> Iterator[Service]:
    settings = Settings(database_url="sqlite://", pipeline_mode="rules",
                        secret_key="test-session-secret")
    assert settings.auth_required
    app = create_app(settings, engine=engine, pipeline=rules_pipeline, run_migrations=False)
    keys, key_ids = {}, {}
    with session_scope(engine) as session:
        for role in ROLES:
            keys[role], record = create_key(session, name=f"{role} key", roles=[role])
            key_ids[role] = record.key_id
    with serving(app) as base_url:
        running = Service(base_url, engine, keys, key_ids)
        with running.client("ingest") as client:
            for number, (accession, mrn, text, observed) in enumerate(REPORTS, 1):
                message = build_oru(f"ACT{number}", accession, text, mrn=mrn,
                                    observed_at=observed, procedure=CT_CHEST,
                                    birth_date=date(1960, 1, 1))
                sent = client.post("/api/v1/hl7", content=message.encode(), headers=HL7_TYPE)
                assert sent.status_code == 200, sent.text
        Worker(engine, rules_pipeline, batch_size=8).run_until_empty()
        yield running


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    return response.json()


def _worklist(client: httpx.Client, **params: Any) -> dict[str, Any]:
    return _ok(client.get("/api/v1/audit/recommendations", params={"limit": 100, **params}))


def _follow_up(client: httpx.Client, accession: str, text: str) -> dict[str, Any]:
    items = _worklist(client)["items"]
    return next(i for i in items if i["accession"] == accession and i["text"] == text)


def _states(client: httpx.Client, as_of: str) -> dict[int, str]:
    return {i["id"]: i["status"] for i in _worklist(client, as_of=as_of)["items"]}


def _summary(client: httpx.Client, **params: Any) -> dict[str, Any]:
    overall: dict[str, Any] = _ok(client.get("/api/v1/audit/summary", params=params))["overall"]
    return overall


def test_navigator_acts_as_its_key_and_every_action_is_an_event(service: Service) -> None:
    navigator_id = service.key_ids["navigator"]
    with service.client("navigator") as navigator, service.client("admin") as admin:
        late = _follow_up(navigator, "ACC-LATE", CT_FOLLOW_UP)
        assert late["status"] == "overdue" and late["assignee"] is None
        path = f"/api/v1/audit/recommendations/{late['id']}"

        decided = _ok(navigator.post(f"{path}/decision", json={
            "status": "not_needed", "reason": "patient moved abroad"}))
        assert decided["status"] == "not_needed"
        event = decided["event"]
        assert (event["kind"], event["status"], event["actor"], event["actor_key_id"],
                event["reason"]) == ("manual", "not_needed", "navigator key", navigator_id,
                                     "patient moved abroad")
        assigned = _ok(navigator.post(f"{path}/assignment", json={"assignee": "Dana Quinn"}))
        assert assigned["assignee"] == "Dana Quinn"
        assert (assigned["event"]["kind"], assigned["event"]["assignee"]) == ("assigned",
                                                                              "Dana Quinn")
        noted = _ok(navigator.post(f"{path}/notes", json={"text": "called the GP"}), 201)
        assert (noted["event"]["kind"], noted["event"]["reason"]) == ("note", "called the GP")
        reopened = _ok(navigator.post(f"{path}/decision", json={
            "status": "open", "reason": "the patient is back"}))
        assert reopened["status"] == "overdue"
        elsewhere = _ok(admin.post(f"{path}/decision", json={
            "status": "completed_elsewhere", "reason": "CT done at another hospital"}))
        assert elsewhere["status"] == "completed_elsewhere"
        assert elsewhere["event"]["actor"] == "admin key"
        unassigned = _ok(navigator.post(f"{path}/assignment", json={"assignee": None}))
        assert unassigned["assignee"] is None and unassigned["event"]["kind"] == "unassigned"
        _ok(navigator.post(f"{path}/assignment", json={"assignee": "  Sam Lee "}))

        detail = _ok(navigator.get(path))
        people = [(e["kind"], e["status"], e["actor"], e["actor_key_id"])
                  for e in detail["history"] if e["actor"] != "system"]
        assert people == [
            ("manual", "not_needed", "navigator key", navigator_id),
            ("assigned", None, "navigator key", navigator_id),
            ("note", None, "navigator key", navigator_id),
            ("manual", "open", "navigator key", navigator_id),
            ("manual", "completed_elsewhere", "admin key", service.key_ids["admin"]),
            ("unassigned", None, "navigator key", navigator_id),
            ("assigned", None, "navigator key", navigator_id)]
        assert detail["assignee"] == "Sam Lee" and detail["status"] == "completed_elsewhere"
        row = _follow_up(navigator, "ACC-LATE", CT_FOLLOW_UP)
        assert (row["assignee"], row["status"]) == ("Sam Lee", "completed_elsewhere")
        csv = navigator.get("/api/v1/audit/recommendations", params={"format": "csv"}).text
        assert "assignee" in csv.splitlines()[0] and "Sam Lee" in csv

        # Every action is in the access log: a change by the navigator's key, for the patient.
        log = _ok(admin.get("/api/v1/access-log", params={"mrn": "MRN-LATE",
                                                          "action": "change"}))["items"]
        changes = [(e["method"], e["path"], e["key_id"]) for e in reversed(log)]
        assert changes == [
            ("POST", f"{path}/decision", navigator_id),
            ("POST", f"{path}/assignment", navigator_id),
            ("POST", f"{path}/notes", navigator_id),
            ("POST", f"{path}/decision", navigator_id),
            ("POST", f"{path}/decision", service.key_ids["admin"]),
            ("POST", f"{path}/assignment", navigator_id),
            ("POST", f"{path}/assignment", navigator_id)]
        patient = patient_resource_id("MRN-LATE", "HOSP")
        assert all(e["patients"] == [patient] and e["status"] in (200, 201) for e in log)

        # Bad requests: no reason, a blank note, an unknown decision, a free-text actor.
        for sub, body in (("decision", {"status": "not_needed"}),
                          ("decision", {"status": "not_needed", "reason": " "}),
                          ("decision", {"status": "closed", "reason": "x"}),
                          ("decision", {"status": "not_needed", "reason": "x",
                                        "actor": "someone else"}),
                          ("notes", {"text": ""}), ("notes", {"text": "x", "actor": "y"}),
                          ("assignment", {})):
            assert navigator.post(f"{path}/{sub}", json=body).status_code == 422, (sub, body)
        missing = "/api/v1/audit/recommendations/999999"
        for sub, body in (("decision", {"status": "not_needed", "reason": "x"}),
                          ("assignment", {"assignee": "x"}), ("notes", {"text": "x"})):
            assert navigator.post(f"{missing}/{sub}", json=body).status_code == 404


def test_auditor_reads_but_may_not_act(service: Service) -> None:
    with service.client("auditor") as auditor, service.client("admin") as admin:
        late = _follow_up(auditor, "ACC-LATE", CT_FOLLOW_UP)
        path = f"/api/v1/audit/recommendations/{late['id']}"
        for sub, body in (("decision", {"status": "not_needed", "reason": "x"}),
                          ("decision", {"status": "not_a_recommendation", "reason": "x"}),
                          ("assignment", {"assignee": "me"}), ("notes", {"text": "x"})):
            refused = auditor.post(f"{path}/{sub}", json=body)
            assert refused.status_code == 403, sub
            assert "navigator" in refused.json()["detail"]
        detail = _ok(auditor.get(path))
        assert detail["status"] == "overdue" and detail["assignee"] is None
        assert [e["actor"] for e in detail["history"]] == ["system"]
        refusals = _ok(admin.get("/api/v1/access-log", params={
            "key_id": service.key_ids["auditor"], "action": "refused"}))["items"]
        assert len(refusals) == 4 and {e["status"] for e in refusals} == {403}
        me = _ok(auditor.get("/api/v1/audit/me"))
        assert (me["name"], me["roles"], me["can_act"]) == ("auditor key", ["auditor"], False)
        assert me["tracked_kinds"] == ["imaging", "consultation"]
        assert "not_a_recommendation" in me["decisions"]
    for role in ("navigator", "admin"):
        with service.client(role) as client:
            assert _ok(client.get("/api/v1/audit/me"))["can_act"] is True
    with service.client("annotator") as annotator:
        assert annotator.get("/api/v1/audit/me").status_code == 403
        assert annotator.post(f"{path}/notes", json={"text": "x"}).status_code == 403


def test_as_of_queries_give_the_same_answer_before_and_after_actions(service: Service) -> None:
    with service.client("navigator") as navigator:
        late = _follow_up(navigator, "ACC-LATE", CT_FOLLOW_UP)
        path = f"/api/v1/audit/recommendations/{late['id']}"
        before = datetime.now(UTC).isoformat()
        states_before = _states(navigator, before)
        summary_before = _summary(navigator, as_of=before)
        assert states_before[late["id"]] == "overdue"

        _ok(navigator.post(f"{path}/decision", json={"status": "not_needed",
                                                     "reason": "declined"}))
        _ok(navigator.post(f"{path}/assignment", json={"assignee": "Dana"}))
        _ok(navigator.post(f"{path}/notes", json={"text": "letter sent"}), 201)
        between = datetime.now(UTC).isoformat()
        _ok(navigator.post(f"{path}/decision", json={"status": "completed_elsewhere",
                                                     "reason": "done elsewhere"}))
        after = datetime.now(UTC).isoformat()

        # The past stays as it was; each later date sees the decision of its time.
        assert _states(navigator, before) == states_before
        assert _summary(navigator, as_of=before) == summary_before
        assert _states(navigator, between)[late["id"]] == "not_needed"
        assert _states(navigator, after)[late["id"]] == "completed_elsewhere"
        assert _ok(navigator.get(path, params={"as_of": between}))["status"] == "not_needed"
        summary_after = _summary(navigator, as_of=after)
        assert summary_after["completed_elsewhere"] == 1
        assert summary_after["overdue"] == summary_before["overdue"] - 1


def test_not_a_recommendation_leaves_the_rates_and_queues_the_correction(
        service: Service) -> None:
    with service.client("navigator") as navigator, service.client("ehr") as ehr, \
            service.client("annotator") as annotator:
        thyroid = _follow_up(navigator, "ACC-TWO", THYROID)
        other = _follow_up(navigator, "ACC-TWO", CT_FOLLOW_UP)
        before = _summary(navigator)
        path = f"/api/v1/audit/recommendations/{thyroid['id']}"
        answer = _ok(navigator.post(f"{path}/decision", json={
            "status": "not_a_recommendation", "reason": "incidental mention, no request"}))
        assert answer["status"] == "not_a_recommendation"
        task_id = answer["annotation_task_id"]
        assert task_id is not None and answer["event"]["annotation_task_id"] == task_id

        # Out of the rates: one fewer due (and overdue), counted on its own.
        after = _summary(navigator)
        assert after["due"] == before["due"] - 1 and after["overdue"] == before["overdue"] - 1
        assert after["not_a_recommendation"] == 1 and before["not_a_recommendation"] == 0
        assert after["completion_rate"] == before["completion_rate"] == 0.0
        overdue = _worklist(navigator, status="overdue")["items"]
        assert thyroid["id"] not in {i["id"] for i in overdue}
        assert other["id"] in {i["id"] for i in overdue}
        # Its FHIR ServiceRequest is revoked, the other one stays a draft.
        detail = _ok(navigator.get(path))
        request = _ok(ehr.get(f"/fhir/ServiceRequest/{detail['fhir_id']}"))
        assert request["status"] == "revoked"
        other_detail = _ok(navigator.get(f"/api/v1/audit/recommendations/{other['id']}"))
        other_request = _ok(ehr.get(f"/fhir/ServiceRequest/{other_detail['fhir_id']}"))
        assert other_request["status"] == "draft"

        # The annotation task: the report, pre-annotated without that recommendation.
        queue = _ok(annotator.get("/api/v1/annotations/tasks"))["items"]
        assert [(t["id"], t["source"], t["external_id"]) for t in queue] == [
            (task_id, "follow_up", "ACC-TWO")]
        task = _ok(annotator.get(f"/api/v1/annotations/tasks/{task_id}"))
        assert task["report_id"] == thyroid["report_id"]
        assert f"follow-up {thyroid['id']}" in task["note"]
        assert "incidental mention, no request" in task["note"]
        assert "navigator key" in task["note"] and "not a recommendation" in task["note"]
        texts = [r["text"] for r in task["pre_annotation"]["recommendations"]]
        assert texts == [CT_FOLLOW_UP]
        assert any(s["label"] == "FINDING" and "thyroid" in s["text"]
                   for s in task["pre_annotation"]["spans"])
        assert all(r["status"] == "pending" for r in task["pre_annotation"]["recommendations"])

        # The other recommendation of the same report too: the untouched task is corrected
        # again rather than doubled.
        second = _ok(navigator.post(f"/api/v1/audit/recommendations/{other['id']}/decision",
                                    json={"status": "not_a_recommendation",
                                          "reason": "a differential, not a request"}))
        assert second["annotation_task_id"] == task_id
        task = _ok(annotator.get(f"/api/v1/annotations/tasks/{task_id}"))
        assert task["pre_annotation"]["recommendations"] == []
        assert task["note"].count("not a recommendation") == 2

        # Undo keeps the task; the follow-up is back in the rates.
        _ok(navigator.post(f"{path}/decision", json={"status": "open",
                                                     "reason": "it was a request after all"}))
        assert _summary(navigator)["not_a_recommendation"] == 1  # the other one
        assert len(_ok(annotator.get("/api/v1/annotations/tasks"))["items"]) == 1
        assert _ok(ehr.get(f"/fhir/ServiceRequest/{detail['fhir_id']}"))["status"] == "draft"
        history = _ok(navigator.get(path))["history"]
        assert [(e["kind"], e["status"], e["annotation_task_id"]) for e in history
                if e["kind"] == "manual"] == [("manual", "not_a_recommendation", task_id),
                                              ("manual", "open", None)]


def test_kinds_filter_the_worklist_summary_and_csv(service: Service) -> None:
    with service.client("auditor") as auditor:
        thyroid = _follow_up(auditor, "ACC-TWO", THYROID)
        everything = _worklist(auditor)
        assert everything["kinds"] == ["imaging", "consultation"]
        with session_scope(service.engine) as session:
            session.execute(update(FollowUp).where(col(FollowUp.id) == thyroid["id"])
                            .values(kind="clinical_correlation"))
        tracked = _worklist(auditor)
        assert thyroid["id"] not in {i["id"] for i in tracked["items"]}
        assert tracked["total"] == everything["total"] - 1
        only = _worklist(auditor, kind="clinical_correlation")
        assert [(i["id"], i["kind"]) for i in only["items"]] == [
            (thyroid["id"], "clinical_correlation")]
        assert only["kinds"] == ["clinical_correlation"]
        both = _worklist(auditor, kind=["imaging", "clinical_correlation"])
        assert both["total"] == everything["total"]
        assert _summary(auditor)["total"] == tracked["total"]
        assert _summary(auditor, kind="clinical_correlation")["total"] == 1
        csv = auditor.get("/api/v1/audit/recommendations",
                          params={"kind": "clinical_correlation", "format": "csv"}).text
        lines = csv.splitlines()
        assert "kind" in lines[0].split(",") and len(lines) == 2
        assert "clinical_correlation" in lines[1]
        for endpoint in ("recommendations", "summary"):
            bad = auditor.get(f"/api/v1/audit/{endpoint}", params={"kind": "guesswork"})
            assert bad.status_code == 422 and "unknown kind" in bad.text


# --- The dashboard, in a real Chromium. ------------------------------------------------------

def _signed_in(browser: Browser, service: Service, role: str) -> tuple[Page, list[str]]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(f"{service.base_url}/audit")
    page.wait_for_url("**/login?next=%2Faudit")
    page.fill("#key", service.keys[role])
    page.click("#login button[type=submit]")
    page.wait_for_url(f"{service.base_url}/audit")
    page.wait_for_selector('#dashboard[data-state="ready"]')
    return page, errors


def test_navigator_marks_not_a_recommendation_from_the_dashboard(
        service: Service, browser: Browser, tmp_path: Path) -> None:
    with service.client("navigator") as navigator:
        thyroid = _follow_up(navigator, "ACC-TWO", THYROID)
        before = _summary(navigator, include_conditional="false")

    page, errors = _signed_in(browser, service, "navigator")
    assert page.text_content("#who") == "Signed in as navigator key (navigator)"
    assert page.text_content("#kpi-overdue") == str(before["overdue"]) == "3"
    assert page.text_content("#kpi-due") == str(before["due"])
    checked = page.locator("#kinds input[name=kind]:checked")
    assert sorted(checked.nth(i).get_attribute("value") or "" for i in range(checked.count())) \
        == ["consultation", "imaging"]
    row = page.locator(f'#worklist tbody tr[data-id="{thyroid["id"]}"]')
    assert row.locator("button.action").count() == 6  # three decisions, assign, note, history

    row.get_by_role("button", name="Not a recommendation: ACC-TWO").click()
    dialog = page.locator("#action-dialog")
    assert dialog.is_visible()
    assert page.text_content("#action-title") == "Mark not a recommendation (extraction error)"
    assert THYROID in (page.text_content("#action-context") or "")
    assert page.evaluate("document.activeElement.id") == "action-input"
    page.fill("#action-input", "incidental mention, no request")
    page.screenshot(path=str(tmp_path / "action-dialog.png"))
    print(f"action dialog screenshot: {tmp_path / 'action-dialog.png'}")
    page.click("#action-submit")
    page.wait_for_selector("#action-status:has-text('marked not a recommendation')")
    assert not dialog.is_visible()
    status = page.text_content("#action-status") or ""
    assert "ACC-TWO" in status and "annotation task" in status

    # The rates shown on the page leave it out; the row leaves the overdue worklist.
    page.wait_for_selector('#dashboard[data-state="ready"]')
    assert page.text_content("#kpi-overdue") == str(before["overdue"] - 1)
    assert page.text_content("#kpi-due") == str(before["due"] - 1)
    assert page.locator(f'#worklist tbody tr[data-id="{thyroid["id"]}"]').count() == 0
    assert page.locator("#worklist tbody tr[data-id]").count() == before["overdue"] - 1

    # Among the decided ones, with its history naming the key and the annotation task.
    page.select_option("#worklist-show", "decided")
    page.wait_for_selector(f'#worklist tbody tr[data-id="{thyroid["id"]}"]')
    assert page.text_content("#worklist-heading") == "Decided follow-ups"
    row = page.locator(f'#worklist tbody tr[data-id="{thyroid["id"]}"]')
    assert row.locator(".state").text_content() == "not a recommendation"
    assert row.get_by_role("button", name="Reopen: ACC-TWO").is_visible()
    row.get_by_role("button", name="History: ACC-TWO").click()
    history = page.locator(f'#history-{thyroid["id"]}[data-state="ready"]')
    history.wait_for()
    assert row.get_by_role("button", name="History: ACC-TWO").get_attribute(
        "aria-expanded") == "true"
    marked = history.locator('li[data-kind="manual"]')
    assert marked.locator(".event-title").text_content() == "Marked not a recommendation"
    assert (f"by navigator key (key {service.key_ids['navigator']})"
            == marked.locator(".event-actor").text_content())
    page.screenshot(path=str(tmp_path / "decided-history.png"), full_page=True)
    print(f"decided worklist screenshot: {tmp_path / 'decided-history.png'}")
    task_link = marked.locator("a.event-task")
    task_id = int((task_link.text_content() or "").rsplit(" ", 1)[1])
    assert task_link.get_attribute("href") == f"/annotate?task={task_id}"

    # Assign it and add a note, from the same row.
    row.get_by_role("button", name="Assign: ACC-TWO").click()
    assert page.evaluate("document.activeElement.id") == "action-name"
    page.fill("#action-name", "Dana Quinn")
    page.click("#action-submit")
    page.wait_for_selector("#action-status:has-text('assigned to Dana Quinn')")
    row = page.locator(f'#worklist tbody tr[data-id="{thyroid["id"]}"]')
    assert row.locator(".assignee").text_content() == "Assigned to Dana Quinn"
    row.get_by_role("button", name="Add note: ACC-TWO").click()
    page.fill("#action-input", "radiologist agrees")
    page.click("#action-submit")
    page.wait_for_selector("#action-status:has-text('ACC-TWO: noted')")
    page.context.close()
    assert not errors, errors

    # The annotation task is in the queue, with the recommendation removed.
    with service.client("annotator") as annotator, service.client("navigator") as navigator:
        queue = _ok(annotator.get("/api/v1/annotations/tasks"))["items"]
        assert [(t["id"], t["external_id"], t["source"]) for t in queue] == [
            (task_id, "ACC-TWO", "follow_up")]
        task = _ok(annotator.get(f"/api/v1/annotations/tasks/{task_id}"))
        assert [r["text"] for r in task["pre_annotation"]["recommendations"]] == [CT_FOLLOW_UP]
        assert task["report_id"] == thyroid["report_id"]
        assert "incidental mention, no request" in task["note"]
        kinds = [e["kind"] for e in _ok(navigator.get(
            f"/api/v1/audit/recommendations/{thyroid['id']}"))["history"]]
        assert kinds[-3:] == ["manual", "assigned", "note"]


def test_an_auditor_sees_no_action_buttons(service: Service, browser: Browser) -> None:
    page, errors = _signed_in(browser, service, "auditor")
    rows = page.locator("#worklist tbody tr[data-id]")
    assert rows.count() == 3
    assert page.get_attribute("#dashboard", "data-can-act") == "false"
    for i in range(rows.count()):
        actions = rows.nth(i).locator("button.action")
        assert actions.count() == 1 and actions.first.text_content() == "History"
    rows.first.get_by_role("button", name="History: ").first.click()
    page.wait_for_selector(".history-row[data-state='ready'] li[data-kind='created']")
    page.context.close()
    assert not errors, errors
