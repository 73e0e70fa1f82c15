"""`radnlp serve` SIGKILLed while it dispatches loses no notification: after a restart every
event reaches the (slow) receiver, duplicates only with the same idempotency key."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import Session, select

from benchmarks.receiver import Receiver
from nlp_service.intake.client import send_messages
from nlp_service.notify.dispatcher import IDEMPOTENCY_HEADER
from nlp_service.storage.db import make_engine
from nlp_service.storage.models import OutboxEvent
from tests.nlp_service.notify.test_delivery import critical_message
from tests.nlp_service.test_faults import ROOT, start, wait_for_port
from tests.nlp_service.test_service_cli import free_port

COUNT = 20
FAST_RETRIES = {"RADNLP_NOTIFY_LEASE_SECONDS": "2", "RADNLP_NOTIFY_BACKOFF_BASE_SECONDS": "0.1",
                "RADNLP_NOTIFY_BACKOFF_CAP_SECONDS": "0.5", "RADNLP_AUTH_REQUIRED": "false"}


@pytest.mark.slow
def test_serve_killed_mid_dispatch_loses_no_notification(tmp_path: Path, figures) -> None:
    database = f"sqlite:///{tmp_path / 'kill.db'}"
    receiver = Receiver(delay_seconds=0.3).start()  # slow: sends are in flight when killed
    env = {**os.environ, "RADNLP_DATABASE_URL": database}
    added = subprocess.run([sys.executable, "-m", "nlp_service.cli", "notify", "webhook-add",
                            receiver.url, "--kind", "critical_finding.created"], cwd=ROOT,
                           env=env, capture_output=True, text=True, check=True)
    assert json.loads(added.stdout)["secret"]
    mllp_port, http_port = free_port(), free_port()
    service = start("serve", database, mllp_port, http_port, **FAST_RETRIES)
    try:
        wait_for_port(mllp_port, service)
        sent = list(send_messages([critical_message(n, patient=n) for n in range(COUNT)],
                                  "127.0.0.1", mllp_port))
        assert {s.ack_code for s in sent} == {"AA"}
        receiver.wait_for(3, timeout=120)
        service.send_signal(signal.SIGKILL)
        service.wait(30)
        at_kill = len(receiver.requests)
        service = start("serve", database, mllp_port, http_port, **FAST_RETRIES)
        deadline = time.monotonic() + 120
        while len({r.headers[IDEMPOTENCY_HEADER] for r in receiver.requests}) < COUNT:
            assert service.poll() is None, "the restarted service exited"
            assert time.monotonic() < deadline, f"{len(receiver.requests)} arrived"
            time.sleep(0.2)
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(60)
        receiver.stop()
    engine = make_engine(database)
    with Session(engine) as session:
        events = set(session.exec(select(OutboxEvent.event_id).where(
            OutboxEvent.kind == "critical_finding.created")))
    engine.dispose()
    keys = [r.headers[IDEMPOTENCY_HEADER] for r in receiver.requests]
    assert len(events) == COUNT and set(keys) == events
    bodies: dict[str, set[bytes]] = {}
    for request in receiver.requests:
        bodies.setdefault(request.headers[IDEMPOTENCY_HEADER], set()).add(request.body)
    assert all(len(b) == 1 for b in bodies.values())
    figures(f"{COUNT} critical findings over MLLP, SIGKILL after {at_kill} webhook receipts: "
            f"{len(keys)} received, {len(keys) - COUNT} duplicates (same key), 0 lost")
