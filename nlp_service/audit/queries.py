"""Audit queries: the follow-up worklist, compliance summaries and QPP measure figures, each
reproducible for an "as of" date, and their CSV form."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import func, or_
from sqlmodel import Session, col, select

from nlp_service.audit.rules import KINDS, default_rules
from nlp_service.audit.tracking import STATUSES, status_at
from nlp_service.storage.models import FollowUp, MeasureResult

GroupBy = Literal["month", "modality", "finding", "ordering_provider", "radiologist"]
GROUPS: tuple[GroupBy, ...] = ("month", "modality", "finding", "ordering_provider",
                               "radiologist")
SORTS = {"due_end": col(FollowUp.due_end), "report_time": col(FollowUp.report_time),
         "id": col(FollowUp.id)}
COMPLETED = ("completed_on_time", "completed_late", "completed_elsewhere")
# Rates count follow-ups that are done or past due; open ones (not yet due) and those
# decided not needed, cancelled, not a recommendation (an extraction error) or withdrawn are
# left out.
DUE = (*COMPLETED, "overdue")
MEASURES = {
    "364": ("Follow-up CT imaging for incidentally detected pulmonary nodules according to "
            "recommended guidelines", False),
    "405": ("Appropriate follow-up imaging for incidental abdominal lesions", True),
    "406": ("Appropriate follow-up imaging for incidental thyroid nodules in patients", True),
}


def tracked_kinds() -> tuple[str, ...]:
    """The recommendation kinds a query covers unless it names others (the rules')."""
    return default_rules().tracked_kinds


@dataclass(frozen=True)
class AuditFilters:
    """Which follow-ups a query covers (``None`` means any; ``kinds`` defaults to the kinds
    the follow-up rules track)."""

    status: tuple[str, ...] | None = None
    report_from: datetime | None = None
    report_to: datetime | None = None
    modality: str | None = None
    finding: str | None = None
    patient: str | None = None
    ordering_provider: str | None = None
    radiologist: str | None = None
    guideline_verdict: str | None = None
    include_conditional: bool = True
    kinds: tuple[str, ...] | None = field(default_factory=tracked_kinds)

    def __post_init__(self) -> None:
        unknown = set(self.status or ()) - set(STATUSES)
        if unknown:
            raise ValueError(f"unknown status {', '.join(sorted(unknown))}; "
                             f"one of {', '.join(STATUSES)}")
        unknown = set(self.kinds or ()) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown kind {', '.join(sorted(unknown))}; "
                             f"one of {', '.join(KINDS)}")


def _filtered(filters: AuditFilters, as_of: datetime, status: Any) -> Any:
    query = select(FollowUp, status.label("status")).where(col(FollowUp.report_time) <= as_of)
    exact = {FollowUp.finding: filters.finding,
             FollowUp.patient_mrn: filters.patient,
             FollowUp.ordering_provider: filters.ordering_provider,
             FollowUp.radiologist: filters.radiologist,
             FollowUp.guideline_verdict: filters.guideline_verdict}
    for column, value in exact.items():
        if value is not None:
            query = query.where(column == value)
    if filters.modality is not None:  # any acceptable modality ("CT or MRI" is found by MR)
        query = query.where(or_(
            col(FollowUp.modality) == filters.modality,
            sa.cast(FollowUp.modalities, sa.Text).like(f'%"{filters.modality}"%')))
    if filters.report_from is not None:
        query = query.where(col(FollowUp.report_time) >= filters.report_from)
    if filters.report_to is not None:
        query = query.where(col(FollowUp.report_time) <= filters.report_to)
    if not filters.include_conditional:
        query = query.where(col(FollowUp.conditional).is_(False))
    if filters.kinds is not None:
        query = query.where(col(FollowUp.kind).in_(filters.kinds))
    if filters.status:
        query = query.where(status.in_(filters.status))
    return query


def list_follow_ups(session: Session, filters: AuditFilters, *, as_of: datetime,
                    offset: int = 0, limit: int = 50,
                    sort: str = "due_end") -> tuple[int, list[tuple[FollowUp, str]]]:
    """(total, one page of (follow-up, state on ``as_of``)); ``sort`` is a key of ``SORTS``,
    with "-" for descending."""
    key = sort.removeprefix("-")
    if key not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)} (with - for descending)")
    status = status_at(as_of)
    query = _filtered(filters, as_of, status)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    order = SORTS[key].desc() if sort.startswith("-") else SORTS[key].asc()
    rows = session.exec(query.order_by(order, col(FollowUp.id)).offset(offset).limit(limit))
    return total, [(row[0], row[1]) for row in rows]


@dataclass
class GroupCounts:
    """Follow-up counts by state for one group, and the rates derived from them."""

    key: str | None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def due(self) -> int:
        return sum(self.counts[s] for s in DUE)

    @property
    def completion_rate(self) -> float | None:
        done = sum(self.counts[s] for s in COMPLETED)
        return round(done / self.due, 4) if self.due else None

    @property
    def on_time_rate(self) -> float | None:
        return round(self.counts["completed_on_time"] / self.due, 4) if self.due else None

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "total": self.total, **self.counts, "due": self.due,
                "completion_rate": self.completion_rate, "on_time_rate": self.on_time_rate}


