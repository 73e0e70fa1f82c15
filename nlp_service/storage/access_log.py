"""The access log: every request for patient data, with who made it and which patients it
reached (by FHIR Patient id, the hash of the MRN, so the log holds no MRN)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert
from sqlmodel import Session, col, func, select, union

from nlp_service.fhir.mapping import patient_resource_id
from nlp_service.storage.db import session_scope
from nlp_service.storage.models import AccessLogEntry, AccessLogPatient, FollowUp, Report

ACTIONS = ("read", "export", "change", "refused")
IN_CHUNK = 5000


@dataclass(frozen=True)
class AccessQuery:
    """Filters of an access-log search; an empty ``patient_ids`` tuple means any patient."""

    patient_ids: tuple[str, ...] = ()
    key_id: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    path_prefix: str | None = None


@dataclass
class AccessRecord:
    """One logged request with the patients it reached."""

    entry: AccessLogEntry
    patient_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**self.entry.model_dump(), "patients": self.patient_ids}


def record_access(engine: Engine, entry: AccessLogEntry, patient_ids: Iterable[str]) -> int:
    """Store ``entry`` and its patients in one transaction (none for a bulk entry, whose
    ``patient_count`` is set by the caller); the entry id."""
    patients = [] if entry.bulk else sorted(set(patient_ids))
    if not entry.bulk:
        entry.patient_count = len(patients)
    with session_scope(engine) as session:
        session.add(entry)
        session.flush()
        assert entry.id is not None
        if patients:
            session.execute(insert(AccessLogPatient), [
                {"entry_id": entry.id, "patient_id": p} for p in patients])
        return entry.id


def patient_ids_for_mrn(session: Session, mrn: str, authority: str | None = None) -> list[str]:
    """The Patient ids an MRN has had: one per assigning authority seen with it in stored
    reports (only ``authority``'s when given)."""
    if authority is not None:
        return [patient_resource_id(mrn, authority)]
    authorities = set(session.exec(select(Report.mrn_authority).where(
        Report.patient_mrn == mrn).distinct()).all())
    return sorted({patient_resource_id(mrn, a) for a in authorities or {None}})


def patient_ids_of(rows: Iterable[Report | FollowUp]) -> set[str]:
    """The Patient ids of stored reports or follow-ups."""
    return {patient_resource_id(row.patient_mrn, row.mrn_authority) for row in rows
            if row.patient_mrn}


def patient_ids_of_reports(session: Session, report_ids: Iterable[int | None] = (),
                           accessions: Iterable[str] = ()) -> set[str]:
    """The Patient ids of reports given by row id or accession."""
    pairs: set[tuple[str, str | None]] = set()
    for key, values in ((col(Report.id), sorted({i for i in report_ids if i is not None})),
                        (col(Report.accession), sorted(set(accessions)))):
        # Chunks keep each IN list under SQLite's bound-parameter limit.
        for start in range(0, len(values), IN_CHUNK):
            pairs.update(session.exec(select(Report.patient_mrn, Report.mrn_authority).where(
                key.in_(values[start:start + IN_CHUNK])).distinct()).all())
    return {patient_resource_id(mrn, authority) for mrn, authority in pairs if mrn}


def search_access_log(session: Session, query: AccessQuery, *, offset: int = 0,
                      limit: int = 100) -> tuple[int, list[AccessRecord]]:
    """Matching entries, newest first, each with its patients; and how many match."""
    statement = select(AccessLogEntry)
    if query.patient_ids:
        # A union of two indexed lookups (a plain OR would scan the whole log).
        statement = statement.where(col(AccessLogEntry.id).in_(union(
            select(AccessLogPatient.entry_id).where(
                col(AccessLogPatient.patient_id).in_(query.patient_ids)),
            select(AccessLogEntry.id).where(col(AccessLogEntry.bulk)))))
    if query.key_id:
        statement = statement.where(AccessLogEntry.key_id == query.key_id)
    if query.action:
        statement = statement.where(AccessLogEntry.action == query.action)
    if query.since:
        statement = statement.where(col(AccessLogEntry.at) >= query.since)
    if query.until:
        statement = statement.where(col(AccessLogEntry.at) < query.until)
    if query.path_prefix:
        statement = statement.where(col(AccessLogEntry.path).startswith(query.path_prefix,
                                                                        autoescape=True))
    total = session.exec(select(func.count()).select_from(statement.subquery())).one()
    entries = session.exec(statement.order_by(col(AccessLogEntry.id).desc())
                           .offset(offset).limit(limit)).all()
    return total, _with_patients(session, entries)


def _with_patients(session: Session, entries: Sequence[AccessLogEntry]) -> list[AccessRecord]:
    records = {entry.id: AccessRecord(entry) for entry in entries}
    if records:
        # Sorted here: an ORDER BY patient_id leads PostgreSQL to walk the whole
        # (patient_id, entry_id) index instead of looking the entries up.
        for entry_id, patient_id in sorted(session.exec(
                select(AccessLogPatient.entry_id, AccessLogPatient.patient_id)
                .where(col(AccessLogPatient.entry_id).in_(list(records)))).all()):
            records[entry_id].patient_ids.append(patient_id)
    return list(records.values())
