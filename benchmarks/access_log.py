"""The access log's cost: writing one entry per data request, and an admin's search by patient
over a large log, on SQLite and PostgreSQL side by side.

Times ``record_access`` (one transaction per request, as the middleware does) for answers
reaching 1, 50 and 500 patients, then loads ``--entries`` synthetic entries (1 to 5 patients
each among ``--patients``) and times the search for one patient's accesses (first page and
total) and for one key's:

    python -m benchmarks.access_log --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, func, insert, select, text
from sqlmodel import Session

from benchmarks.batching import format_table
from benchmarks.ingest import postgres_schema
from nlp_service.storage.access_log import AccessQuery, record_access, search_access_log
from nlp_service.storage.db import make_engine, migrate, read_only
from nlp_service.storage.models import AccessLogEntry, AccessLogPatient


def _patient(number: int) -> str:
    return f"p-{number:020d}"


def _entry(key: int, at: datetime | None = None) -> AccessLogEntry:
    return AccessLogEntry(at=at or datetime.now(UTC), key_id=f"key{key}", key_name="bench",
                          method="GET", path="/fhir/Observation", query="patient=x",
                          status=200, action="read", client="127.0.0.1")


def _median_ms(run: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def time_writes(engine: Engine, repeat: int) -> dict[int, float]:
    """Median ms of one ``record_access`` by number of patients reached."""
    return {size: _median_ms(lambda size=size: record_access(  # type: ignore[misc]
        engine, _entry(0), [_patient(i) for i in range(size)]), repeat)
            for size in (1, 50, 500)}


def load(engine: Engine, entries: int, patients: int, seed: int = 7) -> None:
    """``entries`` entries over the last year from 50 keys, each reaching 1-5 patients."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(days=365)
    batch = 20_000
    with Session(engine) as session:
        # Explicit ids: an executemany without RETURNING is several times faster.
        base = session.execute(select(func.coalesce(func.max(AccessLogEntry.id), 0))).scalar_one()
        for first in range(0, entries, batch):
            ids = range(base + first + 1, base + first + 1 + min(batch, entries - first))
            rows = [{"id": entry_id, "at": start + timedelta(
                         seconds=31_536_000 * (entry_id - base) / entries),
                     "key_id": f"key{rng.randrange(50)}", "key_name": "bench", "method": "GET",
                     "path": "/fhir/Observation", "query": None, "status": 200,
                     "action": "read", "client": "127.0.0.1", "patient_count": 0,
                     "bulk": False} for entry_id in ids]
            session.execute(insert(AccessLogEntry), rows)
            links = [{"entry_id": entry_id, "patient_id": _patient(rng.randrange(patients))}
                     for entry_id in ids for _ in range(rng.randint(1, 5))]
            session.execute(insert(AccessLogPatient), links)
            session.commit()
        if engine.dialect.name == "postgresql":
            session.execute(text("SELECT setval(pg_get_serial_sequence('access_log', 'id'), "
                                 "(SELECT max(id) FROM access_log))"))
        # Planner statistics, as autovacuum (PostgreSQL) or a maintenance job would gather.
        session.execute(text("ANALYZE"))
        session.commit()


def time_searches(engine: Engine, patients: int, repeat: int) -> dict[str, float]:
    """Median ms of an admin's searches (first page of 100 and the total), for a patient the
    write timings did not reach."""
    patient = _patient(patients - 1)
    queries = {"one patient": AccessQuery(patient_ids=(patient,)),
               "one patient, last 30 days": AccessQuery(
                   patient_ids=(patient,), since=datetime.now(UTC) - timedelta(days=30)),
               "one key": AccessQuery(key_id="key7")}
    out = {}
    with Session(read_only(engine)) as session:
        for name, query in queries.items():
            search_access_log(session, query)  # warm-up
            out[name] = _median_ms(lambda query=query: search_access_log(  # type: ignore[misc]
                session, query), repeat)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--postgres", default=None,
                        help="also run on this PostgreSQL URL (a temporary schema is used)")
    args = parser.parse_args(argv)
    if args.entries < 1 or args.patients <= 500 or args.repeat < 1:
        parser.error("need --entries >= 1, --patients > 500 and --repeat >= 1")
    columns: dict[str, dict[str, float]] = {}
    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        engines = {"SQLite": make_engine(f"sqlite:///{folder / 'access.db'}")}
        if args.postgres:
            engines["PostgreSQL"] = stack.enter_context(postgres_schema(args.postgres))
        for name, engine in engines.items():
            migrate(engine)
            writes = time_writes(engine, args.repeat)
            started = time.perf_counter()
            load(engine, args.entries, args.patients)
            loaded = time.perf_counter() - started
            searches = time_searches(engine, args.patients, args.repeat)
            columns[name] = {**{f"write, {k} patient(s)": v for k, v in writes.items()},
                             **{f"search: {k}": v for k, v in searches.items()}}
            print(f"{name}: loaded {args.entries:,} entries in {loaded:.1f} s")
            if name == "SQLite":
                engine.dispose()
    rows = [[label, *(f"{columns[name][label]:.2f}" for name in columns)]
            for label in next(iter(columns.values()))]
    print(f"\nmedian ms of {args.repeat} runs; {args.entries:,} entries over "
          f"{args.patients:,} patients")
    print(format_table(["operation", *columns], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
