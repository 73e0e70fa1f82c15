"""Backup and restore of the embedded SQLite database while the service writes to it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlmodel import Session, func, select

from nlp_service.intake.receiver import receive_message
from nlp_service.storage.backup import backup_sqlite
from nlp_service.storage.db import make_engine, migrate
from nlp_service.storage.models import InboxMessage
from tests.nlp_service.test_service_cli import radnlp


def test_backup_while_writing_then_restore(tmp_path: Path, oru: Callable[..., str]) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    engine = make_engine(url)
    migrate(engine)
    for i in range(50):
        receive_message(engine, oru(f"B{i}", f"ACC-B{i}", ["No effusion."]).encode(), source="t")
    writer = threading.Thread(target=lambda: [receive_message(
        engine, oru(f"W{i}", f"ACC-W{i}", ["No effusion."]).encode(), source="t")
        for i in range(100)])
    writer.start()
    backup = tmp_path / "backup.db"
    result = radnlp("db", "backup", str(backup), env={"RADNLP_DATABASE_URL": url})
    writer.join()
    assert result.returncode == 0, result.stderr
    restored = make_engine(f"sqlite:///{backup}")
    migrate(restored)  # a restored file opens and is at the current schema
    with Session(restored) as session:
        ids = set(session.exec(select(InboxMessage.control_id)).all())
    with Session(engine) as session:
        total = session.exec(select(func.count()).select_from(InboxMessage)).one()
    assert {f"B{i}" for i in range(50)} <= ids  # everything committed before the backup
    assert 50 <= len(ids) <= total == 150
    again = radnlp("db", "backup", str(backup), env={"RADNLP_DATABASE_URL": url})
    assert again.returncode == 2 and "exists" in again.stderr
    with pytest.raises(ValueError, match="pg_dump"):
        backup_sqlite("postgresql+psycopg://x@localhost/db", tmp_path / "pg.db")
