"""Health, readiness and Prometheus metrics on a live service."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from hl7.client import MLLPClient

from tests.conftest import LiveService


def _metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


def test_health_readiness_and_metrics_follow_the_traffic(live_service: LiveService,
                                                         oru: Callable[..., str]) -> None:
    base = live_service.base_url
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{base}/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "ok"
    before = httpx.get(f"{base}/metrics").text
    with MLLPClient("127.0.0.1", live_service.mllp_port) as client:
        client.send_message(oru("M1", "ACC-M1", ["No effusion."]))
        client.send_message(oru("M1", "ACC-M1", ["No effusion."]))  # a duplicate
        client.send_message("MSH|^~\\&|A|B|C|D|2026||ADT^A01|M2|P|2.5.1\rPID|1\r")
    queued = httpx.get(f"{base}/metrics").text
    assert 'radnlp_inbox_messages{state="pending"} 1' in queued
    live_service.drain()
    after = httpx.get(f"{base}/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    for name, grew in [('radnlp_hl7_messages_received_total{transport="mllp"}', 3),
                       ('radnlp_hl7_messages_acked_total{code="AA"}', 2),
                       ('radnlp_hl7_messages_acked_total{code="AR"}', 1),
                       ("radnlp_hl7_messages_duplicate_total", 1),
                       ('radnlp_worker_messages_total{outcome="done"}', 1),
                       ("radnlp_worker_reports_total", 1)]:
        assert _metric(after.text, name) - _metric(before, name) == grew, name
    assert 'radnlp_inbox_messages{state="done"} 1' in after.text
    assert 'radnlp_worker_batch_seconds_count{phase="analyse"}' in after.text


def test_security_headers_cors_and_body_limit(live_service: LiveService) -> None:
    base = live_service.base_url
    answer = httpx.get(f"{base}/api/v1/reports")
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["cache-control"] == "no-store"
    assert httpx.get(f"{base}/fhir/metadata").headers["cache-control"] == "no-store"
    preflight = httpx.options(f"{base}/api/v1/reports", headers={
        "Origin": "https://elsewhere.example", "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in preflight.headers  # no CORS by default
    huge = httpx.post(f"{base}/api/v1/analyze", content=b"x" * 12_000_000,
                      headers={"content-type": "application/json"})
    assert huge.status_code == 413


def test_text_no_database_can_store_is_refused_with_a_reason(live_service: LiveService,
                                                             oru: Callable[..., str]) -> None:
    tasks = f"{live_service.base_url}/api/v1/annotations/tasks"
    json_type = {"Content-Type": "application/json"}

    def create(text_literal: str) -> httpx.Response:
        body = '{"documents": [{"id": "d", "text": "' + text_literal + '"}]}'
        return httpx.post(tasks, content=body.encode(), headers=json_type)

    nul, lone, pair, escaped = (create(r"No effusion.\u0000"), create(r"Nodule \ud800."),
                                create(r"Nodule \ud83d\ude00."), create(r"Path a\\u0000b."))
    assert (nul.status_code, lone.status_code) == (400, 400)
    assert "NUL" in nul.json()["detail"] and "surrogate" in lone.json()["detail"]
    assert (pair.status_code, escaped.status_code) == (201, 201)
    stored = httpx.get(tasks).json()["items"]
    assert len(stored) == 2
    # An HL7 message with a NUL in its text is refused over HTTP and kept, byte for byte.
    raw = oru("NUL0001", "ACC-NUL", ["No effusion.\x00"]).encode()
    refused = httpx.post(f"{live_service.base_url}/api/v1/hl7", content=raw,
                         headers={"Content-Type": "x-application/hl7-v2+er7"})
    assert refused.status_code == 400 and "NUL" in refused.text
    letters = httpx.get(f"{live_service.base_url}/api/v1/hl7/dead-letters").json()["items"]
    assert [letter["control_id"] for letter in letters] == ["NUL0001"]
