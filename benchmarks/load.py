"""Steady MLLP load on a running service: ACK latency, throughput and memory over time.

Starts ``radnlp serve`` (its own SQLite file unless ``--database`` is given), sends ORU^R01
messages on one kept-open MLLP connection at ``--rate`` messages/s for ``--seconds``, and
prints per interval the ACK latency p50/p99, messages acknowledged, messages stored by the
worker and the service's resident memory:

    python -m benchmarks.load --rate 20 --seconds 300 --mode full
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import Session, col, func, select

from benchmarks.batching import cmc_reports, format_table, synthetic_reports
from nlp_service.intake.client import ack_code
from nlp_service.intake.hl7 import build_oru
from nlp_service.intake.mllp import END_BLOCK, START_BLOCK
from nlp_service.storage.db import make_engine, read_only
from nlp_service.storage.models import InboxMessage

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mib(pid: int) -> float:
    """Resident memory of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second")
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--interval", type=float, default=30.0, help="seconds per table row")
    parser.add_argument("--mode", default="rules", choices=["full", "rules"])
    parser.add_argument("--cmc", type=Path, default=None, help="report texts from this CMC XML")
    parser.add_argument("--database", default=None, help="SQLAlchemy URL (default: temp file)")
    args = parser.parse_args(argv)
    texts = cmc_reports(args.cmc, 500) if args.cmc else synthetic_reports(500)
    folder = tempfile.mkdtemp(prefix="radnlp-load-")
    database = args.database or f"sqlite:///{folder}/load.db"
    mllp, http = _free_port(), _free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RADNLP_DATABASE_URL": database,
           "RADNLP_PIPELINE_MODE": args.mode, "RADNLP_MLLP_PORT": str(mllp),
           "RADNLP_HTTP_PORT": str(http), "RADNLP_LOG_LEVEL": "WARNING"}
    service = subprocess.Popen([sys.executable, "-m", "nlp_service.cli", "serve"], cwd=ROOT,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    engine = read_only(make_engine(database))
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", mllp), timeout=60)
                break
            except OSError:
                if time.monotonic() > deadline or service.poll() is not None:
                    raise RuntimeError("the service did not start") from None
                time.sleep(0.2)
        rows, latencies, refused, sent = [], [], 0, 0
        start = time.monotonic()
        next_row = start + args.interval
        observed = datetime(2026, 1, 1, tzinfo=UTC)
        with sock:
            while (now := time.monotonic()) - start < args.seconds:
                due = start + sent / args.rate
                if now < due:
                    time.sleep(due - now)
                message = build_oru(f"L{sent}", f"LA{sent}", texts[sent % len(texts)],
                                    mrn=f"MRN{sent % 1000}",
                                    observed_at=observed + timedelta(minutes=sent))
                began = time.perf_counter()
                sock.sendall(START_BLOCK + message.encode() + END_BLOCK)
                data = b""
                while not data.endswith(END_BLOCK):
                    data += sock.recv(65536)
                latencies.append((time.perf_counter() - began) * 1000)
                refused += ack_code(data[1:-2].decode()) != "AA"
                sent += 1
                if time.monotonic() >= next_row:
                    rows.append(_row(start, latencies, sent, refused, engine, service.pid))
                    latencies = []
                    next_row += args.interval
        if latencies:
            rows.append(_row(start, latencies, sent, refused, engine, service.pid))
    finally:
        service.terminate()
        service.wait(timeout=60)
        engine.dispose()
    print(f"rate {args.rate:g}/s for {args.seconds:g} s, mode {args.mode}, {database}")
    print(format_table(["t (s)", "sent", "not AA", "ACK p50 ms", "ACK p99 ms", "stored",
                        "waiting", "RSS MiB"], rows))
    return 0


def _row(start: float, latencies: list[float], sent: int, refused: int, engine: object,
         pid: int) -> list[str]:
    with Session(engine) as session:  # type: ignore[arg-type]
        done = session.exec(select(func.count()).select_from(InboxMessage).where(
            InboxMessage.status == "done")).one()
        waiting = session.exec(select(func.count()).select_from(InboxMessage).where(
            col(InboxMessage.status).in_(["pending", "processing"]))).one()
    return [f"{time.monotonic() - start:.0f}", str(sent), str(refused),
            f"{statistics.median(latencies):.1f}", f"{percentile(latencies, 0.99):.1f}",
            str(done), str(waiting), f"{rss_mib(pid):.0f}"]


if __name__ == "__main__":
    raise SystemExit(main())
