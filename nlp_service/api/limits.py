"""Limits on what one request may ask of the service: search size, numbers, JSON nesting.

Each is answered 4xx with the limit it broke, before any query runs: a search that the
database would spend minutes on, or a number no column can hold, never reaches SQL.
"""

from __future__ import annotations

import re
from itertools import accumulate

# A FHIR search ANDs its parameter occurrences (a subquery each) and ORs the comma-separated
# values of one occurrence: 80 repeated identifiers took PostgreSQL 1 s, 300 over a minute,
# and SQLite refused 500 ORed values (expression depth). Real EHR searches use a handful.
MAX_SEARCH_PARAMETERS = 20
MAX_SEARCH_VALUES = 100
# JSON bodies: deeper nesting is refused before a parser recurses into it (a 50,000-deep
# array exhausted Python's recursion limit). Annotated reports nest about 6 levels.
MAX_JSON_DEPTH = 64
# Digits beyond this are refused before int() sees them (Python refuses 4,300 and more).
MAX_INTEGER_DIGITS = 18
_ASCII_DIGITS = re.compile(r"[0-9]+")
_DEPTH_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\x02\x02")
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def parse_ascii_int(value: str, *, name: str, low: int, high: int, clamp: bool = False) -> int:
    """``value`` as an integer from ``low`` to ``high``: ASCII digits only (``str.isdigit``
    takes "²" and "٣", which ``int`` then refuses or reads), else ``ValueError``. With
    ``clamp``, a larger number (of any length) means ``high``."""
    if not _ASCII_DIGITS.fullmatch(value):
        raise ValueError(f"{name}={value[:40]!r} is not an integer from {low} to {high} "
                         "(ASCII digits)")
    digits = value.lstrip("0") or "0"
    number = int(digits) if len(digits) <= MAX_INTEGER_DIGITS else None
    if clamp and (number is None or number > high):
        return high
    if number is None or not low <= number <= high:
        raise ValueError(f"{name}={value[:40]} is out of range: {low} to {high}")
    return number


def json_depth(body: bytes) -> int:
    """How deep the arrays and objects of a JSON (or JSON Lines) text nest, without parsing
    it (brackets inside strings do not count)."""
    brackets = _JSON_STRING.sub(b'""', body).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    # Each opening bracket is +1, each closing one -1; the running sum's peak is the depth.
    steps = brackets.translate(_DEPTH_STEP)
    return max(accumulate(1 if step == 1 else -1 for step in steps))


def json_depth_refusal(body: bytes) -> str | None:
    """Why ``body`` is refused for its nesting, if it is."""
    depth = json_depth(body)
    if depth > MAX_JSON_DEPTH:
        return f"JSON nested {depth} levels deep; at most {MAX_JSON_DEPTH} are accepted"
    return None