def _group_key(session: Session, group_by: GroupBy) -> Any:
    if group_by == "month":
        if session.get_bind().dialect.name == "postgresql":
            # date_trunc, not to_char: over a million rows it is about a third of a second
            # faster; summary() writes the month as YYYY-MM.
            return func.date_trunc("month", func.timezone("UTC", FollowUp.report_time))
        return func.strftime("%Y-%m", FollowUp.report_time)
    return {"modality": FollowUp.modality, "finding": FollowUp.finding,
            "ordering_provider": FollowUp.ordering_provider,
            "radiologist": FollowUp.radiologist}[group_by]


def summary(session: Session, filters: AuditFilters, *, as_of: datetime,
            group_by: GroupBy | None = None) -> tuple[GroupCounts, list[GroupCounts]]:
    """Counts and rates overall and per group."""
    if group_by is not None and group_by not in GROUPS:
        raise ValueError(f"group_by must be one of {', '.join(GROUPS)}")
    status = status_at(as_of)
    keys = [_group_key(session, group_by).label("key")] if group_by else []
    grouped = _filtered(filters, as_of, status).with_only_columns(
        *keys, status.label("status")).subquery()
    columns = [grouped.c.key] if group_by else []
    rows = session.exec(select(*columns, grouped.c.status, func.count())  # type: ignore[call-overload]
                        .group_by(*columns, grouped.c.status))
    overall = GroupCounts(None)
    groups: dict[str | None, GroupCounts] = {}
    for row in rows:
        *group, state, count = row
        overall.counts[state] += count
        if group_by:
            name = (None if group[0] is None else f"{group[0]:%Y-%m}"
                    if isinstance(group[0], datetime) else str(group[0]))
            groups.setdefault(name, GroupCounts(name)).counts[state] += count
    return overall, sorted(groups.values(), key=lambda g: (g.key is None, g.key or ""))


@dataclass
class MeasureFigures:
    measure: str
    title: str
    inverse: bool
    numerator: int
    denominator: int
    exclusions: int
    numerator_reports: list[str]
    denominator_reports: list[str]
    excluded_reports: list[str]

    @property
    def rate(self) -> float | None:
        return round(self.numerator / self.denominator, 4) if self.denominator else None

    def as_dict(self) -> dict[str, Any]:
        return {"measure": self.measure, "title": self.title, "inverse": self.inverse,
                "numerator": self.numerator, "denominator": self.denominator,
                "exclusions": self.exclusions, "rate": self.rate,
                "reports": {"numerator": self.numerator_reports,
                            "denominator": self.denominator_reports,
                            "exclusions": self.excluded_reports}}


def measure(session: Session, number: str, *, report_from: datetime | None = None,
            report_to: datetime | None = None, as_of: datetime) -> MeasureFigures:
    """QPP measure ``number`` over the current report versions of the period."""
    if number not in MEASURES:
        raise ValueError(f"measure must be one of {', '.join(MEASURES)}")
    query = select(MeasureResult.accession, MeasureResult.in_denominator,
                   MeasureResult.in_numerator, MeasureResult.excluded).where(
        MeasureResult.measure == number, col(MeasureResult.is_current),
        col(MeasureResult.report_time) <= as_of)
    if report_from is not None:
        query = query.where(col(MeasureResult.report_time) >= report_from)
    if report_to is not None:
        query = query.where(col(MeasureResult.report_time) <= report_to)
    numerator, denominator, excluded = [], [], []
    for accession, in_denominator, in_numerator, is_excluded in session.exec(
            query.order_by(col(MeasureResult.accession))):
        if is_excluded:
            excluded.append(accession)
        elif in_denominator:
            denominator.append(accession)
            if in_numerator:
                numerator.append(accession)
    title, inverse = MEASURES[number]
    return MeasureFigures(number, title, inverse, len(numerator), len(denominator),
                          len(excluded), numerator, denominator, excluded)


FOLLOW_UP_COLUMNS = ("id", "status", "accession", "patient_mrn", "report_time", "kind",
                     "modality", "modalities", "body_region", "finding", "conditional",
                     "due_start", "due_end",
                     "default_window", "completed_at", "completed_by_report_id",
                     "ordering_provider", "radiologist", "guideline", "guideline_verdict",
                     "guideline_reason", "assignee", "text")


def follow_up_row(follow_up: FollowUp, status: str) -> dict[str, Any]:
    data = follow_up.model_dump()
    data["modalities"] = " or ".join(follow_up.modalities or [])
    if status not in ("completed_on_time", "completed_late"):  # as of a date before the exam
        data["completed_at"] = data["completed_by_report_id"] = None
    return {name: status if name == "status" else data.get(name) for name in FOLLOW_UP_COLUMNS}


def to_csv(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> str:
    """CSV text with a header row; datetimes in ISO 8601."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: v.isoformat() if isinstance(v, datetime) else v
                         for k, v in row.items()})
    return out.getvalue()
