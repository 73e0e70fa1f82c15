"""Online backup of the embedded SQLite database (PostgreSQL: use pg_dump, see README)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy.engine import make_url


def backup_sqlite(database_url: str, target: Path) -> int:
    """Copy a live SQLite database to ``target`` with SQLite's backup API (consistent even
    while the service writes); returns the pages copied."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        raise ValueError("backup_sqlite needs a SQLite file URL; for PostgreSQL use pg_dump")
    if target.exists():
        raise FileExistsError(f"{target} exists; choose a new file")
    source = sqlite3.connect(f"file:{url.database}?mode=ro", uri=True)
    copy = sqlite3.connect(target)
    pages = 0

    def progress(_status: int, remaining: int, total: int) -> None:
        nonlocal pages
        pages = total - remaining

    try:
        with copy:
            source.backup(copy, pages=1024, progress=progress)
    finally:
        copy.close()
        source.close()
    return pages
