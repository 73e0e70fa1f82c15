"""Notification latency and recovery: from the MLLP ACK of a report with a critical finding to
its webhook's receipt, and the time to drain after a receiver outage.

Starts ``radnlp serve`` (its own SQLite file unless ``--database`` is given) with a webhook on
a receiver this script runs on 127.0.0.1, then:

1. sends ``--messages`` critical reports at ``--rate`` messages/s over one MLLP connection and
   prints the ACK-to-receipt latency p50/p99/max (nearest rank);
2. stops the receiver for ``--outage`` seconds while sending at the same rate, starts it again
   and prints how long the backlog took to drain after it came back (every event received).

    python -m benchmarks.notify --rate 10 --messages 300 --outage 60 --mode rules
    python -m benchmarks.notify --messages 50 --outage 5        # a quick run

The dispatcher's retry delays are the service's (``RADNLP_NOTIFY_BACKOFF_*``): after an
outage, the drain time includes the last backoff a delivery was waiting out.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hl7.client import MLLPClient

from benchmarks.receiver import Receiver
from nlp_service.intake.client import ack_code
from nlp_service.intake.hl7 import build_oru
from nlp_service.notify.dispatcher import IDEMPOTENCY_HEADER

ROOT = Path(__file__).resolve().parent.parent
TEXT = ("IMPRESSION: Large right tension pneumothorax with mediastinal shift. Findings "
        "discussed with the ordering physician by telephone at 10:05.")
EXAM = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(fraction * len(ordered)), 1) - 1]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 180) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the service exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing listens on {port}")


class Sender:
    """Sends critical reports at a steady rate; records each accession's ACK time."""

    def __init__(self, port: int) -> None:
        self.client = MLLPClient("127.0.0.1", port)
        self.acked: dict[str, float] = {}
        self.number = 0

    def send(self, count: int, rate: float) -> None:
        start = time.monotonic()
        for i in range(count):
            self.number += 1
            accession = f"NB-{self.number}"
            message = build_oru(f"NB{self.number}", accession, TEXT, mrn=f"MRN-NB{self.number}",
                                observed_at=EXAM + timedelta(minutes=self.number),
                                procedure=("71250", "CT CHEST WITHOUT CONTRAST", "CPT4"))
            ack = self.client.send_message(message)
            text = ack.decode("utf-8", "replace") if isinstance(ack, bytes) else str(ack)
            if ack_code(text) == "AA":
                self.acked[accession] = time.monotonic()
            delay = start + (i + 1) / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)


def _receipts(receiver: Receiver) -> dict[str, float]:
    """Accession -> first receipt time."""
    first: dict[str, float] = {}
    for request in list(receiver.requests):
        first.setdefault(json.loads(request.body)["accession"], request.at)
    return first


def _wait_all(receiver: Receiver, accessions: set[str], timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if accessions <= set(_receipts(receiver)):
            return time.monotonic()
        time.sleep(0.05)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=10.0, help="messages per second")
    parser.add_argument("--messages", type=int, default=300, help="messages for the latency")
    parser.add_argument("--outage", type=float, default=60.0, help="receiver outage, seconds")
    parser.add_argument("--mode", default="rules", help="pipeline mode of the service")
    parser.add_argument("--database", default=None, help="SQLAlchemy URL (default: a temp "
                                                         "SQLite file)")
    parser.add_argument("--drain-timeout", type=float, default=900.0)
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.messages < 1 or args.outage < 0:
        parser.error("--rate must be > 0, --messages >= 1 and --outage >= 0")
    workdir = tempfile.mkdtemp(prefix="radnlp-notify-")
    database = args.database or f"sqlite:///{workdir}/notify.db"
    receiver = Receiver().start()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RADNLP_DATABASE_URL": database,
           "RADNLP_PIPELINE_MODE": args.mode, "RADNLP_LOG_LEVEL": "WARNING",
           "RADNLP_AUTH_REQUIRED": "false"}
    subprocess.run([sys.executable, "-m", "nlp_service.cli", "notify", "webhook-add",
                    receiver.url, "--kind", "critical_finding.created"], cwd=ROOT, env=env,
                   check=True, capture_output=True)
    mllp_port, http_port = _free_port(), _free_port()
    env.update(RADNLP_MLLP_PORT=str(mllp_port), RADNLP_HTTP_PORT=str(http_port))
    service = subprocess.Popen([sys.executable, "-m", "nlp_service.cli", "serve"], cwd=ROOT,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(mllp_port, service)
        sender = Sender(mllp_port)
        # 1. Latency at a steady rate.
        sender.send(args.messages, args.rate)
        steady = set(sender.acked)
        if _wait_all(receiver, steady, args.drain_timeout) is None:
            print("latency: not every notification arrived", file=sys.stderr)
            return 1
        receipts = _receipts(receiver)
        latencies = [(receipts[a] - sender.acked[a]) * 1000 for a in steady]
        print(f"ack_to_webhook_ms messages={len(latencies)} rate={args.rate:g}/s "
              f"p50={percentile(latencies, 0.5):.0f} p99={percentile(latencies, 0.99):.0f} "
              f"max={max(latencies):.0f}")
        # 2. An outage: the receiver is down while messages keep arriving.
        receiver.stop()
        during = threading.Thread(target=sender.send,
                                  args=(max(int(args.outage * args.rate), 1), args.rate))
        during.start()
        time.sleep(args.outage)
        during.join()
        back = time.monotonic()
        receiver.start()
        everything = set(sender.acked)
        drained = _wait_all(receiver, everything, args.drain_timeout)
        if drained is None:
            print("drain: not every notification arrived", file=sys.stderr)
            return 1
        keys = [r.headers[IDEMPOTENCY_HEADER] for r in receiver.requests]
        print(f"outage_drain outage_s={args.outage:g} backlog={len(everything - steady)} "
              f"drain_s={drained - back:.1f} received={len(keys)} distinct={len(set(keys))} "
              f"lost={len(everything - set(_receipts(receiver)))}")
        sender.client.close()
    finally:
        service.terminate()
        service.wait(60)
        receiver.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
