"""The model registry in the database: versions registered from the models folder, one active,
and an activation reaching worker processes that were started before it."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from annotations.registry import active_version as folder_default
from nlp_service.core.config import Settings
from nlp_service.intake.receiver import receive_message
from nlp_service.model_registry import activate, active_model, sync_registry
from nlp_service.storage.db import make_engine, migrate, session_scope
from nlp_service.storage.models import InboxMessage, ModelVersion, Report
from nlp_service.worker_pool import WorkerProcesses
from pipelines.models import MODELS_DIR
from tests.nlp_service.test_faults import messages

SHIPPED = folder_default(MODELS_DIR)


def _other_version() -> str:
    return next(p.name for p in sorted(MODELS_DIR.iterdir())
                if (p / "card.json").is_file() and p.name != SHIPPED)


def test_the_registry_registers_the_folder_and_activates_in_the_database(
        engine: Engine, tmp_path: Path) -> None:
    with session_scope(engine) as session:
        rows = sync_registry(session, MODELS_DIR)
        assert {r.name for r in rows} >= {SHIPPED, _other_version()}
        assert active_model(session) is not None
        assert active_model(session).name == SHIPPED  # type: ignore[union-attr]
    other = _other_version()
    with session_scope(engine) as session:
        activate(session, other, MODELS_DIR, actor="tester")
    with Session(engine) as session:
        active = session.exec(select(ModelVersion).where(col(ModelVersion.active))).all()
        assert [(r.name, r.activated_by) for r in active] == [(other, "tester")]
    # The folder is not written: its DEFAULT still names the shipped version.
    assert folder_default(MODELS_DIR) == SHIPPED
    with session_scope(engine) as session, pytest.raises(FileNotFoundError):
        activate(session, "no-such-version", MODELS_DIR)
    broken = tmp_path / "models"
    (broken / "half").mkdir(parents=True)
    (broken / "half" / "card.json").write_text('{"version": "half"}')
    with session_scope(engine) as session, pytest.raises(ValueError, match="does not load"):
        activate(session, "half", broken)


@pytest.mark.slow
def test_an_activation_reaches_worker_processes_started_before_it(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'radnlp.db'}"
    engine = make_engine(url)
    migrate(engine)
    settings = Settings(database_url=url, pipeline_mode="full", worker_batch_size=4,
                        worker_poll_seconds=0.2, log_level="INFO", models_dir=str(MODELS_DIR))
    pool = WorkerProcesses(settings, 2)
    stop = threading.Event()
    pool.start()
    supervisor = threading.Thread(target=pool.supervise, args=(stop, 0.2), daemon=True)
    supervisor.start()
    other = _other_version()
    try:
        _queue_and_wait(engine, "B", 12)
        with session_scope(engine) as session:
            activate(session, other, MODELS_DIR, actor="tester")
        log = ""
        deadline = time.monotonic() + 300
        switched: set[str] = set()
        while len(switched) < 2:
            assert time.monotonic() < deadline, log[-3000:]
            time.sleep(0.5)
            log += capfd.readouterr().err
            switched = set(re.findall(rf"worker (\S+): active model \S+ -> {re.escape(other)}",
                                      log))
        _queue_and_wait(engine, "A", 12)
    finally:
        stop.set()
        supervisor.join(timeout=120)
    with Session(engine) as session:
        made = dict(session.exec(select(Report.accession, Report.model_version)).all())
    engine.dispose()
    assert len({worker.split(":")[1] for worker in switched}) == 2  # two processes
    assert {made[a] for a in made if a.startswith("B")} == {SHIPPED}
    assert {made[a] for a in made if a.startswith("A")} == {other}


def _queue_and_wait(engine: Engine, prefix: str, count: int) -> None:
    for _, message in messages(count, prefix):
        assert receive_message(engine, message.encode(), source="test").ack_code == "AA"
    deadline = time.monotonic() + 300
    while True:
        with Session(engine) as session:
            waiting = session.exec(select(InboxMessage).where(
                col(InboxMessage.status) != "done")).all()
        if not waiting:
            return
        assert time.monotonic() < deadline, [(m.control_id, m.status) for m in waiting]
        time.sleep(0.2)


def test_the_command_activates_in_the_database_named_by_the_settings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from nlp_service.cli import app

    models = tmp_path / "models"
    other = _other_version()
    for name in (SHIPPED, other):
        (models / name).mkdir(parents=True)
        for path in (MODELS_DIR / name).rglob("*"):
            target = models / name / path.relative_to(MODELS_DIR / name)
            if path.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.write_bytes(path.read_bytes())
    (models / "DEFAULT").write_text(f"{SHIPPED}\n")
    url = f"sqlite:///{tmp_path / 'radnlp.db'}"
    monkeypatch.setenv("RADNLP_DATABASE_URL", url)
    monkeypatch.setenv("RADNLP_MODELS_DIR", str(models))
    runner = CliRunner()
    missing = runner.invoke(app, ["model", "activate", "no-such-version"])
    assert missing.exit_code == 2 and not (tmp_path / "radnlp.db").exists()
    done = runner.invoke(app, ["model", "activate", other])
    assert done.exit_code == 0, done.output
    engine = make_engine(url)
    with Session(engine) as session:
        assert active_model(session).name == other  # type: ignore[union-attr]
    engine.dispose()
    assert (models / "DEFAULT").read_text().strip() == other
    # The list reads the registry: a database activation shows even with DEFAULT behind it.
    (models / "DEFAULT").write_text(f"{SHIPPED}\n")
    listed = runner.invoke(app, ["model", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [v["name"] for v in json.loads(listed.output) if v["active"]] == [other]
