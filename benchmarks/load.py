"""Steady MLLP load on a running service: ACK latency, throughput and memory over time.

Starts ``radnlp serve`` (its own SQLite file unless ``--database`` is given), sends ORU^R01
messages on one kept-open MLLP connection at ``--rate`` messages/s for ``--seconds`` (each
waits for the ACK of the one before, so slow ACKs lower the rate achieved), and prints per
interval the ACK latency p50/p99/max, messages acknowledged, messages stored by the worker,
the backlog, the worker's mean store time per batch and the service's resident memory; then
waits up to ``--drain`` seconds for the backlog to clear, and prints a summary line:

    python -m benchmarks.load --rate 10 --seconds 660 --interval 60 --mode rules
    python -m benchmarks.load --rate 10 --seconds 330 --interval 30 \\
        --database postgresql+psycopg://postgres@127.0.0.1:5432/loadbench

A PostgreSQL database should be empty (control ids repeat from one run to the next).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from benchmarks.batching import cmc_reports, format_table, synthetic_reports
from nlp_service.intake.client import ack_code
from nlp_service.intake.hl7 import build_oru
from nlp_service.intake.mllp import END_BLOCK, START_BLOCK
from nlp_service.storage.db import make_engine, read_only
from nlp_service.storage.models import InboxMessage

ROOT = Path(__file__).resolve().parents[1]
HEADER = ["t (s)", "sent", "not AA", "ACK p50 ms", "ACK p99 ms", "ACK max ms", "stored",
          "stored/s", "waiting", "store ms/batch", "RSS MiB"]
_STORE_METRIC = re.compile(
    r'^radnlp_worker_batch_seconds_(sum|count)\{phase="store"\} (\S+)$', re.MULTILINE)


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


def store_seconds(http_port: int) -> tuple[float, float] | None:
    """(total seconds, batches) the worker spent storing, from the service's /metrics."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=10) as r:
            text = r.read().decode()
    except OSError:
        return None
    found = dict(_STORE_METRIC.findall(text))
    return (float(found["sum"]), float(found["count"])) if len(found) == 2 else None


def queue_counts(engine: Engine) -> tuple[int, int]:
    """(messages stored by the worker, messages waiting for it)."""
    with Session(engine) as session:
        done = session.exec(select(func.count()).select_from(InboxMessage).where(
            InboxMessage.status == "done")).one()
        waiting = session.exec(select(func.count()).select_from(InboxMessage).where(
            col(InboxMessage.status).in_(["pending", "processing"]))).one()
    return done, waiting


