"""What each stored FHIR resource is searchable by, and FHIR date search values."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

# Resource type -> search parameter -> FHIR search parameter type; the REST layer rejects others.
_COMMON = {"_id": "token", "_lastUpdated": "date"}
SEARCH_PARAMETERS: dict[str, dict[str, str]] = {
    "DiagnosticReport": {
        **_COMMON, "identifier": "token", "status": "token", "code": "token",
        "category": "token", "patient": "reference", "subject": "reference", "date": "date",
        "based-on": "reference", "result": "reference",
    },
    "Observation": {
        **_COMMON, "identifier": "token", "status": "token", "code": "token",
        "category": "token", "value-concept": "token", "date": "date",
        "patient": "reference", "subject": "reference", "based-on": "reference",
        "interpretation": "token",
    },
    "ServiceRequest": {
        **_COMMON, "identifier": "token", "status": "token", "intent": "token", "code": "token",
        "category": "token", "patient": "reference", "subject": "reference",
        "occurrence": "date", "authored": "date", "reason-reference": "reference",
    },
    "Patient": {**_COMMON, "identifier": "token"},
    "Task": {
        **_COMMON, "identifier": "token", "status": "token", "intent": "token",
        "patient": "reference", "subject": "reference", "focus": "reference",
        "authored-on": "date",
    },
    "Communication": {
        **_COMMON, "identifier": "token", "status": "token", "category": "token",
        "medium": "token", "patient": "reference", "subject": "reference", "sent": "date",
    },
    "Subscription": {**_COMMON, "status": "token"},
}
# Result parameters the REST layer accepts besides the search parameters.
CONTROL_PARAMETERS: dict[str, str] = {"_count": "number"}

# Search parameter -> the resource elements it reads (choice types list every variant).
_ELEMENTS: dict[str, tuple[str, ...]] = {
    "_id": ("id",), "identifier": ("identifier",), "status": ("status",),
    "intent": ("intent",), "code": ("code",), "category": ("category",),
    "value-concept": ("valueCodeableConcept",), "patient": ("subject",),
    "subject": ("subject",), "date": ("effectiveDateTime", "effectivePeriod"),
    "based-on": ("basedOn",), "result": ("result",), "authored": ("authoredOn",),
    "occurrence": ("occurrenceDateTime", "occurrencePeriod"),
    "reason-reference": ("reasonReference",),
    "interpretation": ("interpretation",), "focus": ("focus",), "medium": ("medium",),
    "sent": ("sent",), "authored-on": ("authoredOn",),
}
# Where a resource type keeps what a shared parameter reads elsewhere (Task's patient: "for").
_TYPE_ELEMENTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("Task", "patient"): ("for",), ("Task", "subject"): ("for",),
}
# Parameters that match references to one resource type only.
_TARGET_PREFIX = {"patient": "Patient/"}

DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)
_DATE = re.compile(
    r"(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d+))?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?"
)
_REFERENCE = re.compile(r"(?:\A|/)(?P<ref>[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64})(?:/_history/.*)?\Z")


@dataclass
class SearchValues:
    """Index rows of one resource: tokens, inclusive date ranges (UTC) and references."""

    tokens: list[tuple[str, str]] = field(default_factory=list)
    dates: list[tuple[str, datetime, datetime]] = field(default_factory=list)
    references: list[tuple[str, str]] = field(default_factory=list)


def search_values(resource: dict[str, Any]) -> SearchValues:
    """The values ``resource`` matches for each search parameter of its type.

    Tokens are indexed as ``system|code`` and ``code`` (identifiers as ``system|value`` and
    ``value``), case-sensitively; references as ``Type/id``."""
    resource_type = resource.get("resourceType", "")
    parameters = SEARCH_PARAMETERS.get(resource_type)
    if parameters is None:
        raise ValueError(f"no search parameters for resourceType {resource_type!r}")
    values = SearchValues()
    for name, kind in parameters.items():
        if name == "_lastUpdated":
            elements = [resource.get("meta", {}).get("lastUpdated")]
        else:
            elements = [resource.get(element) for element in
                        _TYPE_ELEMENTS.get((resource_type, name), _ELEMENTS[name])]
        for element in elements:
            if element is None:
                continue
            if kind == "token":
                values.tokens += [(name, token) for token in _unique(_tokens(element))]
            elif kind == "date":
                values.dates += [(name, low, high) for low, high in _date_ranges(element)]
            else:
                values.references += [(name, reference) for reference in _references(element)
                                      if reference.startswith(_TARGET_PREFIX.get(name, ""))]
    return values


def _unique(items: Iterator[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _tokens(element: Any) -> Iterator[str]:
    """Codes of a code, Coding, CodeableConcept or Identifier (or a list of them)."""
    if isinstance(element, list):
        for item in element:
            yield from _tokens(item)
    elif isinstance(element, str):
        yield element
    elif isinstance(element, dict):
        if "coding" in element:
            yield from _tokens(element["coding"])
            return
        code = element.get("code", element.get("value"))
        if isinstance(code, str):
            if element.get("system"):
                yield f"{element['system']}|{code}"
            yield code


def _date_ranges(element: Any) -> Iterator[tuple[datetime, datetime]]:
    """The inclusive range of a date, dateTime, instant or Period; an open end is unbounded."""
    if isinstance(element, str):
        yield parse_fhir_date_range(element)
    elif isinstance(element, dict):
        low = parse_fhir_date_range(element["start"])[0] if element.get("start") else EARLIEST
        high = parse_fhir_date_range(element["end"])[1] if element.get("end") else LATEST
        yield low, high


def _references(element: Any) -> Iterator[str]:
    """``Type/id`` of each literal Reference (display-only references have none)."""
    for item in element if isinstance(element, list) else [element]:
        match = _REFERENCE.search(item.get("reference") or "") if isinstance(item, dict) else None
        if match:
            yield match.group("ref")


def parse_fhir_date_range(value: str) -> tuple[datetime, datetime]:
    """The inclusive UTC range a FHIR date, dateTime or instant covers at its precision
    ("2026" is the whole year, "2026-03-01T10:00" the whole minute). A time without zone is
    taken as UTC."""
    match = _DATE.fullmatch(value)
    if match is None:
        raise ValueError(f"not a FHIR date: {value!r}")
    parts = match.groupdict()
    zone = _zone(parts["zone"])
    fraction = parts["fraction"] or ""
    try:
        low = datetime(
            int(parts["year"]), int(parts["month"] or 1), int(parts["day"] or 1),
            int(parts["hour"] or 0), int(parts["minute"] or 0), int(parts["second"] or 0),
            int(fraction[:6].ljust(6, "0")), tzinfo=zone,
        )
    except ValueError as error:
        raise ValueError(f"not a FHIR date: {value!r} ({error})") from error
    try:
        start = low.astimezone(UTC)
    except OverflowError as error:
        raise ValueError(f"FHIR date out of range: {value!r}") from error
    try:
        return start, (_next(low, parts) - timedelta(microseconds=1)).astimezone(UTC)
    except OverflowError:
        return start, LATEST


def _zone(zone: str | None) -> timezone:
    if zone is None or zone == "Z":
        return UTC
    sign = -1 if zone[0] == "-" else 1
    hours, minutes = int(zone[1:3]), int(zone[4:6])
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _next(low: datetime, parts: dict[str, str | None]) -> datetime:
    """The first moment after the precision step that starts at ``low``."""
    if parts["fraction"]:
        return low + timedelta(microseconds=10 ** (6 - min(len(parts["fraction"]), 6)))
    if parts["second"]:
        return low + timedelta(seconds=1)
    if parts["minute"]:
        return low + timedelta(minutes=1)
    if parts["day"]:
        return low + timedelta(days=1)
    if parts["month"]:
        return (low.replace(year=low.year + 1, month=1) if low.month == 12
                else low.replace(month=low.month + 1))
    if low.year == 9999:
        raise OverflowError("year 9999 has no successor")
    return low.replace(year=low.year + 1)


def parse_date_param(value: str) -> tuple[str, datetime, datetime]:
    """A date search value such as ``ge2026-01-01``: (prefix, low, high); prefix ``eq`` when
    none is given."""
    prefix = value[:2] if value[:2] in DATE_PREFIXES else "eq"
    date = value[2:] if value[:2] in DATE_PREFIXES else value
    # An unencoded "+" of a zone offset arrives as a space in a query string.
    date = re.sub(r" (\d{2}:\d{2})\Z", r"+\1", date)
    low, high = parse_fhir_date_range(date)
    return prefix, low, high

