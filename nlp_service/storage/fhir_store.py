"""Versioned FHIR resources: write a new version, read, read a version, history; and the
search index kept for current versions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, insert, or_, tuple_, update
from sqlmodel import Session, col, func, select

from nlp_service.fhir.mapping import fhir_datetime
from nlp_service.fhir.search import SearchValues, parse_date_param, search_values
from nlp_service.storage.models import (
    FhirResource,
    FhirSearchDate,
    FhirSearchToken,
    is_current,
)


def _content(resource: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in resource.items() if key != "meta"}


def keys_clause(type_column: Any, id_column: Any, keys: Iterable[tuple[str, str]],
                dialect: str) -> Any:
    """SQL: (type, id) is one of ``keys``, in a form that ``dialect`` looks up in a
    (type, id, ...) index key by key."""
    keys = list(keys)
    if dialect == "postgresql":  # one exact index probe per key, whatever the statistics
        return tuple_(type_column, id_column).in_(keys)
    # SQLite uses no index for a row-value IN list: one "type = ? AND id IN (...)" per type.
    ids: dict[str, list[str]] = {}
    for resource_type, resource_id in keys:
        ids.setdefault(resource_type, []).append(resource_id)
    return or_(*(and_(type_column == resource_type, id_column.in_(values))
                 for resource_type, values in ids.items()))


def current_resource(session: Session, resource_type: str,
                     resource_id: str) -> FhirResource | None:
    return session.exec(select(FhirResource).where(
        FhirResource.resource_type == resource_type, FhirResource.resource_id == resource_id,
        is_current(FhirResource))).one_or_none()


def content_search_values(resource: dict[str, Any]) -> SearchValues:
    """The search values of ``resource`` but ``_lastUpdated`` (which each version sets), for
    ``FhirWriter.put``."""
    return search_values(_content(resource))


@dataclass
class _Version:
    key: tuple[str, str]
    version_id: int
    resource: dict[str, Any]
    row_id: int | None = None  # set for a version already in the database
    search: SearchValues | None = None  # content_search_values(resource), when given


class FhirWriter:
    """Writes FHIR resource versions within one transaction, in bulk on ``flush``.

    Unchanged content makes no new version; each new version gets ``meta.versionId`` and
    ``meta.lastUpdated``; the previous version stops being current; the search index is
    rebuilt for the current version only.
    """

    def __init__(self, session: Session, now: datetime) -> None:
        self.session = session
        self.now = now
        self._dialect = session.get_bind().dialect.name
        self._latest: dict[tuple[str, str], _Version | None] = {}
        self._new: list[_Version] = []
        self._superseded: list[int] = []
        # Keys with a stored current version: only these can have search index rows.
        self._replaced: set[tuple[str, str]] = set()

    def prefetch(self, keys: Iterable[tuple[str, str]]) -> None:
        """Load the current versions of ``keys`` in one query."""
        wanted = [key for key in dict.fromkeys(keys) if key not in self._latest]
        if not wanted:
            return
        for key in wanted:
            self._latest[key] = None
        rows = self.session.exec(select(FhirResource).where(
            is_current(FhirResource), keys_clause(col(FhirResource.resource_type),
                                                  col(FhirResource.resource_id), wanted,
                                                  self._dialect)))
        for row in rows:
            self._latest[(row.resource_type, row.resource_id)] = _Version(
                (row.resource_type, row.resource_id), row.version_id, row.resource, row.id)

    def current(self, resource_type: str, resource_id: str) -> dict[str, Any] | None:
        """The latest version, written in this transaction or stored before."""
        key = (resource_type, resource_id)
        self.prefetch([key])
        latest = self._latest[key]
        return latest.resource if latest is not None else None

    def put(self, resource: dict[str, Any], search: SearchValues | None = None,
            ) -> dict[str, Any]:
        """Write ``resource`` as the next version of its id; returns the stored form.
        ``search``, its ``content_search_values``, saves computing them in the transaction."""
        key = (resource["resourceType"], resource["id"])
        self.prefetch([key])
        latest = self._latest[key]
        if latest is not None and _content(latest.resource) == _content(resource):
            return latest.resource
        version_id = 1 if latest is None else latest.version_id + 1
        # A shallow copy: stored versions, like the resources handed in, are never changed.
        stored = {**resource, "meta": {**resource.get("meta", {}), "versionId": str(version_id),
                                       "lastUpdated": fhir_datetime(self.now)}}
        if latest is not None and latest.row_id is not None:
            self._superseded.append(latest.row_id)
            self._replaced.add(key)
        version = _Version(key, version_id, stored, search=search)
        self._latest[key] = version
        self._new.append(version)
        return stored

    def flush(self) -> None:
        """Send the buffered versions and index rows to the database."""
        if not self._new:
            return
        session = self.session
        if self._superseded:
            session.exec(update(FhirResource).where(col(FhirResource.id).in_(self._superseded))
                         .values(is_current=False))
        current = {key: version for key, version in self._latest.items()
                   if version is not None and version.row_id is None}
        # Plain executemany on the connection: the ORM's bulk insert costs more per row.
        connection = session.connection()
        connection.execute(insert(FhirResource), [
            {"resource_type": v.key[0], "resource_id": v.key[1], "version_id": v.version_id,
             "is_current": current.get(v.key) is v, "last_updated": self.now,
             "resource": v.resource} for v in self._new])
        keys = list(current)
        replaced = [key for key in keys if key in self._replaced]
        for table in (FhirSearchToken, FhirSearchDate):
            if replaced:
                session.exec(delete(table).where(keys_clause(
                    col(table.resource_type), col(table.resource_id), replaced, self._dialect)))
        tokens: list[dict[str, Any]] = []
        dates: list[dict[str, Any]] = []
        for (resource_type, resource_id), version in current.items():
            if version.search is None:
                values = search_values(version.resource)
            else:  # only _lastUpdated, from meta, is left to compute
                meta = search_values({"resourceType": resource_type,
                                      "meta": version.resource["meta"]})
                values = SearchValues(version.search.tokens, meta.dates + version.search.dates,
                                      version.search.references)
            owner = {"resource_type": resource_type, "resource_id": resource_id}
            tokens += [{**owner, "param": param, "value": value[:300]}
                       for param, value in sorted(set(values.tokens) | set(values.references))]
            dates += [{**owner, "param": param, "low": low, "high": high}
                      for param, low, high in values.dates]
        if tokens:
            connection.execute(insert(FhirSearchToken), tokens)
        if dates:
            connection.execute(insert(FhirSearchDate), dates)
        self._superseded, self._new, self._replaced = [], [], set()
        for key in keys:  # stored now: the next access reads them back with their row ids
            del self._latest[key]


def read_resource(session: Session, resource_type: str, resource_id: str,
                  version_id: int | None = None) -> FhirResource | None:
    """The current version, or version ``version_id``."""
    if version_id is None:
        return current_resource(session, resource_type, resource_id)
    return session.exec(select(FhirResource).where(
        FhirResource.resource_type == resource_type, FhirResource.resource_id == resource_id,
        FhirResource.version_id == version_id)).one_or_none()


def resource_history(session: Session, resource_type: str,
                     resource_id: str) -> list[FhirResource]:
    """Every version, newest first."""
    return list(session.exec(select(FhirResource).where(
        FhirResource.resource_type == resource_type, FhirResource.resource_id == resource_id)
        .order_by(col(FhirResource.version_id).desc())))


@dataclass(frozen=True)
class Criterion:
    """One search parameter occurrence: its values are ORed; criteria are ANDed."""

    param: str
    kind: str  # token, reference, date, id, last_updated
    values: tuple[str, ...]


def _token_match(column: Any, value: str) -> Any:
    # "system|" asks for any code of that system.
    if value.endswith("|") and value.count("|") == 1:
        return column.startswith(value, autoescape=True)
    return column == value


def _date_match(low: Any, high: Any, prefix: str, plow: datetime, phigh: datetime) -> Any:
    """The FHIR date prefixes on a stored range [low, high] and a parameter range."""
    match prefix:
        case "eq":
            return and_(low >= plow, high <= phigh)
        case "ne":
            return or_(low < plow, high > phigh)
        case "gt":
            return high > phigh
        case "lt":
            return low < plow
        case "ge":
            return high >= plow
        case "le":
            return low <= phigh
        case "sa":
            return low > phigh
        case "eb":
            return high < plow
        case _:  # ap: overlapping ranges
            return and_(low <= phigh, high >= plow)


def _criterion_clause(resource_type: str, criterion: Criterion) -> Any:
    if criterion.kind == "id":
        return col(FhirResource.resource_id).in_(criterion.values)
    if criterion.kind == "last_updated":
        return or_(*(_date_match(FhirResource.last_updated, FhirResource.last_updated,
                                 *parse_date_param(value)) for value in criterion.values))
    if criterion.kind == "date":
        matches = or_(*(_date_match(FhirSearchDate.low, FhirSearchDate.high,
                                    *parse_date_param(value)) for value in criterion.values))
        owners = select(FhirSearchDate.resource_id).where(
            FhirSearchDate.resource_type == resource_type, FhirSearchDate.param == criterion.param,
            matches)
    else:
        matches = or_(*(_token_match(col(FhirSearchToken.value), value)
                        for value in criterion.values))
        owners = select(FhirSearchToken.resource_id).where(
            FhirSearchToken.resource_type == resource_type,
            FhirSearchToken.param == criterion.param, matches)
    return col(FhirResource.resource_id).in_(owners)


def search_resources(session: Session, resource_type: str, criteria: list[Criterion], *,
                     offset: int = 0, count: int = 50,
                     newest_first: bool = True) -> tuple[int, list[FhirResource]]:
    """Current resources of ``resource_type`` matching every criterion: (total, one page)."""
    query = select(FhirResource).where(FhirResource.resource_type == resource_type,
                                       col(FhirResource.is_current))
    for criterion in criteria:
        query = query.where(_criterion_clause(resource_type, criterion))
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    updated = col(FhirResource.last_updated)
    order = (updated.desc(), col(FhirResource.id).desc()) if newest_first else (
        updated.asc(), col(FhirResource.id).asc())
    rows = session.exec(query.order_by(*order).offset(offset).limit(count)).all() if count else []
    return total, list(rows)
