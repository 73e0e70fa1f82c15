"""Faults: the service killed with SIGKILL while 2,000 messages arrive over MLLP, a worker
killed mid-batch, and the database going away under the listener. Nothing that got AA may be
lost or stored twice, and everything else can be sent again safely."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hl7
import pytest
from sqlmodel import Session, col, func, select

from nlp_service.intake.client import ack_code
from nlp_service.intake.hl7 import build_oru
from nlp_service.intake.mllp import END_BLOCK, START_BLOCK, BackgroundMLLPServer, MLLPServer
from nlp_service.storage.db import make_engine, migrate
from nlp_service.storage.models import InboxMessage, Report
from tests.conftest import POSTGRES_URL
from tests.nlp_service.test_service_cli import free_port

ROOT = Path(__file__).resolve().parents[2]
TEXT = "FINDINGS: 5 mm nodule in the right upper lobe. No pleural effusion."



def messages(count: int, prefix: str) -> list[tuple[str, str]]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [(f"{prefix}{i}", build_oru(f"{prefix}{i}", f"{prefix}A{i}", TEXT,
                                       mrn=f"MRN{i % 97}", observed_at=start + timedelta(i)))
            for i in range(count)]


def start(command: str, database: str, mllp_port: int, http_port: int,
          **extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RADNLP_DATABASE_URL": database,
           "RADNLP_PIPELINE_MODE": "rules", "RADNLP_MLLP_PORT": str(mllp_port),
           "RADNLP_HTTP_PORT": str(http_port), "RADNLP_LOG_LEVEL": "WARNING", **extra}
    return subprocess.Popen([sys.executable, "-m", "nlp_service.cli", command], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the service exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listens on {port}")


def send_all(port: int, outgoing: list[tuple[str, str]], acked: dict[str, str]) -> None:
    """Send on one connection until it breaks; ``acked`` gets each control id's ACK code."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            for control_id, message in outgoing:
                sock.sendall(START_BLOCK + message.encode() + END_BLOCK)
                data = b""
                while not data.endswith(END_BLOCK):
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                acked[control_id] = ack_code(data[1:-2].decode())
    except OSError:
        return


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'faults.db'}"


def _stored(database: str) -> tuple[list[str], int]:
    engine = make_engine(database)
    with Session(engine) as session:
        ids = list(session.exec(select(InboxMessage.control_id)).all())
        reports = session.exec(select(func.count()).select_from(Report)).one()
    engine.dispose()
    return ids, reports


def test_sigkill_while_receiving_loses_nothing_that_got_aa(
        database: str, figures: Callable[[str], None]) -> None:
    outgoing = messages(2000, "K")
    mllp, http = free_port(), free_port()
    service = start("serve", database, mllp, http)
    wait_for_port(mllp, service)
    acked: dict[str, str] = {}
    sender = threading.Thread(target=send_all, args=(mllp, outgoing, acked))
    sender.start()
    while len(acked) < 700 and sender.is_alive():
        time.sleep(0.01)
    service.send_signal(signal.SIGKILL)
    service.wait(timeout=30)
    sender.join(timeout=60)
    killed_at = len(acked)
    got_aa = {cid for cid, code in acked.items() if code == "AA"}
    assert 700 <= killed_at < 2000, killed_at

    stored_after_kill, _ = _stored(database)
    assert got_aa <= set(stored_after_kill)  # every AA was committed before it was sent

    restarted = start("serve", database, mllp, http)
    try:
        wait_for_port(mllp, restarted)
        resend = [m for m in outgoing if m[0] not in got_aa]
        again: dict[str, str] = {}
        send_all(mllp, resend, again)
        assert set(again.values()) == {"AA"} and len(again) == len(resend)
        deadline = time.monotonic() + 300
        while True:
            engine = make_engine(database)
            with Session(engine) as session:
                waiting = session.exec(select(func.count()).select_from(InboxMessage).where(
                    col(InboxMessage.status) != "done")).one()
            engine.dispose()
            if not waiting:
                break
            assert time.monotonic() < deadline, f"{waiting} messages not processed"
            time.sleep(0.5)
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=60)
    stored, reports = _stored(database)
    assert sorted(stored) == sorted(cid for cid, _ in outgoing)  # each exactly once
    assert reports == 2000
    figures(f"sent 2000 over MLLP, SIGKILL after {killed_at} ACKs ({len(got_aa)} AA); "
            f"restarted, resent the {len(resend)} without AA: {len(stored)} stored once each, "
            f"{reports} analysed, lost {2000 - len(stored)}")


