"""Throughput by worker process count: N queued messages, 1, 2, ... worker processes.

The inbox is filled first (intake is not timed); the clock starts when the first message is
claimed (process start and model loading are left out) and stops when the last is stored with
its FHIR resources. On PostgreSQL the processes claim with ``FOR UPDATE SKIP LOCKED``; on SQLite
there is one writer, so more processes only queue behind it.

    python -m benchmarks.workers --cmc ../shared/data/cmc2007_train.xml --n 1000 \\
        --processes 1,2,3 --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory

from sqlalchemy import Engine, create_engine
from sqlmodel import Session, col, func, select

from benchmarks.batching import cmc_reports, format_table, synthetic_reports
from benchmarks.ingest import messages
from nlp_service.core.config import Settings
from nlp_service.intake.receiver import receive_message
from nlp_service.storage.db import make_engine, migrate
from nlp_service.storage.models import InboxMessage
from nlp_service.worker_pool import WorkerProcesses


@contextmanager
def database(postgres: str | None) -> Iterator[str]:
    """A URL of a new, empty database another process can open (dropped afterwards)."""
    if postgres is None:
        with TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'bench.db'}"
        return
    schema = f"radnlp_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{postgres}{'&' if '?' in postgres else '?'}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def inbox_statuses(engine: Engine) -> dict[str, int]:
    """Inbox messages by status."""
    with Session(engine) as session:
        return dict(session.exec(select(InboxMessage.status, func.count())
                                 .group_by(col(InboxMessage.status))).all())


def time_processes(url: str, texts: Sequence[str], processes: int, mode: str,
                   batch_size: int) -> float:
    """Seconds from the first claim to the last stored report."""
    engine = make_engine(url)
    migrate(engine)
    for message in messages(texts):
        receive_message(engine, message.encode(), source="benchmark")
    settings = Settings(database_url=url, pipeline_mode=mode, worker_batch_size=batch_size,
                        worker_poll_seconds=0.05, log_level="WARNING")
    pool = WorkerProcesses(settings, processes)
    stop = threading.Event()
    pool.start()
    supervisor = threading.Thread(target=pool.supervise, args=(stop, 0.5), daemon=True)
    supervisor.start()
    try:
        while inbox_statuses(engine).get("queued", 0) == len(texts):
            time.sleep(0.01)
        started = time.perf_counter()
        while inbox_statuses(engine).get("done", 0) < len(texts):
            time.sleep(0.05)
        return time.perf_counter() - started
    finally:
        stop.set()
        supervisor.join()
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cmc", type=Path, help="CMC 2007 XML (default: synthetic reports)")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--mode", choices=("rules", "full"), default="rules")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--postgres", help="PostgreSQL URL (default: SQLite only)")
    args = parser.parse_args(argv)
    texts = cmc_reports(args.cmc, args.n) if args.cmc else synthetic_reports(args.n)
    counts = [int(p) for p in args.processes.split(",")]
    rows = []
    for backend, url in (("sqlite", None), ("postgresql", args.postgres)):
        if backend == "postgresql" and url is None:
            continue
        base = None
        for count in counts:
            with database(url) as target:
                seconds = time_processes(target, texts, count, args.mode, args.batch_size)
            rate = len(texts) / seconds
            base = base or rate
            rows.append([backend, str(count), str(len(texts)), f"{seconds:.1f}",
                         f"{rate:.1f}", f"{rate / base:.2f}x"])
    print(f"worker processes, {args.mode} mode, batch {args.batch_size}")
    print(format_table(["database", "processes", "reports", "seconds", "reports/s",
                        "vs 1"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
