"""Service throughput: reports/s from MLLP send to stored FHIR, next to the pipeline alone.

Each report is wrapped in an ORU^R01 message and sent over one kept-open MLLP connection
(the ``hl7`` package's client) to the service's listener, which stores it in the inbox and
acknowledges; the worker analyses batches and stores reports, findings, recommendations and
FHIR resources. The clock stops when the last message is stored as FHIR. The baseline is
what ``radnlp analyze`` does: the same pipeline object over the same texts, nothing stored.

    python -m benchmarks.ingest --cmc ../shared/data/cmc2007_train.xml --n 400 \\
        --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

from hl7.client import MLLPClient
from prometheus_client import REGISTRY
from sqlalchemy import Engine, create_engine
from sqlmodel import Session, col, func, select

from benchmarks.batching import cmc_reports, format_table, synthetic_reports
from nlp_service.core.config import Settings
from nlp_service.core.logging import configure_logging
from nlp_service.intake.client import ack_code
from nlp_service.intake.hl7 import build_oru
from nlp_service.intake.mllp import BackgroundMLLPServer, MLLPServer
from nlp_service.intake.receiver import receive_message
from nlp_service.storage.db import make_engine, migrate, read_only
from nlp_service.storage.models import FhirResource, InboxMessage
from nlp_service.worker import Worker
from pipelines.pipeline import RadiologyPipeline, ReportInput


@dataclass
class Run:
    name: str
    reports: int
    seconds: float
    acked_after: float | None = None
    fhir_resources: int | None = None

    @property
    def rate(self) -> float:
        return self.reports / self.seconds


def time_pipeline(pipeline: RadiologyPipeline, texts: Sequence[str], batch_size: int) -> Run:
    """``radnlp analyze`` on the texts: the pipeline alone, nothing stored."""
    start = time.perf_counter()
    results = list(pipeline.analyze_stream(
        (ReportInput(f"R{i}", text) for i, text in enumerate(texts)), batch_size=batch_size))
    seconds = time.perf_counter() - start
    failed = sum(not hasattr(r, "findings") for r in results)
    if failed:
        raise RuntimeError(f"{failed} reports failed in the pipeline")
    return Run("radnlp analyze (pipeline alone)", len(texts), seconds)


def messages(texts: Sequence[str]) -> list[str]:
    run = uuid.uuid4().hex[:8]
    start = datetime(2026, 1, 1, 8, tzinfo=UTC)
    return [build_oru(f"B{run}{i}", f"B{run}A{i}", text, mrn=f"MRN{i % 500:06d}",
                      observed_at=start + timedelta(minutes=i),
                      procedure=("71046", "XR CHEST 2 VIEWS", "CPT4"))
            for i, text in enumerate(texts)]


def time_service(name: str, engine: Engine, pipeline: RadiologyPipeline,
                 texts: Sequence[str], settings: Settings) -> Run:
    """Send every report over MLLP and wait until the worker stored all of them."""
    migrate(engine)
    outgoing = messages(texts)
    worker = Worker(engine, pipeline, batch_size=settings.worker_batch_size,
                    lease_seconds=settings.worker_lease_seconds)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop, 0.05), daemon=True)
    pending = select(func.count()).select_from(InboxMessage).where(
        col(InboxMessage.status) != "done")
    with BackgroundMLLPServer(MLLPServer(engine, port=0)) as listener:
        thread.start()
        start = time.perf_counter()
        with MLLPClient("127.0.0.1", listener.port) as client:
            for message in outgoing:
                ack = client.send_message(message).decode()
                if ack_code(ack) != "AA":
                    raise RuntimeError(f"not accepted: {ack!r}")
        acked = time.perf_counter() - start
        reader = read_only(engine)
        while True:
            with Session(reader) as session:
                if not session.exec(pending).one():
                    break
            time.sleep(0.02)
        seconds = time.perf_counter() - start
    stop.set()
    thread.join()
    with Session(reader) as session:
        resources = session.exec(select(func.count()).select_from(FhirResource)).one()
    return Run(name, len(texts), seconds, acked, resources)


def time_steps(engine: Engine, pipeline: RadiologyPipeline, texts: Sequence[str],
               settings: Settings) -> list[tuple[str, float]]:
    """The service's steps one after another on one thread (seconds for all the reports):
    where its time goes when nothing runs beside anything else."""
    migrate(engine)
    start = time.perf_counter()
    for message in messages(texts):
        if receive_message(engine, message.encode(), source="benchmark").ack_code != "AA":
            raise RuntimeError("a message was not accepted")
    intake = time.perf_counter() - start
    phases = ("analyse", "prepare", "store")
    before = [_batch_seconds(phase) for phase in phases]
    Worker(engine, pipeline, batch_size=settings.worker_batch_size).run_until_empty()
    return [("intake: parse, inbox, ACK", intake)] + [
        (f"worker: {phase}", _batch_seconds(phase) - earlier)
        for phase, earlier in zip(phases, before, strict=True)]


def _batch_seconds(phase: str) -> float:
    return REGISTRY.get_sample_value("radnlp_worker_batch_seconds_sum", {"phase": phase}) or 0.0


@contextmanager
def postgres_schema(url: str) -> Iterator[Engine]:
    """An engine on a new, empty schema of ``url``, dropped afterwards."""
    schema = f"radnlp_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    engine = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=200, help="reports per timed run")
    parser.add_argument("--cmc", type=Path, default=None,
                        help="CMC 2007 XML to take report texts from (else synthetic reports)")
    parser.add_argument("--mode", default="full", choices=["full", "rules"])
    parser.add_argument("--postgres", default=None,
                        help="also run on this PostgreSQL URL (a temporary schema is used)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each; the fastest is shown (the machine is shared)")
    args = parser.parse_args(argv)
    settings = Settings(pipeline_mode=args.mode)
    configure_logging(settings.log_level)  # as the service runs
    texts = cmc_reports(args.cmc, args.n) if args.cmc else synthetic_reports(args.n)
    pipeline = RadiologyPipeline.load(args.mode, max_chars=settings.max_report_chars)
    pipeline.analyze("Warm-up: no pneumothorax.")
    runs = [min((time_pipeline(pipeline, texts, settings.batch_size)
                 for _ in range(args.repeat)), key=lambda run: run.seconds)]
    sqlite_runs = []
    for _ in range(args.repeat):
        with TemporaryDirectory() as folder:
            engine = make_engine(f"sqlite:///{folder}/bench.db")
            sqlite_runs.append(time_service("service, SQLite", engine, pipeline, texts,
                                            settings))
            engine.dispose()
    runs.append(min(sqlite_runs, key=lambda run: run.seconds))
    if args.postgres:
        postgres_runs = []
        for _ in range(args.repeat):
            with postgres_schema(args.postgres) as engine:
                postgres_runs.append(time_service("service, PostgreSQL", engine, pipeline,
                                                  texts, settings))
        runs.append(min(postgres_runs, key=lambda run: run.seconds))
    baseline = runs[0].rate
    rows = [[run.name, str(run.reports), f"{run.seconds:.2f}", f"{run.rate:.1f}",
             "" if run is runs[0] else f"{(baseline / run.rate - 1) * 100:+.0f}%",
             "" if run.acked_after is None else f"{run.reports / run.acked_after:.0f}",
             "" if run.fhir_resources is None else str(run.fhir_resources)] for run in runs]
    print(f"mode={args.mode} model={pipeline.model_version} reports={len(texts)} "
          f"best of {args.repeat} "
          f"worker batch={settings.worker_batch_size} pipeline batch={settings.batch_size}")
    print(format_table(["run", "reports", "seconds", "reports/s", "time overhead",
                        "ACKs/s", "FHIR resources"], rows))
    with TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{folder}/steps.db")
        steps = time_steps(engine, pipeline, texts, settings)
        engine.dispose()
    print("\nThe same reports, each step alone on one thread, SQLite:")
    print(format_table(["step", "seconds", "ms/report"],
                       [[name, f"{seconds:.3f}", f"{seconds / len(texts) * 1000:.2f}"]
                        for name, seconds in steps]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