def test_worker_killed_mid_batch_loses_nothing(database: str,
                                               figures: Callable[[str], None]) -> None:
    engine = make_engine(database)
    migrate(engine)
    from nlp_service.intake.receiver import receive_message

    for _, message in messages(300, "W"):
        assert receive_message(engine, message.encode(), source="test").ack_code == "AA"
    mllp, http = free_port(), free_port()
    worker = start("worker", database, mllp, http, RADNLP_WORKER_LEASE_SECONDS="2",
                   RADNLP_WORKER_BATCH_SIZE="16")
    deadline = time.monotonic() + 120
    while True:  # kill it once it has stored a first batch and claimed the next
        with Session(engine) as session:
            at_kill = dict(session.exec(select(InboxMessage.status, func.count())
                                       .group_by(col(InboxMessage.status))).all())
        if at_kill.get("done") and at_kill.get("processing"):
            break
        assert time.monotonic() < deadline and worker.poll() is None
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    with Session(engine) as session:
        unfinished = session.exec(select(func.count()).select_from(InboxMessage).where(
            col(InboxMessage.status) != "done")).one()
    assert unfinished > 0, "the worker finished before it was killed"
    result = subprocess.run([sys.executable, "-m", "nlp_service.cli", "worker", "--once"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "RADNLP_DATABASE_URL": database,
                                 "RADNLP_PIPELINE_MODE": "rules", "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    time.sleep(2.5)  # the dead worker's lease runs out
    result = subprocess.run([sys.executable, "-m", "nlp_service.cli", "worker", "--once"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "RADNLP_DATABASE_URL": database,
                                 "RADNLP_PIPELINE_MODE": "rules", "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    with Session(engine) as session:
        states = session.exec(select(InboxMessage.status, func.count())
                              .group_by(col(InboxMessage.status))).all()
        accessions = session.exec(select(Report.accession)).all()
    engine.dispose()
    assert dict(states) == {"done": 300}
    assert len(accessions) == len(set(accessions)) == 300  # one version each, none twice
    figures(f"300 queued, worker SIGKILLed mid-batch ({at_kill.get('done')} done, "
            f"{at_kill.get('processing')} claimed, {unfinished} unfinished); after the lease: "
            f"{len(accessions)} reports, each stored once, lost {300 - len(accessions)}")


class Proxy:
    """A TCP proxy in front of PostgreSQL whose link can be cut and restored."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self.links: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.close()
                continue
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            self.links += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.close()

    def cut(self) -> None:
        self.up.clear()
        for link in self.links:
            with contextlib.suppress(OSError):
                link.shutdown(socket.SHUT_RDWR)
        self.links = []

    def restore(self) -> None:
        self.up.set()


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="needs RADNLP_TEST_POSTGRES_URL")
def test_database_going_away_answers_ae_and_the_listener_recovers(
        database_url: tuple[str, dict], figures: Callable[[str], None]) -> None:
    url, kwargs = database_url
    if not url.startswith("postgresql"):
        pytest.skip("the proxy stands in front of PostgreSQL")
    from sqlalchemy.engine import make_url

    target = make_url(url)
    proxy = Proxy((target.host or "127.0.0.1", target.port or 5432))
    proxied = target.set(host="127.0.0.1", port=proxy.port).render_as_string(
        hide_password=False)
    engine = make_engine(proxied, connect_args={**kwargs.get("connect_args", {}),
                                                "connect_timeout": 3})
    migrate(engine)
    outgoing = messages(3, "DB")
    with BackgroundMLLPServer(MLLPServer(engine, port=0)) as listener:
        def send(message: str) -> str:
            with socket.create_connection(("127.0.0.1", listener.port), timeout=60) as sock:
                sock.sendall(START_BLOCK + message.encode() + END_BLOCK)
                data = b""
                while not data.endswith(END_BLOCK):
                    data += sock.recv(65536)
            return str(hl7.parse(data[1:-2].decode()).segment("MSA")[1])

        assert send(outgoing[0][1]) == "AA"
        proxy.cut()
        assert send(outgoing[1][1]) == "AE"  # never AA while the database is away
        proxy.restore()
        assert send(outgoing[1][1]) == "AA"  # the same message, sent again
        assert send(outgoing[2][1]) == "AA"
    with Session(engine) as session:
        stored = sorted(session.exec(select(InboxMessage.control_id)).all())
    engine.dispose()
    assert stored == ["DB0", "DB1", "DB2"]
    figures("PostgreSQL cut under the MLLP listener: AE while away (never AA), AA again once "
            "it returned; 3 messages stored once each")
