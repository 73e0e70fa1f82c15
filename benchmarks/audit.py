"""Audit query latency on PostgreSQL with a million follow-ups.

Loads N synthetic follow-ups (two years of report times, five modalities, a quarter completed
on time, a quarter late, half never done; some conditional, some decided not needed) and N
QPP measure rows into a temporary schema with ``INSERT ... SELECT generate_series``, then
times the queries the API runs (best of ``--repeat`` after one warm-up):

    python -m benchmarks.audit --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        --n 1000000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, text

from benchmarks.batching import format_table
from benchmarks.ingest import postgres_schema
from nlp_service.audit.queries import AuditFilters, list_follow_ups, measure, summary
from nlp_service.storage.db import migrate

SEED_SQL = """
INSERT INTO report (accession, version, is_current, entered_in_error, fhir_id, patient_mrn,
                    result_status, text, model_version, analysis, created_at)
VALUES ('BENCH', 1, true, false, 'BENCH', 'P0', 'F', 'x', 'bench', '{}', now());
INSERT INTO recommendation (report_id, index, text, start, "end", conditional, fhir_id)
SELECT id, 0, 'x', 0, 1, false, 'BENCH-r0' FROM report WHERE accession = 'BENCH';
"""
FOLLOW_UPS_SQL = """
INSERT INTO follow_up (accession, rec_index, recommendation_id, source_report_id, patient_mrn,
    report_time, modality, body_region, finding, text, start, "end", conditional, due_start,
    due_end, late_after, default_window, ordering_provider, radiologist, guideline,
    guideline_verdict, completed_at, manual_status, manual_at, fhir_id, created_at)
SELECT 'A' || g, 0, (SELECT id FROM recommendation LIMIT 1), (SELECT id FROM report LIMIT 1),
    'P' || (g % 200000), t, m, (ARRAY['chest','abdomen','thyroid','kidney','head'])[g % 5 + 1],
    (ARRAY['nodule','thyroid nodule','renal cyst','adrenal nodule','liver lesion',
           'mass'])[g % 6 + 1],
    'Recommend follow-up imaging.', 0, 28, g % 20 = 0, t + interval '90 days',
    t + (180 + (g % 3) * 90) * interval '1 day', t + (180 + (g % 3) * 90) * interval '1 day',
    false, 'DR' || (g % 300), 'RAD' || (g % 40), 'Fleischner 2017',
    (ARRAY['consistent','inconsistent','not_applicable'])[g % 3 + 1],
    CASE g % 4 WHEN 0 THEN t + interval '150 days' WHEN 1 THEN t + interval '400 days' END,
    CASE WHEN g % 50 = 0 THEN 'not_needed' END,
    CASE WHEN g % 50 = 0 THEN t + interval '30 days' END, 'F' || g, now()
FROM (SELECT g, timestamptz '2024-01-01 08:00+00' + (g % 730) * interval '1 day' AS t,
             (ARRAY['CT','MR','US','XR','NM'])[g % 5 + 1] AS m
      FROM generate_series(1, :n) AS g) AS rows;
INSERT INTO measure_result (report_id, accession, measure, is_current, report_time,
                            in_denominator, in_numerator, excluded, reason)
SELECT (SELECT id FROM report LIMIT 1), 'A' || g, (ARRAY['364','405','406'])[g % 3 + 1], true,
    timestamptz '2024-01-01 08:00+00' + (g % 730) * interval '1 day', g % 7 <> 0,
    g % 7 <> 0 AND g % 2 = 0, g % 7 = 0, 'synthetic'
FROM generate_series(1, :n) AS g;
ANALYZE;
"""


def timed(query: Callable[[Session], Any], session: Session, repeat: int) -> float:
    query(session)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        query(session)
        best = min(best, time.perf_counter() - start)
    return best


def _measure_query(number: str, as_of: datetime) -> Callable[[Session], Any]:
    return lambda session: measure(session, number, as_of=as_of)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--postgres", required=True, help="PostgreSQL URL (a temporary "
                                                          "schema is created and dropped)")
    parser.add_argument("--n", type=int, default=1_000_000, help="follow-ups to load")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    as_of = datetime(2026, 1, 1, tzinfo=UTC)
    with postgres_schema(args.postgres) as engine:
        migrate(engine)
        start = time.perf_counter()
        with Session(engine) as session:
            for statement in (SEED_SQL + FOLLOW_UPS_SQL).split(";"):
                if statement.strip():
                    session.exec(text(statement), params={"n": args.n})  # type: ignore[call-overload]
            session.commit()
        load_seconds = time.perf_counter() - start
        everything = AuditFilters()
        queries: list[tuple[str, Callable[[Session], Any]]] = [
            ("summary (all states, rates)",
             lambda s: summary(s, everything, as_of=as_of)),
            ("summary by month", lambda s: summary(s, everything, as_of=as_of,
                                                   group_by="month")),
            ("summary by modality", lambda s: summary(s, everything, as_of=as_of,
                                                      group_by="modality")),
            ("overdue worklist, first page of 50",
             lambda s: list_follow_ups(s, AuditFilters(status=("overdue",)), as_of=as_of,
                                       limit=50)),
            ("overdue worklist, CT, page 100",
             lambda s: list_follow_ups(s, AuditFilters(status=("overdue",), modality="CT"),
                                       as_of=as_of, offset=5000, limit=50)),
        ]
        for number in ("364", "405", "406"):
            queries.append((f"measure {number}", _measure_query(number, as_of)))
        rows = []
        with Session(engine) as session:
            for name, query in queries:
                seconds = timed(query, session, args.repeat)
                rows.append([name, f"{seconds * 1000:.0f}"])
    print(f"{args.n:,} follow-ups and {args.n:,} measure rows loaded in {load_seconds:.1f} s; "
          f"as of {as_of.date()}; best of {args.repeat}")
    print(format_table(["query", "ms"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
