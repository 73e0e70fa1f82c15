"""Worker processes under one supervisor: several claim from one inbox, one SIGKILLed mid-run is
restarted, and every message ends as exactly one stored report with its FHIR resources."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session, col, func, select

from benchmarks.workers import database as schema_database
from benchmarks.workers import inbox_statuses
from nlp_service.core.config import Settings
from nlp_service.intake.receiver import receive_message
from nlp_service.storage.db import make_engine, migrate
from nlp_service.storage.models import FhirResource, Report
from nlp_service.worker_pool import WorkerProcesses
from tests.conftest import POSTGRES_URL
from tests.nlp_service.test_faults import messages

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=[
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_URL, reason="RADNLP_TEST_POSTGRES_URL is not set")])])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL another process can open: a SQLite file, or a PostgreSQL schema named in it."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'radnlp.db'}"
        return
    assert POSTGRES_URL is not None
    with schema_database(POSTGRES_URL) as url:
        yield url


def test_worker_processes_store_every_report_once_through_a_kill(database: str) -> None:
    postgres = database.startswith("postgresql")
    # Three processes on PostgreSQL as the issue asks; on SQLite (one writer) two suffice.
    count, queued = (3, 5000) if postgres else (2, 300)
    engine = make_engine(database)
    migrate(engine)
    for _, message in messages(queued, "P"):
        assert receive_message(engine, message.encode(), source="test").ack_code == "AA"
    settings = Settings(database_url=database, pipeline_mode="rules", worker_batch_size=25,
                        worker_lease_seconds=3, worker_poll_seconds=0.2, log_level="WARNING")
    pool = WorkerProcesses(settings, count)
    stop = threading.Event()
    pool.start()
    supervisor = threading.Thread(target=pool.supervise, args=(stop, 0.2), daemon=True)
    supervisor.start()
    try:
        deadline = time.monotonic() + 600
        while not (inbox_statuses(engine).get("done", 0) >= queued // 10):
            assert time.monotonic() < deadline, inbox_statuses(engine)
            time.sleep(0.2)
        victim = pool.pids[0]
        os.kill(victim, signal.SIGKILL)  # mid-run: it holds a claimed batch
        while inbox_statuses(engine) != {"done": queued}:
            assert time.monotonic() < deadline, inbox_statuses(engine)
            time.sleep(0.5)
    finally:
        stop.set()
        supervisor.join(timeout=120)
    assert pool.restarts >= 1 and victim not in pool.pids
    with Session(engine) as session:
        accessions = session.exec(select(Report.accession)).all()
        duplicated = session.exec(
            select(FhirResource.resource_type, FhirResource.resource_id,
                   FhirResource.version_id, func.count())
            .group_by(col(FhirResource.resource_type), col(FhirResource.resource_id),
                      col(FhirResource.version_id))
            .having(func.count() > 1)).all()
        reports = session.exec(select(func.count()).select_from(FhirResource).where(
            FhirResource.resource_type == "DiagnosticReport")).one()
    engine.dispose()
    assert len(accessions) == len(set(accessions)) == queued  # one version each, none twice
    assert duplicated == []
    assert reports == queued  # one DiagnosticReport version per report


def test_a_pool_needs_at_least_one_process() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        WorkerProcesses(Settings(database_url="sqlite:///unused.db"), 0)


def _children(pid: int) -> dict[int, str]:
    """Command lines of the processes whose parent is ``pid``, by pid."""
    found = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines()
                          if ":\t" in line)
            if int(fields.get("PPid", "0")) == pid:
                found[int(status.parent.name)] = (status.parent / "cmdline").read_text(
                    ).replace("\0", " ")
        except (OSError, ValueError):
            continue
    return found


def test_serve_runs_its_workers_in_processes_of_their_own(tmp_path: Path) -> None:
    from tests.nlp_service.test_faults import send_all, start, wait_for_port
    from tests.nlp_service.test_service_cli import free_port

    url = f"sqlite:///{tmp_path / 'radnlp.db'}"
    mllp, http = free_port(), free_port()
    service = start("serve", url, mllp, http, RADNLP_WORKER_PROCESSES="2",
                    RADNLP_AUTH_REQUIRED="false")
    try:
        wait_for_port(mllp, service)
        acked: dict[str, str] = {}
        send_all(mllp, messages(20, "SP"), acked)
        assert set(acked.values()) == {"AA"} and len(acked) == 20
        engine = make_engine(url)
        deadline = time.monotonic() + 180
        while inbox_statuses(engine) != {"done": 20}:
            assert time.monotonic() < deadline, inbox_statuses(engine)
            time.sleep(0.2)
        engine.dispose()
        workers = [pid for pid, line in _children(service.pid).items() if "spawn_main" in line
                   and "resource_tracker" not in line]
        assert len(workers) == 2, _children(service.pid)
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=120)
    # SIGTERM stops the workers with the service: none is left running on its own.
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]
