"""Documented communication of results: who was told, how, when, and whether read-back is noted.

It reads the sentences the recommendation rules already call ``communication`` (one reading of
the text, no second detector); the patterns are data (``resources/communication_rules.json``).
Times are given as written ("14:20", a date when one is stated): only the service knows the
report's time and time zone to place them.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

RULES_FILE = Path(__file__).parent / "resources" / "communication_rules.json"
MONTHS = {name: number for number, name in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)}


@dataclass(frozen=True)
class CommunicationRules:
    """The communication grammar, compiled."""

    named_recipients: list[re.Pattern[str]]
    role_recipients: list[re.Pattern[str]]
    methods: dict[str, re.Pattern[str]]
    read_back: re.Pattern[str]
    time: re.Pattern[str]
    dates: list[re.Pattern[str]]

    @classmethod
    def load(cls, path: Path = RULES_FILE) -> CommunicationRules:
        data = json.loads(path.read_text())

        def union(patterns: list[str]) -> re.Pattern[str]:
            return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE)

        return cls(
            named_recipients=[re.compile(p) for p in data["named_recipients"]],
            role_recipients=[re.compile(p, re.IGNORECASE) for p in data["role_recipients"]],
            methods={name: union(patterns) for name, patterns in data["methods"].items()},
            read_back=union(data["read_back"]),
            time=re.compile(data["time"], re.IGNORECASE),
            dates=[re.compile(p, re.IGNORECASE) for p in data["date"]])


@functools.cache
def communication_rules() -> CommunicationRules:
    return CommunicationRules.load()


@dataclass(frozen=True)
class CommunicationInfo:
    """What a communication sentence documents; ``time`` is "HH:MM" (24 h) as stated."""

    recipient: str | None
    method: str | None
    date: date | None
    time: str | None
    read_back: bool


def read_communication(text: str) -> CommunicationInfo:
    """The recipient, method, stated date and time, and read-back of a communication sentence."""
    rules = communication_rules()
    recipient = None
    for pattern in [*rules.named_recipients, *rules.role_recipients]:
        if match := pattern.search(text):
            recipient = re.sub(r"\s+", " ", match.group("name")).strip()
            break
    # The first method the sentence names; "called" is the telephone unless another is named.
    found = [(match.start(), name) for name, pattern in rules.methods.items()
             if (match := pattern.search(text))]
    specific = [item for item in found if item[1] != "telephone"
                or not re.fullmatch(r"(?i)called", text[item[0]:item[0] + 6])]
    method = min(specific or found)[1] if found else None
    return CommunicationInfo(recipient=recipient, method=method, date=_stated_date(text, rules),
                             time=_stated_time(text, rules),
                             read_back=bool(rules.read_back.search(text)))


def _stated_time(text: str, rules: CommunicationRules) -> str | None:
    for match in rules.time.finditer(text):
        hour, minute, ampm = match.group("hour"), match.group("minute"), match.group("ampm")
        if minute is None and ampm is None:
            continue  # "at 3" alone is no clock time
        value = int(hour)
        if ampm:
            if value > 12:
                continue
            value = value % 12 + (12 if ampm.lower().startswith("p") else 0)
        return f"{value:02d}:{int(minute or 0):02d}"
    return None


def _stated_date(text: str, rules: CommunicationRules) -> date | None:
    for pattern in rules.dates:
        if match := pattern.search(text):
            groups = match.groupdict()
            year = int(groups["year"])
            year += 2000 if year < 100 else 0
            month = (MONTHS[groups["monthname"].lower()[:3]]
                     if groups.get("monthname") else int(groups["month"]))
            try:
                return date(year, month, int(groups["day"]))
            except ValueError:
                return None  # "13/45/2026": not a date
    return None
