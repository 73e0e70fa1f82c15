"""The database engine, sessions and schema migrations (Alembic)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
READ_ONLY = "radnlp_read_only"
STATEMENT_TIMEOUT = "radnlp_statement_timeout"
# SQLite calls the progress handler every this many virtual machine instructions.
_PROGRESS_STEPS = 10_000
_DEADLINE = "radnlp_statement_deadline"  # in a pooled connection's info: when to interrupt


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite files get WAL, a busy timeout and write-locking
    transactions so the MLLP listener, the API and the worker can share one file."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_engine(url, pool_pre_ping=True, **kwargs)

        @event.listens_for(engine, "begin")
        def _on_begin_server(connection: Any) -> None:
            timeout = connection.get_execution_options().get(STATEMENT_TIMEOUT)
            if timeout and connection.dialect.name == "postgresql":
                # LOCAL: it ends with the transaction, so pooled connections never keep it.
                connection.exec_driver_sql(
                    f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}")

        return engine
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60},
                           **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling starts transactions lazily and cannot upgrade a
        # read lock under contention; BEGIN IMMEDIATE below takes the write lock up front.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()
        _interrupt_after_deadline(dbapi_connection, _record)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Readers (see read_only) begin deferred: in WAL mode they never wait for a writer.
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    @event.listens_for(engine, "before_cursor_execute")
    def _on_statement(connection: Any, *_args: Any) -> None:
        timeout = connection.get_execution_options().get(STATEMENT_TIMEOUT)
        connection.connection.info[_DEADLINE] = time.monotonic() + timeout if timeout else None

    return engine


def _interrupt_after_deadline(dbapi_connection: Any, record: Any) -> None:
    """SQLite's statement timeout: the progress handler's true answer interrupts the running
    statement ("interrupted"), as PostgreSQL's statement_timeout cancels it."""

    def past_deadline() -> bool:
        deadline = record.info.get(_DEADLINE)
        return deadline is not None and time.monotonic() > deadline

    dbapi_connection.set_progress_handler(past_deadline, _PROGRESS_STEPS)


def with_statement_timeout(engine: Engine, seconds: float) -> Engine:
    """``engine`` whose transactions cancel any statement running longer than ``seconds``
    (PostgreSQL ``statement_timeout``, a SQLite progress handler), for the API's requests."""
    return engine.execution_options(**{STATEMENT_TIMEOUT: seconds})


def read_only(engine: Engine) -> Engine:
    """``engine`` for sessions that only read (on SQLite they take no write lock)."""
    return engine.execution_options(**{READ_ONLY: True})


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url",
                           engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` (creates every table on an empty database)."""
    command.upgrade(alembic_config(engine), revision)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session whose transaction commits on success and rolls back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def describe_error(exc: BaseException) -> str:
    """An exception for a log or a stored error: a database error by its driver's class and
    the first line of its message ("value too long for type character varying(100)"),
    never SQLAlchemy's text, which repeats the statement's parameters (MRNs, report text)."""
    if isinstance(exc, DBAPIError):
        first_line = str(exc.orig).strip().split("\n", 1)[0][:300]
        return f"{type(exc).__name__} ({type(exc.orig).__name__}): {first_line}"
    return f"{type(exc).__name__}: {exc}"[:2000]
