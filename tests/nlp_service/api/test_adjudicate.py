"""The adjudication page in a real headless Chromium against a live service: two annotators
disagree on an assertion, a span only one of them marked and a label; the lead resolves the
three by keyboard and saves; the stored gold version and the export must hold exactly that."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page

from tests.conftest import LiveService
from tests.nlp_service.api.conftest import assert_serves, sign_in

API = "/api/v1/annotations"
LEAD = "lead"

REPORT = ("FINDINGS: No pneumothorax. Small left pleural effusion. "
          "6 mm nodule in the right upper lobe.\n"
          "IMPRESSION: Recommend follow-up CT chest in 6 months.")
OTHER = "FINDINGS: The lungs are clear. Heart size is normal."
DOCUMENTS = [{"id": "adj-doc-1", "text": REPORT}, {"id": "adj-doc-2", "text": OTHER}]
RECOMMENDATION = "Recommend follow-up CT chest in 6 months."


def _span(phrase: str, label: str, **fields: Any) -> dict[str, Any]:
    """A span over the first occurrence of ``phrase`` in the report, in the stored form."""
    start = REPORT.index(phrase)
    return {"start": start, "end": start + len(phrase), "label": label, "text": phrase,
            **fields}


def _key(item: dict[str, Any]) -> tuple[int, int, str]:
    return item["start"], item["end"], item.get("label", "")


def _recommendation() -> dict[str, Any]:
    start = REPORT.index(RECOMMENDATION)
    return {"start": start, "end": start + len(RECOMMENDATION), "text": RECOMMENDATION,
            "modality": "CT", "body_region": "chest", "interval_min_days": 180,
            "interval_max_days": 180, "conditional": False}


def _versions() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """ann1's and ann2's spans: they differ in the effusion's assertion, the label of the right
    upper lobe, and an anatomy span "chest" that only ann2 marked."""
    agreed = [_span("pneumothorax", "FINDING", assertion="absent", concept="pneumothorax"),
              _span("6 mm", "MEASUREMENT"),
              _span("nodule", "FINDING", assertion="present", concept="pulmonary nodule")]
    effusion = _span("pleural effusion", "FINDING", assertion="present",
                     concept="pleural effusion", laterality="left")
    ann1 = [*agreed, effusion, _span("right upper lobe", "ANATOMY")]
    ann2 = [*agreed, {**effusion, "assertion": "possible"},
            _span("right upper lobe", "FINDING", assertion="present"),
            _span("chest", "ANATOMY")]
    return ann1, ann2


def _submit(base: str, task_id: int, annotator: str, document: dict[str, Any],
            state: str = "submitted") -> None:
    response = httpx.put(f"{base}{API}/tasks/{task_id}/annotations/{annotator}",
                         json={"document": document, "state": state})
    assert response.status_code == 200, response.text


def _dispute(page: Page, index: int) -> Any:
    return page.locator(f"#disagreements .disagreement[data-index='{index}']")


def test_lead_resolves_disagreements_by_keyboard_and_saves_gold(
    page: Page, live_service: LiveService, tmp_path: Path,
) -> None:
    base = live_service.base_url
    created = httpx.post(f"{base}{API}/tasks", json={"documents": DOCUMENTS}, timeout=60)
    assert created.status_code == 201, created.text
    task, other = created.json()["created"]
    version = task["model_version"]
    ann1, ann2 = _versions()
    for annotator, spans in [("ann1", ann1), ("ann2", ann2)]:
        _submit(base, task["id"], annotator, {
            "id": task["external_id"], "text": REPORT, "spans": spans,
            "recommendations": [_recommendation()], "model_version": version})
    # One submission and a draft: not ready for adjudication.
    empty = {"id": other["external_id"], "text": OTHER, "spans": [], "recommendations": []}
    _submit(base, other["id"], "ann1", empty)
    _submit(base, other["id"], "ann2", empty, state="draft")

    waiting = httpx.get(f"{base}{API}/adjudication").json()["items"]
    assert [t["id"] for t in waiting] == [task["id"]]
    assert waiting[0]["submitted"] == ["ann1", "ann2"]
    # tp 5 (4 spans and the recommendation), fp 2 (ann2's RUL finding, chest), fn 1 (ann1's RUL
    # anatomy): F1 10/13. Assertions (absent, absent), (present, possible), (present, present):
    # po 2/3, pe 1/3, kappa 0.5.
    assert waiting[0]["agreement"] == [{"annotators": ["ann1", "ann2"], "span_f1": 0.7692,
                                        "assertion_kappa": 0.5, "matched_findings": 3}]

    page.goto(f"{base}/annotate/adjudicate?adjudicator={LEAD}")
    page.wait_for_selector('#workspace[data-state="ready"]')
    assert page.locator("#queue .queue-item").count() == 1
    entry = page.locator(f'#queue .queue-item[data-task-id="{task["id"]}"]')
    assert "adj-doc-1" in entry.text_content()
    assert entry.locator(".pair").text_content() == "ann1 × ann2: F1 0.77 · κ 0.50"
    entry.click()
    page.wait_for_selector(f'#task[data-task-id="{task["id"]}"]')
    assert f"task={task['id']}" in page.url

    # The text once, with a gold lane and one lane per annotator.
    assert page.text_content("#report-text") == REPORT
    assert page.locator("#lanes-legend .lane-chip").count() == 3
    chest = page.locator(f'#report-text [data-start="{REPORT.index("chest")}"]')
    lanes = (chest.get_attribute("title") or "").splitlines()
    assert lanes == ["gold: recommendation · CT · chest · 180–180 days",
                     "1 ann1: recommendation · CT · chest · 180–180 days",
                     "2 ann2: anatomy; recommendation · CT · chest · 180–180 days"]

    # Exactly the three disagreements, in text order; everything else was taken as agreed.
    disputes = page.locator("#disagreements .disagreement")
    assert disputes.count() == 3
    found = [(d.locator("q").text_content(), d.locator(".kind-tag").all_text_contents())
             for d in disputes.all()]
    assert found == [("pleural effusion", ["assertion"]), ("right upper lobe", ["label"]),
                     ("chest", ["missing in ann1"])]
    assert "the 4 items all annotators agree on" in page.text_content("#agreed-count")
    assert page.get_attribute("#disagreements", "data-current") == "0"
    page.screenshot(path=str(tmp_path / "adjudicate-open.png"), full_page=True)

    # Saving with open disagreements is refused.
    page.keyboard.press("Control+Enter")
    assert "Resolve the 3 open disagreements" in page.text_content("#message")
    assert httpx.get(f"{base}{API}/tasks/{task['id']}").json()["status"] == "open"

    page.keyboard.press("2")  # the effusion: ann2's "possible"; moves on to the next open one
    assert _dispute(page, 0).get_attribute("data-resolution") == "1"
    assert page.get_attribute("#disagreements", "data-current") == "1"
    page.keyboard.press("j")
    assert page.get_attribute("#disagreements", "data-current") == "2"
    page.keyboard.press("x")  # drop "chest"; back round to the one still open
    assert _dispute(page, 2).get_attribute("data-resolution") == "drop"
    assert page.get_attribute("#disagreements", "data-current") == "1"
    page.keyboard.press("1")  # the right upper lobe: ann1's anatomy
    assert _dispute(page, 1).get_attribute("data-resolution") == "0"
    page.keyboard.press("k")
    assert page.get_attribute("#disagreements", "data-current") == "0"
    assert page.get_attribute("#task", "data-open") == "0"
    assert "5 spans and 1 recommendation" in page.text_content("#save-note")
    screenshot = tmp_path / "adjudicate.png"
    page.screenshot(path=str(screenshot), full_page=True)
    print(f"adjudication page screenshot: {screenshot}")

    page.keyboard.press("Control+Enter")
    page.wait_for_selector('#save-status[data-state="saved"]')
    page.wait_for_selector('#task[data-status="adjudicated"]')
    assert page.text_content("#task-status") == f"adjudicated by {LEAD}"
    assert page.is_visible("#queue-empty")
    page.screenshot(path=str(tmp_path / "adjudicate-saved.png"), full_page=True)

    expected = [*ann1[:3], {**ann1[3], "assertion": "possible"}, ann1[4]]
    stored = httpx.get(f"{base}{API}/tasks/{task['id']}").json()
    assert stored["status"] == "adjudicated"
    gold = httpx.get(f"{base}{API}/tasks/{task['id']}/annotations").json()["gold"]
    assert sorted(gold["spans"], key=_key) == sorted(expected, key=_key)
    assert gold["recommendations"] == [_recommendation()]
    assert gold["annotator"] == LEAD and gold["text"] == REPORT
    assert gold["model_version"] == version
    assert httpx.get(f"{base}{API}/adjudication").json()["items"] == []

    export = httpx.get(f"{base}{API}/export", params={"format": "jsonl"})
    assert export.status_code == 200, export.text
    exported = [json.loads(line) for line in export.text.splitlines() if line.strip()]
    ours = [d for d in exported if d["id"] == task["external_id"]]
    assert len(ours) == 1
    assert {k: v for k, v in ours[0].items() if k != "split"} == {
        k: v for k, v in gold.items() if k != "split"}

    # Opened again, the adjudicated task shows the resolutions its gold version implies.
    page.reload()
    page.wait_for_selector(f'#task[data-task-id="{task["id"]}"][data-status="adjudicated"]')
    assert [_dispute(page, i).get_attribute("data-resolution") for i in range(3)] == [
        "1", "0", "drop"]
    assert "Already adjudicated" in page.text_content("#message")


def test_page_asks_for_a_name_and_serves_only_its_own_files(
    page: Page, live_service: LiveService
) -> None:
    base = live_service.base_url
    assert_serves(base, "/annotate/adjudicate", "/annotate/static",
                  ["adjudicate.js", "adjudicate.css"], ["adjudicate.html"])
    sign_in(page, f"{base}/annotate/adjudicate", "adjudicator", LEAD)