@dataclass
class _Run:
    """What the run measured so far."""

    start: float
    http_port: int
    pid: int
    engine: Engine
    rows: list[list[str]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # of the whole run, ms
    rss: list[float] = field(default_factory=list)
    sent: int = 0
    refused: int = 0
    _since: int = 0  # index in latencies where the interval began
    _last: tuple[float, int] | None = None  # (time, stored) at the previous row
    _store: tuple[float, float] = (0.0, 0.0)  # the worker's store seconds and batches

    def __post_init__(self) -> None:
        self._last = (self.start, 0)
        self.rss.append(rss_mib(self.pid))

    @property
    def interval_open(self) -> bool:
        """Whether messages were sent since the last row."""
        return len(self.latencies) > self._since

    def row(self) -> list[str]:
        """Close the interval: one table row (also written to stderr as progress)."""
        now = time.monotonic()
        interval = self.latencies[self._since:] or [0.0]
        self._since = len(self.latencies)
        done, waiting = queue_counts(self.engine)
        assert self._last is not None
        rate = (done - self._last[1]) / max(now - self._last[0], 1e-9)
        self._last = (now, done)
        store, batch_ms = store_seconds(self.http_port), "-"
        if store is not None and store[1] > self._store[1]:
            batch_ms = f"{1000 * (store[0] - self._store[0]) / (store[1] - self._store[1]):.0f}"
        self._store = store or self._store
        self.rss.append(rss_mib(self.pid))
        row = [f"{now - self.start:.0f}", str(self.sent), str(self.refused),
               f"{statistics.median(interval):.1f}", f"{percentile(interval, 0.99):.1f}",
               f"{max(interval):.1f}", str(done), f"{rate:.1f}", str(waiting), batch_ms,
               f"{self.rss[-1]:.0f}"]
        self.rows.append(row)
        print("  ".join(f"{h}={v}" for h, v in zip(HEADER, row, strict=True)),
              file=sys.stderr, flush=True)
        return row


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second")
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--interval", type=float, default=30.0, help="seconds per table row")
    parser.add_argument("--mode", default="rules", choices=["full", "rules"])
    parser.add_argument("--cmc", type=Path, default=None, help="report texts from this CMC XML")
    parser.add_argument("--database", default=None, help="SQLAlchemy URL (default: temp file)")
    parser.add_argument("--drain", type=float, default=30.0,
                        help="seconds to wait after sending for the backlog to clear")
    args = parser.parse_args(argv)
    texts = cmc_reports(args.cmc, 500) if args.cmc else synthetic_reports(500)
    folder = tempfile.mkdtemp(prefix="radnlp-load-")
    database = args.database or f"sqlite:///{folder}/load.db"
    mllp, http = _free_port(), _free_port()
    # No API keys: the benchmark reads the worker's timings from /metrics.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RADNLP_DATABASE_URL": database,
           "RADNLP_PIPELINE_MODE": args.mode, "RADNLP_MLLP_PORT": str(mllp),
           "RADNLP_HTTP_PORT": str(http), "RADNLP_LOG_LEVEL": "WARNING",
           "RADNLP_AUTH_REQUIRED": "false"}
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
        run = _Run(time.monotonic(), http, service.pid, engine)
        next_row = run.start + args.interval
        observed = datetime(2026, 1, 1, tzinfo=UTC)
        with sock:
            while (now := time.monotonic()) - run.start < args.seconds:
                due = run.start + run.sent / args.rate
                if now < due:
                    time.sleep(due - now)
                sent = run.sent
                message = build_oru(f"L{sent}", f"LA{sent}", texts[sent % len(texts)],
                                    mrn=f"MRN{sent % 1000}",
                                    observed_at=observed + timedelta(minutes=sent))
                began = time.perf_counter()
                sock.sendall(START_BLOCK + message.encode() + END_BLOCK)
                data = b""
                while not data.endswith(END_BLOCK):
                    data += sock.recv(65536)
                run.latencies.append((time.perf_counter() - began) * 1000)
                run.refused += ack_code(data[1:-2].decode()) != "AA"
                run.sent += 1
                if time.monotonic() >= next_row:
                    run.row()
                    next_row += args.interval
        if run.interval_open:
            run.row()
        sending = time.monotonic() - run.start
        backlog = queue_counts(engine)[1]
        drained = _drain(engine, args.drain) if backlog else None
        run.rss.append(rss_mib(service.pid))
    finally:
        service.terminate()
        service.wait(timeout=60)
        engine.dispose()
    print(f"rate {args.rate:g}/s for {args.seconds:g} s, mode {args.mode}, {database}")
    print(format_table(HEADER, run.rows))
    latencies = run.latencies or [0.0]
    stored = int(run.rows[-1][HEADER.index("stored")]) if run.rows else 0
    after = ("" if not backlog else f" (drained in {drained:.1f} s)" if drained is not None
             else f" (not drained in {args.drain:g} s)")
    print(f"summary: sent {run.sent} ({run.sent / sending:.2f}/s), not AA {run.refused}, "
          f"ACK p50 {statistics.median(latencies):.1f} ms p99 "
          f"{percentile(latencies, 0.99):.1f} ms max {max(latencies):.1f} ms, stored "
          f"{stored} ({stored / sending:.2f}/s), backlog at end {backlog}{after}, "
          f"RSS MiB first {run.rss[0]:.0f} last {run.rss[-1]:.0f} max {max(run.rss):.0f}")
    return 0


def _drain(engine: Engine, seconds: float) -> float | None:
    """Seconds until nothing waits for the worker (None: still waiting after ``seconds``)."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if queue_counts(engine)[1] == 0:
            return time.monotonic() - start
        time.sleep(0.5)
    return None


if __name__ == "__main__":
    raise SystemExit(main())
