"""Turnaround KPIs from the HL7 times of each exam (``ReportTiming``): exam (OBR-7) to the first
preliminary result, exam to the first final result, and, for exams with a critical finding,
exam to its documented communication. Median and 90th percentile (nearest rank, so every
figure is one exam's real time) in minutes, by modality and month of the exam; times are kept
with their offsets, so months are those of the exam's own UTC instant.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from nlp_service.storage.models import ReportTiming

INTERVALS = {
    "exam_to_preliminary": ("exam_at", "preliminary_at"),
    "exam_to_final": ("exam_at", "final_at"),
    "exam_to_communication": ("exam_at", "communicated_at"),
}
TURNAROUND_COLUMNS = ["modality", "month", "interval", "exams", "median_minutes",
                      "p90_minutes"]


def nearest_rank(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of sorted ``values`` (``fraction`` in (0, 1])."""
    if not values:
        raise ValueError("no values")
    return values[max(math.ceil(fraction * len(values)), 1) - 1]


def timings(session: Session, *, exam_from: datetime | None = None,
            exam_to: datetime | None = None, modality: str | None = None,
            ) -> list[ReportTiming]:
    query = select(ReportTiming).where(col(ReportTiming.exam_at).is_not(None))
    if exam_from is not None:
        query = query.where(col(ReportTiming.exam_at) >= exam_from)
    if exam_to is not None:
        query = query.where(col(ReportTiming.exam_at) < exam_to)
    if modality is not None:
        query = query.where(ReportTiming.modality == modality)
    return list(session.exec(query.order_by(col(ReportTiming.exam_at), col(ReportTiming.id))))


def turnaround(rows: Iterable[ReportTiming]) -> list[dict[str, Any]]:
    """One row per modality, month and interval with exams measured, median and p90."""
    minutes: dict[tuple[str, str, str], list[float]] = {}
    for row in rows:
        if row.exam_at is None:
            continue
        month = row.exam_at.strftime("%Y-%m")
        for interval, (start, end) in INTERVALS.items():
            begin, finish = getattr(row, start), getattr(row, end)
            if begin is None or finish is None:
                continue
            key = (row.modality or "unknown", month, interval)
            minutes.setdefault(key, []).append((finish - begin).total_seconds() / 60)
    result = []
    for (modality, month, interval), values in sorted(minutes.items()):
        values.sort()
        result.append({"modality": modality, "month": month, "interval": interval,
                       "exams": len(values),
                       "median_minutes": round(nearest_rank(values, 0.5), 1),
                       "p90_minutes": round(nearest_rank(values, 0.9), 1)})
    return result
