"""The annotation tasks API on a live service: creation (documents, stored reports, an audit
query), the queue, saving and submitting, agreement, adjudication, export and import."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from annotations.agreement import agreement_report
from annotations.document import AnnotatedReport
from annotations.export import from_docbin, read_jsonl_text
from tests.conftest import LiveService

TEXTS = {
    "doc-a": "FINDINGS: No pneumothorax. 6 mm nodule in the right upper lobe.",
    "doc-b": "FINDINGS: Small left pleural effusion. Possible atelectasis at the left base.",
}


def _create(api: str, **body: Any) -> list[dict[str, Any]]:
    response = httpx.post(f"{api}/tasks", json=body, timeout=120)
    assert response.status_code == 201, response.text
    return list(response.json()["created"])


def _edit(document: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The document with every span accepted and ``changes`` applied to its FINDING spans
    (text -> assertion)."""
    spans = []
    for span in document["spans"]:
        span = {**span, "status": "accepted"}
        if span["label"] == "FINDING" and span["text"] in changes:
            span["assertion"] = changes[span["text"]]
        spans.append(span)
    recs = [{**r, "status": "accepted"} for r in document.get("recommendations", [])]
    return {**document, "spans": spans, "recommendations": recs}


def test_tasks_queue_save_agreement_adjudication_export(live_service: LiveService) -> None:
    api = f"{live_service.base_url}/api/v1/annotations"
    created = _create(api, documents=[{"id": k, "text": v} for k, v in TEXTS.items()])
    assert [t["external_id"] for t in created] == ["doc-a", "doc-b"]
    assert all(t["model_version"] == "rules-2026.11" for t in created)
    queue = httpx.get(f"{api}/tasks").json()["items"]
    scores = [t["uncertainty"] for t in queue]
    assert scores == sorted(scores, reverse=True)
    task_id = next(t["id"] for t in created if t["external_id"] == "doc-a")
    task = httpx.get(f"{api}/tasks/{task_id}", params={"annotator": "ann1"}).json()
    assert task["annotation"] is None and task["text"] == TEXTS["doc-a"]
    pre = task["pre_annotation"]
    assert {s["status"] for s in pre["spans"]} == {"pending"}
    assert any(s["text"] == "pneumothorax" and s["assertion"] == "absent" for s in pre["spans"])

    first = _edit(pre)
    second = _edit(pre, nodule="possible")
    draft = httpx.put(f"{api}/tasks/{task_id}/annotations/ann1",
                      json={"document": first, "state": "draft"})
    assert draft.status_code == 200
    reread = httpx.get(f"{api}/tasks/{task_id}", params={"annotator": "ann1"}).json()
    assert reread["state"] == "draft"
    assert AnnotatedReport.from_gold_dict(reread["annotation"]) == AnnotatedReport.from_gold_dict(
        {**first, "id": "doc-a", "annotator": "ann1"})
    for annotator, document in (("ann1", first), ("ann2", second)):
        saved = httpx.put(f"{api}/tasks/{task_id}/annotations/{annotator}",
                          json={"document": document, "state": "submitted"})
        assert saved.status_code == 200, saved.text
    assert task_id not in [t["id"] for t in httpx.get(
        f"{api}/tasks", params={"annotator": "ann1"}).json()["items"]]

    agreement = httpx.get(f"{api}/agreement").json()
    expected = agreement_report({
        "ann1": [AnnotatedReport.from_gold_dict({**first, "annotator": "ann1"})],
        "ann2": [AnnotatedReport.from_gold_dict({**second, "annotator": "ann2"})]}).as_dict()
    assert agreement == json.loads(json.dumps(expected))

    bad = dict(first, spans=[{"start": 0, "end": 5, "label": "FINDING", "text": "WRONG"}])
    assert httpx.put(f"{api}/tasks/{task_id}/annotations/ann3",
                     json={"document": bad}).status_code == 422
    other = dict(first, text="another text")
    assert httpx.put(f"{api}/tasks/{task_id}/annotations/ann3",
                     json={"document": other}).status_code == 422
    assert httpx.get(f"{api}/tasks/999999").status_code == 404

    # Two annotators disagree on doc-a: only its adjudicated version is exported.
    exported = read_jsonl_text(httpx.get(f"{api}/export").text)
    assert [d.id for d in exported] == []
    gold = httpx.put(f"{api}/tasks/{task_id}/gold",
                     json={"document": second, "adjudicator": "lead"})
    assert gold.status_code == 200
    exported = read_jsonl_text(httpx.get(f"{api}/export").text)
    assert [(d.id, d.split) for d in exported] == [("doc-a", "train")]
    nodule = next(s for s in exported[0].spans if s.text == "nodule")
    assert nodule.assertion == "possible"
    docbin = from_docbin(httpx.get(f"{api}/export", params={"format": "docbin"}).content)
    assert docbin == exported


def test_tasks_from_stored_reports_and_an_audit_query_and_import(
        live_service: LiveService, oru: Callable[..., str]) -> None:
    base = live_service.base_url
    api = f"{base}/api/v1/annotations"
    report = ["FINDINGS: 7 mm nodule in the right upper lobe.",
              "IMPRESSION: Recommend follow-up CT chest in 3 months."]
    httpx.post(f"{base}/api/v1/hl7", content=oru(
        "AN1", "ACC-AN1", report, observed_at=datetime(2024, 1, 5, tzinfo=UTC)).encode(),
        headers={"content-type": "x-application/hl7-v2+er7"})
    live_service.drain()
    stored = httpx.get(f"{base}/api/v1/reports").json()["items"][0]
    by_id = _create(api, report_ids=[stored["id"]])
    by_query = _create(api, follow_up_status="overdue")
    assert [t["external_id"] for t in by_id] == [t["external_id"] for t in by_query] == [
        "ACC-AN1"]
    assert by_query[0]["source"] == "query" and by_id[0]["source"] == "report"
    assert httpx.post(f"{api}/tasks", json={"report_ids": [999999]}).status_code == 404
    assert httpx.post(f"{api}/tasks", json={}).status_code == 422

    line = AnnotatedReport(id="imp-1", text=TEXTS["doc-b"], split="train").to_gold_dict()
    imported = httpx.post(f"{api}/import", params={"annotator": "outside"},
                          content=json.dumps(line) + "\n")
    assert imported.status_code == 201
    task = httpx.get(f"{api}/tasks/{imported.json()['created'][0]}",
                     params={"annotator": "outside"}).json()
    assert task["state"] == "submitted" and task["annotation"]["id"] == "imp-1"
    assert httpx.post(f"{api}/import", content="{not json\n").status_code == 422
