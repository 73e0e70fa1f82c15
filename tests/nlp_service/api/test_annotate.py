"""The annotation page in a real headless Chromium against a live service: an annotator corrects
a negation the rules got wrong, adds a finding they missed, accepts the rest, survives a reload
and submits; the stored annotation and the export must hold exactly that."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page

from tests.conftest import LiveService
from tests.nlp_service.api.conftest import assert_serves, sign_in

API = "/api/v1/annotations"
ANNOTATOR = "ann1"

# "has disappeared" is no negation cue the rules know: they call the effusion present. And
# "tracheomalacia" is not in the lexicon, so the pipeline misses it.
REPORT = ("FINDINGS: No pneumothorax. 6 mm nodule in the right upper lobe. "
          "The left pleural effusion has disappeared. Mild tracheomalacia.\n"
          "IMPRESSION: Recommend follow-up CT chest in 6 months.")
WRONG = "pleural effusion"
MISSED = "tracheomalacia"
# Findings make a task as uncertain as the first (ties keep the creation order); no findings,
# least uncertain: the queue is REPORT, SECOND, THIRD.
SECOND = "FINDINGS: Possible small right pneumothorax. Small hiatal hernia."
THIRD = "FINDINGS: The lungs are clear. Heart size is normal."
DOCUMENTS = [{"id": "ann-doc-1", "text": REPORT}, {"id": "ann-doc-2", "text": SECOND},
             {"id": "ann-doc-3", "text": THIRD}]
# What the browser logs when the test cuts the autosave off on purpose.
CUT_OFF = "Failed to load resource"


def _create_tasks(base: str) -> list[dict[str, Any]]:
    response = httpx.post(f"{base}{API}/tasks", json={"documents": DOCUMENTS}, timeout=60)
    assert response.status_code == 201, response.text
    created = response.json()["created"]
    queue = httpx.get(f"{base}{API}/tasks", params={"annotator": ANNOTATOR}).json()["items"]
    assert [t["id"] for t in queue] == [t["id"] for t in created], "unexpected queue order"
    return created


def _task(base: str, task_id: int) -> dict[str, Any]:
    response = httpx.get(f"{base}{API}/tasks/{task_id}", params={"annotator": ANNOTATOR})
    assert response.status_code == 200, response.text
    return response.json()


def _span(document: dict[str, Any], text: str, label: str = "FINDING") -> dict[str, Any]:
    matches = [s for s in document["spans"] if s["text"] == text and s["label"] == label]
    assert len(matches) == 1, f"{label} {text!r}: {document['spans']}"
    return matches[0]


def _key(span: dict[str, Any]) -> tuple[int, int, str]:
    return span["start"], span["end"], span["label"]


def _open(page: Page, base: str, task_id: int) -> None:
    page.goto(f"{base}/annotate?annotator={ANNOTATOR}")
    page.wait_for_selector('#workspace[data-state="ready"]')
    page.click(f'#queue .queue-item[data-task-id="{task_id}"]')
    page.wait_for_selector(f'#task[data-task-id="{task_id}"]')


def _mark(page: Page, span: dict[str, Any]) -> Any:
    return page.locator(f'#report-text mark[data-span-start="{span["start"]}"]'
                        f'[data-span-end="{span["end"]}"][data-label="{span["label"]}"]')


def _drag_select(page: Page, start: int, end: int) -> str:
    """Select report characters start..end with the mouse; returns the selected text."""
    box = page.evaluate(
        """([start, end]) => {
             const pieces = [...document.querySelectorAll('#report-text [data-start]')];
             const piece = pieces.filter((el) => Number(el.dataset.start) <= start).pop();
             const offset = start - Number(piece.dataset.start);
             const range = document.createRange();
             range.setStart(piece.firstChild, offset);
             range.setEnd(piece.firstChild, offset + end - start);
             const r = range.getBoundingClientRect();
             return { left: r.left, right: r.right, y: r.top + r.height / 2 };
           }""", [start, end])
    page.mouse.move(box["left"] + 1, box["y"])
    page.mouse.down()
    page.mouse.move((box["left"] + box["right"]) / 2, box["y"], steps=4)
    page.mouse.move(box["right"] - 1, box["y"], steps=4)
    page.mouse.up()
    return str(page.evaluate("() => window.getSelection().toString()"))


def test_annotator_corrects_adds_accepts_reloads_and_submits(
    page: Page, live_service: LiveService, tmp_path: Path, allowed_errors: list[str],
) -> None:
    base = live_service.base_url
    first, second, _ = _create_tasks(base)
    before = _task(base, first["id"])
    pre = before["pre_annotation"]
    # The premise: the model calls the effusion present and does not see the tracheomalacia.
    wrong = _span(pre, WRONG)
    assert wrong["assertion"] == "present" and wrong["status"] == "pending"
    assert not [s for s in pre["spans"] if MISSED in s["text"]]
    assert all(s["status"] == "pending" and s["source"] == "model" for s in pre["spans"])
    concepts = httpx.get(f"{base}/annotate/api/concepts", params={"q": MISSED, "kind": "finding"})
    assert MISSED not in [c["name"] for c in concepts.json()["items"]]
    missed_start = REPORT.index(MISSED)
    missed_end = missed_start + len(MISSED)

    _open(page, base, first["id"])
    assert page.locator("#queue .queue-item").first.get_attribute("aria-current") == "true"
    assert page.text_content("#task-model-version") == before["model_version"]
    assert page.locator("#report-text mark.status-pending").count() >= len(pre["spans"])
    assert page.locator("#report-text mark.status-accepted").count() == 0
    assert "submitted as pending" in page.text_content("#submit-note")
    page.screenshot(path=str(tmp_path / "annotate-pending.png"), full_page=True)

    # Correct the negation: select the effusion, press 2 (absent).
    _mark(page, wrong).click()
    assert page.is_visible("#span-editor")
    assert page.text_content("#span-text") == f"“{WRONG}”"
    page.keyboard.press("2")
    effusion = _mark(page, wrong)
    assert "assertion-absent" in (effusion.get_attribute("class") or "")
    assert "status-accepted" in (effusion.get_attribute("class") or "")
    # The terminology search tolerates typos (nothing is picked: Escape leaves the field).
    page.fill("#concept-input", "pneumothrax")
    page.wait_for_selector('#concept-results button[data-name="pneumothorax"]')
    page.keyboard.press("Escape")

    # Add the missed finding: drag over the word, press f.
    allowed_errors.append(CUT_OFF)
    page.route(f"**{API}/tasks/*/annotations/{ANNOTATOR}", lambda route: route.abort())
    assert _drag_select(page, missed_start, missed_end) == MISSED
    page.keyboard.press("f")
    added = {"start": missed_start, "end": missed_end, "label": "FINDING"}
    assert _mark(page, added).count() == 1
    assert page.text_content("#span-text") == f"“{MISSED}”"

    # Accept everything else.
    page.keyboard.press("Shift+Enter")
    assert page.get_attribute("#task", "data-pending") == "0"
    assert page.locator("#report-text mark.status-pending").count() == 0

    # The server is unreachable for saves: the work is only in this browser, and a reload
    # must bring it back.
    page.wait_for_selector('#save-status[data-state="error"]')
    stored = page.evaluate(f"() => localStorage.getItem('radnlp.annotate.v1.{ANNOTATOR}."
                           f"{first['id']}')")
    assert stored and MISSED in stored
    assert _task(base, first["id"])["annotation"] is None
    page.reload()
    page.wait_for_selector(f'#task[data-task-id="{first["id"]}"]')
    assert page.get_attribute("#task", "data-loaded-from") == "local"
    assert "assertion-absent" in (_mark(page, wrong).get_attribute("class") or "")
    assert _mark(page, added).count() == 1
    assert page.get_attribute("#task", "data-pending") == "0"
    assert _task(base, first["id"])["annotation"] is None
    # ... and once the server is back, s saves it there as a draft.
    page.unroute(f"**{API}/tasks/*/annotations/{ANNOTATOR}")
    page.keyboard.press("s")
    page.wait_for_selector('#save-status[data-state="saved"]')
    assert page.evaluate(f"() => localStorage.getItem('radnlp.annotate.v1.{ANNOTATOR}."
                         f"{first['id']}')") is None
    draft = _task(base, first["id"])
    assert draft["state"] == "draft"
    assert _span(draft["annotation"], MISSED)["start"] == missed_start

    screenshot = tmp_path / "annotate.png"
    _mark(page, wrong).click()
    page.screenshot(path=str(screenshot), full_page=True)
    print(f"annotation page screenshot: {screenshot}")

    # Submit: the page moves on to the next task of the queue.
    page.keyboard.press("Control+Enter")
    page.wait_for_selector(f'#task[data-task-id="{second["id"]}"]')
    page.wait_for_selector('#save-status[data-state="submitted"]')
    assert page.locator(f'#queue .queue-item[data-task-id="{first["id"]}"]').count() == 0
    assert (page.locator("#queue .queue-item").first.get_attribute("data-task-id")
            == str(second["id"]))
    assert "ann-doc-2" in page.text_content("#task-title")

    # Stored: exactly the two changes, everything else the model's spans, now accepted.
    after = _task(base, first["id"])
    assert after["state"] == "submitted"
    document = after["annotation"]
    expected = [{key: value for key, value in span.items() if key != "status"}
                for span in pre["spans"]]
    for span in expected:
        if _key(span) == _key(wrong):
            span["assertion"] = "absent"
    expected.append({**added, "text": MISSED, "assertion": "present"})
    assert sorted(document["spans"], key=_key) == sorted(expected, key=_key)
    assert document["text"] == REPORT and document["annotator"] == ANNOTATOR
    assert document["model_version"] == before["model_version"]
    assert document["recommendations"] == [
        {key: value for key, value in rec.items() if key != "status"}
        for rec in pre["recommendations"]]
    queue = httpx.get(f"{base}{API}/tasks", params={"annotator": ANNOTATOR}).json()["items"]
    assert first["id"] not in [t["id"] for t in queue]

    export = httpx.get(f"{base}{API}/export", params={"format": "jsonl"})
    assert export.status_code == 200, export.text
    exported = [json.loads(line) for line in export.text.splitlines() if line.strip()]
    ours = [d for d in exported if d["id"] == first["external_id"]]
    assert len(ours) == 1
    assert sorted(ours[0]["spans"], key=_key) == sorted(expected, key=_key)
    assert ours[0]["text"] == REPORT


def test_queue_is_navigable_with_the_keyboard_alone(page: Page, live_service: LiveService
                                                    ) -> None:
    base = live_service.base_url
    tasks = [t["id"] for t in _create_tasks(base)]
    page.goto(f"{base}/annotate?annotator={ANNOTATOR}")
    page.wait_for_selector(f'#task[data-task-id="{tasks[0]}"]')

    def current() -> str | None:
        return page.locator('#queue .queue-item[aria-current="true"]').get_attribute(
            "data-task-id")

    page.keyboard.press("n")
    page.wait_for_selector(f'#task[data-task-id="{tasks[1]}"]')
    assert current() == str(tasks[1])
    page.keyboard.press("n")
    page.wait_for_selector(f'#task[data-task-id="{tasks[2]}"]')
    page.keyboard.press("n")  # the last one: stays
    assert "last task" in page.text_content("#message")
    page.keyboard.press("p")
    page.wait_for_selector(f'#task[data-task-id="{tasks[1]}"]')
    assert current() == str(tasks[1])
    assert "task=" in page.url

    # Tab moves between spans while the report text has focus ...
    page.keyboard.press("Tab")
    assert page.is_visible("#span-editor")
    first_span = page.get_attribute("#span-editor", "data-span-start")
    page.keyboard.press("Tab")
    assert page.get_attribute("#span-editor", "data-span-start") != first_span
    page.keyboard.press("Shift+Tab")
    assert page.get_attribute("#span-editor", "data-span-start") == first_span

    # ... and, after Escape, through the page: to a queue entry, which Enter opens.
    page.keyboard.press("Escape")
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.classList.contains('queue-item')"):
            break
    assert page.evaluate("() => document.activeElement.dataset.taskId") == str(tasks[0])
    page.keyboard.press("Enter")
    page.wait_for_selector(f'#task[data-task-id="{tasks[0]}"]')
    assert current() == str(tasks[0])

    # The help panel lists the shortcuts; ? shows and hides it.
    assert page.is_hidden("#help")
    page.keyboard.press("?")
    assert page.is_visible("#help")
    assert "Ctrl+Enter" in page.text_content("#help")
    page.keyboard.press("?")
    assert page.is_hidden("#help")


def test_span_editor_keys_and_controls(page: Page, live_service: LiveService) -> None:
    base = live_service.base_url
    _, second, _ = _create_tasks(base)
    pre = _task(base, second["id"])["pre_annotation"]
    pneumothorax, hernia = _span(pre, "pneumothorax"), _span(pre, "hiatal hernia")
    _open(page, base, second["id"])
    page.focus("#report-text")

    def offsets() -> str | None:
        return page.text_content("#span-offsets")

    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.text_content("#span-text") == "“hiatal hernia”"
    for key, expected in [("[", "50–64"), ("]", "51–64"), ("}", "51–65"), ("{", "51–64")]:
        page.keyboard.press(key)
        assert offsets() == expected, key
    page.click('[data-move="start"][data-by="-1"]')
    assert offsets() == "50–64"
    page.focus("#report-text")
    page.keyboard.press("Control+z")
    assert offsets() == "51–64"

    page.select_option("#span-label", "ANATOMY")
    assert page.is_hidden("#assertion-field")
    assert _mark(page, {**hernia, "label": "ANATOMY"}).count() == 1
    page.keyboard.press("Escape")
    page.keyboard.press("Control+z")
    assert _mark(page, hernia).count() == 1 and page.is_visible("#assertion-field")

    page.keyboard.press("Delete")
    assert _mark(page, hernia).count() == 0
    page.keyboard.press("Control+z")
    assert _mark(page, hernia).count() == 1

    _mark(page, pneumothorax).click()
    page.fill("#concept-input", "tension pneumo")
    page.click('#concept-results button[data-name="tension pneumothorax"]')
    assert page.text_content("#span-concept") == "tension pneumothorax"
    page.select_option("#span-laterality", "left")
    page.focus("#report-text")
    page.keyboard.press("s")
    page.wait_for_selector('#save-status[data-state="saved"]')

    draft = _task(base, second["id"])
    assert draft["state"] == "draft"
    no_status = [{k: v for k, v in span.items() if k != "status"} for span in pre["spans"]]
    assert draft["annotation"]["spans"] == [
        {**no_status[0], "concept": "tension pneumothorax", "laterality": "left"}, no_status[1]]
    assert pneumothorax["laterality"] == "right"


def test_page_asks_for_a_name_and_serves_only_its_own_files(
    page: Page, live_service: LiveService
) -> None:
    base = live_service.base_url
    assert_serves(base, "/annotate", "/annotate/static", ["annotate.js", "annotate.css"],
                  ["dashboard.js", "annotate.html", "..%2Fmain.py", "%2E%2E"])
    sign_in(page, f"{base}/annotate", "annotator", ANNOTATOR)


def test_concept_search_tolerates_typos(live_service: LiveService) -> None:
    base = live_service.base_url
    found = httpx.get(f"{base}/annotate/api/concepts", params={"q": "pneumothrax"}).json()
    assert found["items"][0]["name"] == "pneumothorax"
    assert found["items"][0]["kind"] == "finding" and found["items"][0]["radlex"]
    assert len(found["items"]) <= 10
    anatomy = httpx.get(f"{base}/annotate/api/concepts",
                        params={"q": "RUL", "kind": "anatomy"}).json()["items"]
    assert anatomy[0]["name"] == "right upper lobe"
    assert {c["kind"] for c in anatomy} == {"anatomy"}
    assert httpx.get(f"{base}/annotate/api/concepts", params={"q": ""}).status_code == 422
