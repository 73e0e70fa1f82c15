"""Shared fixtures: the rules pipeline is built once per session, never at import time."""

from __future__ import annotations

import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from playwright.sync_api import Browser, sync_playwright
from sqlalchemy import Engine, create_engine

from nlp_service.api.main import create_app
from nlp_service.core.config import Settings
from nlp_service.intake.hl7 import build_oru as hl7_message
from nlp_service.intake.mllp import BackgroundMLLPServer, MLLPServer
from nlp_service.storage.db import make_engine, migrate
from nlp_service.worker import Worker
from pipelines.pipeline import RadiologyPipeline
from pipelines.schema import FindingOut, ReportAnalysis


@pytest.fixture(scope="session")
def rules_pipeline() -> RadiologyPipeline:
    return RadiologyPipeline.load("rules")


@pytest.fixture(scope="session")
def analyze(rules_pipeline: RadiologyPipeline) -> Callable[[str], ReportAnalysis]:
    return lambda text: rules_pipeline.analyze(text, "test")


@pytest.fixture(scope="session")
def finding() -> Callable[..., FindingOut]:
    """Look up the single finding whose text is ``text`` (``occurrence`` picks among repeats)."""

    def lookup(analysis: ReportAnalysis, text: str, occurrence: int = 1) -> FindingOut:
        matches = [f for f in analysis.findings if f.text.lower() == text.lower()]
        assert len(matches) >= occurrence, (
            f"{text!r} not found; findings: {[f.text for f in analysis.findings]}")
        return matches[occurrence - 1]

    return lookup


# --- Figures: fault and fuzz tests report what they ran; printed at the end of the run. ----

FIGURES: list[str] = []


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Record a line for the run's "radnlp figures" summary (e.g. messages sent, lost)."""

    def record(line: str) -> None:
        FIGURES.append(f"{request.node.nodeid}: {line}")

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("radnlp figures (faults, fuzzing)")
        for line in FIGURES:
            terminalreporter.write_line(line)


# --- Databases: SQLite always, PostgreSQL too when RADNLP_TEST_POSTGRES_URL is set. ---------

POSTGRES_URL = os.environ.get("RADNLP_TEST_POSTGRES_URL")
DATABASES = ["sqlite", pytest.param("postgresql", marks=[
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_URL, reason="RADNLP_TEST_POSTGRES_URL is not set")])]


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, dict]]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL schema of its own.

    Yields the URL and the engine keyword arguments that select it."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'radnlp.db'}", {}
        return
    assert POSTGRES_URL is not None
    schema = f"radnlp_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield POSTGRES_URL, {"connect_args": {"options": f"-csearch_path={schema}"}}
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def engine(database_url: tuple[str, dict]) -> Iterator[Engine]:
    """A migrated engine on a fresh database (each backend in turn)."""
    url, kwargs = database_url
    engine = make_engine(url, **kwargs)
    migrate(engine)
    yield engine
    engine.dispose()


# --- HL7 messages the tests write. ----------------------------------------------------------

def build_oru(control_id: str, accession: str, text: str | list[str], *, mrn: str = "MRN500001",
              status: str = "F", observed_at: datetime = datetime(2026, 1, 15, 9, 30, tzinfo=UTC),
              version: str = "2.5.1", separator: str = "\r") -> str:
    """An ORU^R01 (CT chest) with the report text as line-per-OBX TX values."""
    message = hl7_message(control_id, accession,
                          text if isinstance(text, str) else "\n".join(text), mrn=mrn,
                          status=status, observed_at=observed_at, version=version,
                          procedure=("71250", "CT CHEST WITHOUT CONTRAST", "CPT4"))
    return message.replace("\r", separator)


@pytest.fixture(scope="session")
def oru() -> Callable[..., str]:
    return build_oru


# --- A live service: uvicorn on a real port, the MLLP listener, and a worker. ---------------

@dataclass
class LiveService:
    base_url: str
    mllp_port: int
    engine: Engine
    worker: Worker

    def drain(self) -> None:
        """Process every pending inbox message now."""
        self.worker.run_until_empty()


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """``app`` under uvicorn on a free port; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    if app.state.settings.public_url is None:  # as a deployment configures it
        app.state.settings = app.state.settings.model_copy(
            update={"public_url": f"http://127.0.0.1:{port}"})
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def live_service(engine: Engine, rules_pipeline: RadiologyPipeline) -> Iterator[LiveService]:
    # Functional tests call the API without keys; access control is tested on its own in
    # tests/nlp_service/api/test_access.py.
    settings = Settings(database_url="sqlite://", pipeline_mode="rules", auth_required=False)
    app = create_app(settings, engine=engine, pipeline=rules_pipeline, run_migrations=False)
    with serving(app) as base_url, BackgroundMLLPServer(MLLPServer(engine, port=0)) as listener:
        yield LiveService(base_url, listener.port, engine,
                          Worker(engine, rules_pipeline, batch_size=16))


# --- A real headless Chromium (Debian's), for the page tests. ------------------------------

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


def chromium_executable() -> str:
    """Debian's chromium (or RADNLP_CHROMIUM); a clear failure, not a skip, when missing."""
    path = (os.environ.get("RADNLP_CHROMIUM") or shutil.which("chromium")
            or shutil.which("chromium-browser"))
    if not path or not Path(path).is_file():
        pytest.fail("Chromium is not installed: the page tests drive a real browser. Install "
                    "Debian's (apt-get install -y chromium, as .ci/run does) or set "
                    "RADNLP_CHROMIUM to a Chromium executable.", pytrace=False)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium_executable()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
