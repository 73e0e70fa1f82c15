"""Delivery with real receivers on 127.0.0.1: a critical finding arriving over MLLP reaches a
webhook, signed; a receiver that is down for a while gets every notification once it is back
(none lost, duplicates only with the same idempotency key, in order per patient); dead letters
are listed and sent again; a FHIR client creates Subscriptions, which are notified as R4
describes and keep their status and error."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fhirpy import SyncFHIRClient
from sqlalchemy import Engine
from sqlmodel import col, select

from benchmarks.receiver import Receiver
from nlp_service.intake.client import send_messages
from nlp_service.intake.hl7 import build_oru
from nlp_service.notify.dispatcher import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Backoff,
    Dispatcher,
    verify,
)
from nlp_service.storage.db import session_scope
from nlp_service.storage.models import Delivery, OutboxEvent
from tests.conftest import LiveService

EXAM = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
CRITICAL = ("IMPRESSION: Large right tension pneumothorax with mediastinal shift. "
            "Recommend follow-up chest radiograph in 1 week.")
SECRET = "a-test-secret-of-some-length"


def critical_message(number: int, patient: int = 0) -> tuple[str, str]:
    control_id = f"CRIT{number}"
    return control_id, build_oru(control_id, f"ACC-CRIT-{number}", CRITICAL,
                                 mrn=f"MRN-N{patient}", observed_at=EXAM + timedelta(hours=number),
                                 procedure=("71250", "CT CHEST WITHOUT CONTRAST", "CPT4"))


def fast_dispatcher(engine: Engine, **options: object) -> Dispatcher:
    return Dispatcher(engine, backoff=Backoff(base_seconds=0.05, cap_seconds=0.2),
                      timeout_seconds=5, **options)  # type: ignore[arg-type]


def dispatch_until(dispatcher: Dispatcher, done: object, timeout: float = 60) -> None:
    """Run the dispatcher until ``done()`` (a wait for an outcome, not a timing)."""
    deadline = time.monotonic() + timeout
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"the deliveries did not complete: {_state(dispatcher)}"
        if not dispatcher.run_once().claimed:
            time.sleep(0.05)


def add_webhook(service: LiveService, url: str, kinds: list[str] | None = None) -> dict:
    response = httpx.post(f"{service.base_url}/api/v1/notifications/webhooks",
                          json={"url": url, "secret": SECRET, "event_kinds": kinds or []})
    assert response.status_code == 201, response.text
    return response.json()


def delivery_statuses(engine: Engine) -> Counter[str]:
    with session_scope(engine) as session:
        return Counter(session.exec(select(Delivery.status)).all())


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


def test_a_critical_finding_over_mllp_reaches_the_webhook_signed(
        live_service: LiveService, receiver: Receiver) -> None:
    add_webhook(live_service, receiver.url, ["critical_finding.created"])
    sent = send_messages([critical_message(1)], "127.0.0.1", live_service.mllp_port)
    assert [s.ack_code for s in sent] == ["AA"]
    live_service.drain()
    dispatcher = fast_dispatcher(live_service.engine)
    dispatch_until(dispatcher, lambda: delivery_statuses(live_service.engine)["delivered"] == 1)
    [request] = receiver.wait_for(1)
    event = request.json()
    assert request.method == "POST" and event["kind"] == "critical_finding.created"
    assert event["accession"] == "ACC-CRIT-1" and event["data"]["category"] == 1
    assert event["data"]["concept"] == "tension pneumothorax"
    assert request.headers[IDEMPOTENCY_HEADER] == event["event_id"]
    assert verify(SECRET, request.headers[TIMESTAMP_HEADER], request.body,
                  request.headers[SIGNATURE_HEADER])
    assert not verify("another-secret-entirely", request.headers[TIMESTAMP_HEADER],
                      request.body, request.headers[SIGNATURE_HEADER])
    # The same message again (a resend) makes no second event.
    assert [s.ack_code for s in send_messages([critical_message(1)], "127.0.0.1",
                                              live_service.mllp_port)] == ["AA"]
    live_service.drain()
    assert dispatcher.run_until_idle().claimed == 0


def test_a_receiver_down_for_a_while_gets_everything_after(
        live_service: LiveService, figures) -> None:
    receiver = Receiver().start()
    receiver.stop()  # down: its port refuses connections
    add_webhook(live_service, receiver.url)
    outgoing = [critical_message(n, patient=n % 3) for n in range(9)]
    assert {s.ack_code for s in send_messages(outgoing, "127.0.0.1",
                                         live_service.mllp_port)} == {"AA"}
    live_service.drain()
    with session_scope(live_service.engine) as session:
        events = {e.event_id: e.patient_key for e in session.exec(
            select(OutboxEvent).order_by(col(OutboxEvent.id)))}
        order = list(events)
    dispatcher = fast_dispatcher(live_service.engine)
    for _ in range(5):  # failing attempts, backing off
        dispatcher.run_once()
        time.sleep(0.1)
    with session_scope(live_service.engine) as session:
        attempts = session.exec(select(Delivery.attempts)).all()
    assert delivery_statuses(live_service.engine)["delivered"] == 0 and max(attempts) >= 2
    receiver.fail_next = 2  # back, but its first two answers are lost: sent again
    receiver.start()
    try:
        dispatch_until(dispatcher, lambda: delivery_statuses(
            live_service.engine) == Counter({"delivered": len(events)}))
        received = receiver.wait_for(len(events) + 2)
    finally:
        receiver.stop()
    keys = [request.headers[IDEMPOTENCY_HEADER] for request in received]
    assert set(keys) == set(events)  # none lost
    bodies: dict[str, set[bytes]] = {}
    for key, request in zip(keys, received, strict=True):
        assert request.json()["event_id"] == key
        bodies.setdefault(key, set()).add(request.body)
    assert len(received) - len(events) == 2  # the two lost answers, sent again
    assert all(len(b) == 1 for b in bodies.values())  # a duplicate is the same event
    for patient in set(events.values()):  # each patient's events arrive in order
        first_arrivals = list(dict.fromkeys(k for k in keys if events[k] == patient))
        assert first_arrivals == [k for k in order if events[k] == patient]
    figures(f"{len(events)} events, receiver down then failing twice: {len(received)} "
            f"requests, {len(set(keys))} distinct, 0 lost")


def test_dead_letters_are_listed_and_sent_again(live_service: LiveService) -> None:
    receiver = Receiver().start()
    receiver.stop()
    add_webhook(live_service, receiver.url, ["critical_finding.created"])
    assert [s.ack_code for s in send_messages([critical_message(5)], "127.0.0.1",
                                              live_service.mllp_port)] == ["AA"]
    live_service.drain()
    dispatcher = fast_dispatcher(live_service.engine, max_attempts=2)
    dispatch_until(dispatcher, lambda: delivery_statuses(live_service.engine)["dead"] == 1)
    base = f"{live_service.base_url}/api/v1/notifications"
    [dead] = httpx.get(f"{base}/dead-letters").json()["items"]
    assert dead["attempts"] == 2 and dead["kind"] == "critical_finding.created"
    assert "ConnectError" in dead["last_error"]
    assert httpx.post(f"{base}/dead-letters/999999/resend").status_code == 404
    receiver.start()
    try:
        assert httpx.post(f"{base}/dead-letters/{dead['id']}/resend").json()["status"] == (
            "pending")
        dispatch_until(dispatcher,
                       lambda: delivery_statuses(live_service.engine)["delivered"] == 1)
        assert receiver.wait_for(1)[0].headers[IDEMPOTENCY_HEADER] == dead["event_id"]
    finally:
        receiver.stop()
    assert httpx.get(f"{base}/dead-letters").json()["items"] == []


def test_bad_webhooks_are_refused_with_a_reason(live_service: LiveService) -> None:
    base = f"{live_service.base_url}/api/v1/notifications/webhooks"
    for body in ({"url": "ftp://example.org/hook"}, {"url": "http://127.0.0.1:9/h",
                                                      "event_kinds": ["everything"]},
                 {"url": "http://127.0.0.1:9/h", "secret": "short"}):
        response = httpx.post(base, json=body)
        assert response.status_code == 422 and response.json()["detail"], body
    assert httpx.get(base).json() == []


def test_fhir_subscriptions_are_notified_and_keep_their_status(
        live_service: LiveService, receiver: Receiver) -> None:
    client = SyncFHIRClient(f"{live_service.base_url}/fhir")
    full = client.resource("Subscription", status="requested", reason="critical results",
                           criteria="Observation?interpretation=AA", channel={
                               "type": "rest-hook", "endpoint": receiver.url,
                               "payload": "application/fhir+json",
                               "header": ["Authorization: Bearer token-1"]})
    full.save()
    ping = client.resource("Subscription", status="requested", reason="new follow-ups",
                           criteria="ServiceRequest?intent=proposal",
                           channel={"type": "rest-hook", "endpoint": receiver.url})
    ping.save()
    down = Receiver().start()
    down.stop()
    broken = client.resource("Subscription", status="requested", reason="nobody listens",
                             criteria="Observation?interpretation=AA",
                             channel={"type": "rest-hook", "endpoint": down.url})
    broken.save()
    assert full["status"] == "active" and full.id
    assert [s.ack_code for s in send_messages([critical_message(7)], "127.0.0.1",
                                              live_service.mllp_port)] == ["AA"]
    live_service.drain()
    dispatcher = fast_dispatcher(live_service.engine, max_attempts=3)
    dispatch_until(dispatcher, lambda: delivery_statuses(live_service.engine) == Counter(
        {"delivered": 2, "dead": 1}))
    requests = receiver.wait_for(2)
    put = next(r for r in requests if r.method == "PUT")
    observation = put.json()
    assert put.path == f"/hook/Observation/{observation['id']}"
    assert observation["interpretation"][0]["coding"][0]["code"] == "AA"
    assert put.headers["Authorization"] == "Bearer token-1"
    empty = next(r for r in requests if r.method == "POST")
    assert empty.body == b"" and empty.path == "/hook"
    [broken_now] = client.resources("Subscription").search(_id=broken.id).fetch()
    assert broken_now["status"] == "error" and "ConnectError" in broken_now["error"]
    assert {s.id for s in client.resources("Subscription").search(status="active").fetch()} == {
        full.id, ping.id}


def test_a_bad_subscription_is_refused_with_an_operation_outcome(
        live_service: LiveService) -> None:
    url = f"{live_service.base_url}/fhir/Subscription"
    channel = {"type": "rest-hook", "endpoint": "http://127.0.0.1:9/h"}
    for body, reason in [
        ({"resourceType": "Subscription", "status": "requested", "reason": "x",
          "criteria": "Patient?name=x", "channel": channel}, "criteria must search"),
        ({"resourceType": "Subscription", "status": "requested", "reason": "x",
          "criteria": "Observation?date=2026", "channel": channel}, "not a token"),
        ({"resourceType": "Subscription", "status": "requested", "reason": "x",
          "criteria": "Observation?code=x", "channel": {"type": "email",
                                                        "endpoint": "mailto:a@b"}},
         "rest-hook"),
        ({"resourceType": "Subscription", "status": "requested"}, "valid R4"),
    ]:
        response = httpx.post(url, json=body)
        assert response.status_code == 422, body
        assert reason in response.json()["issue"][0]["diagnostics"]
    assert httpx.post(url, content=b"{", headers={
        "Content-Type": "application/fhir+json"}).status_code == 400



def _state(dispatcher: Dispatcher) -> list[tuple[object, ...]]:
    with session_scope(dispatcher.engine) as session:
        return [(d.id, d.status, d.attempts, d.last_error)
                for d in session.exec(select(Delivery))]
