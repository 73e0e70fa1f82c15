"""Schema migrations and column types, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect
from sqlmodel import SQLModel

from nlp_service.storage.db import session_scope
from nlp_service.storage.models import DeadLetter


def test_migrations_create_every_table(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert set(SQLModel.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == []


def test_times_come_back_aware_and_in_utc(engine: Engine) -> None:
    local = datetime(2026, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=-5)))
    with session_scope(engine) as session:
        row = DeadLetter(raw=b"x", source="test", ack_code="AE", error_code=100, reason="r",
                         received_at=local)
        session.add(row)
        session.flush()
        row_id = row.id
    with session_scope(engine) as session:
        stored = session.get(DeadLetter, row_id)
        assert stored is not None
        assert stored.received_at == local
        assert stored.received_at.tzinfo is not None
        assert stored.received_at.utcoffset() == timedelta(0)
        assert stored.received_at.hour == 14 and stored.received_at.tzinfo == UTC
