"""Schema migrations and column types, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect
from sqlmodel import SQLModel, select

from nlp_service.storage.db import alembic_config, migrate, session_scope
from nlp_service.storage.models import DeadLetter


def test_migrations_create_every_table(engine: Engine) -> None:
    tables = set(inspect(engine).get_table_names())
    assert set(SQLModel.metadata.tables) <= tables
    assert "alembic_version" in tables


def _differences_from_the_models(engine: Engine) -> list:
    with engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)


def test_migrations_match_the_models(engine: Engine) -> None:
    assert _differences_from_the_models(engine) == []


def test_migrations_undo_and_redo_keeping_data(engine: Engine) -> None:
    with session_scope(engine) as session:
        session.add(DeadLetter(raw=b"x", source="test", ack_code="AE", error_code=100,
                               reason="kept"))
    config = alembic_config(engine)
    command.downgrade(config, "0002_access_log")  # the latest migration undone, data kept
    assert "ix_measure_result_accession" not in {
        index["name"] for index in inspect(engine).get_indexes("measure_result")}
    migrate(engine)
    assert _differences_from_the_models(engine) == []
    with session_scope(engine) as session:
        assert session.exec(select(DeadLetter.reason)).all() == ["kept"]
    command.downgrade(config, "base")  # every migration undone
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    migrate(engine)
    assert _differences_from_the_models(engine) == []


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
