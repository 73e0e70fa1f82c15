"""``radnlp serve``, ``ingest`` and ``worker`` run as a user runs them (real subprocesses,
real sockets), and the stored FHIR findings compared with ``radnlp analyze`` on the same text."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, col, select

from nlp_service.storage.db import make_engine
from nlp_service.storage.models import Report
from tests.conftest import LiveService
from tests.nlp_service.api.test_fhir_api import _presence, _span

ROOT = Path(__file__).resolve().parents[2]
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def radnlp(*args: str, env: dict[str, str] | None = None, stdin: str | None = None,
           timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nlp_service.cli", *args], input=stdin,
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str, subprocess.Popen[str]]]:
    """``radnlp serve --ingest-samples`` in full mode (the default) on a fresh SQLite file."""
    http_port, mllp_port = free_port(), free_port()
    database = f"sqlite:///{tmp_path / 'service.db'}"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RADNLP_DATABASE_URL": database,
           "RADNLP_HTTP_PORT": str(http_port), "RADNLP_MLLP_PORT": str(mllp_port)}
    process = subprocess.Popen([sys.executable, "-m", "nlp_service.cli", "serve",
                                "--ingest-samples"], cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        yield f"http://127.0.0.1:{http_port}", database, process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def test_serve_ingests_the_samples_and_fhir_matches_radnlp_analyze(
        served: tuple[str, str, subprocess.Popen[str]]) -> None:
    base, database, process = served
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 600
    # A first run prints a new admin key after the summary: the API asks for one.
    while not any(line.startswith("admin key") for line in lines):
        assert time.monotonic() < deadline and process.poll() is None, lines
        lines.append(process.stdout.readline().strip())
    summary = next(line for line in lines if line.startswith("sent "))
    assert summary.startswith("sent 22 sample messages") and "22 AA" in summary
    assert "0 messages set aside" in summary
    key = next(line for line in lines if line.startswith("admin key")).split(": ", 1)[1]
    auth = {"Authorization": f"Bearer {key}"}
    assert httpx.get(f"{base}/fhir/DiagnosticReport").status_code == 401

    engine = make_engine(database)
    with Session(engine) as session:
        reports = [r for r in session.exec(select(Report).where(col(Report.is_current))).all()
                   if not r.entered_in_error]
    engine.dispose()
    stdin = "\n".join(json.dumps({"id": r.accession, "text": r.text}) for r in reports)
    analyzed = radnlp("analyze", stdin=stdin)
    assert analyzed.returncode == 0, analyzed.stderr
    expected = {a["id"]: a for a in map(json.loads, analyzed.stdout.splitlines())}
    for report in reports:
        bundle = httpx.get(f"{base}/fhir/DiagnosticReport", params={
            "identifier": report.accession, "_include": "DiagnosticReport:result"},
            headers=auth).json()
        observations = [e["resource"] for e in bundle["entry"]
                        if e["resource"]["resourceType"] == "Observation"]
        got = sorted((_span(o), _presence(o)) for o in observations)
        want = sorted(((f["start"], f["end"]), f["assertion"])
                      for f in expected[report.accession]["findings"] if not f["in_indication"])
        assert got == want, report.accession
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0




def test_ingest_sends_files_and_reports_each_ack(live_service: LiveService, tmp_path: Path,
                                                 oru: Callable[..., str]) -> None:
    good = tmp_path / "two.hl7"
    good.write_text(oru("ING1", "ACC-I1", ["No effusion."], separator="\n")
                    + oru("ING2", "ACC-I2", ["Small left effusion."], separator="\n"))
    bad = tmp_path / "bad.hl7"
    bad.write_text("MSH|^~\\&|A|B|C|D|2026||ADT^A01|ING3|P|2.5.1\rPID|1\r")
    result = radnlp("ingest", str(good), str(bad), "--port", str(live_service.mllp_port))
    assert result.returncode == 1
    assert result.stdout.splitlines() == ["two.hl7#1\tING1\tAA", "two.hl7#2\tING2\tAA",
                                          "bad.hl7#1\tING3\tAR"]
    assert "1 message(s) not accepted" in result.stderr
    unreachable = radnlp("ingest", str(good), "--port", str(free_port()))
    assert unreachable.returncode == 2 and "cannot reach" in unreachable.stderr


def test_worker_once_processes_the_inbox(live_service: LiveService, tmp_path: Path) -> None:
    sent = radnlp("ingest", "--samples", "--port", str(live_service.mllp_port))
    assert sent.returncode == 0, sent.stderr
    url = live_service.engine.url.render_as_string(hide_password=False)
    if live_service.engine.dialect.name != "sqlite":
        pytest.skip("the worker subprocess reaches the test's SQLite file by URL only")
    result = radnlp("worker", "--once", env={"RADNLP_DATABASE_URL": url,
                                             "RADNLP_PIPELINE_MODE": "rules"})
    assert result.returncode == 0, result.stderr
    assert "messages done 22" in result.stdout and "set aside 0" in result.stdout
    page = httpx.get(f"{live_service.base_url}/api/v1/reports").json()
    assert page["total"] == 20
