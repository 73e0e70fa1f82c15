"""Radiology section detection: headers such as FINDINGS:, IMPRESSION:, CLINICAL HISTORY:."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from spacy.language import Language
from spacy.tokens import Doc

RESOURCES = Path(__file__).parent / "resources"

# Sections whose findings are the reason for the exam, not findings of it.
INDICATION_SECTIONS = frozenset({"history", "indication"})


@dataclass(frozen=True)
class SectionRule:
    """Header spellings that open one normalized section."""

    name: str
    literals: tuple[str, ...]

    @classmethod
    def from_dict(cls, data: dict) -> SectionRule:
        if not data.get("name") or not data.get("literals"):
            raise ValueError(f"section rule needs 'name' and 'literals': {data!r}")
        return cls(name=str(data["name"]), literals=tuple(str(x) for x in data["literals"]))

    def to_dict(self) -> dict:
        return {"name": self.name, "literals": list(self.literals)}


@dataclass(frozen=True)
class SectionSpan:
    """One section: ``start`` is the header start, ``body_start`` where its text begins."""

    name: str
    start: int
    body_start: int
    end: int


def load_section_rules(path: str | Path | None = None) -> list[SectionRule]:
    """Read section rules from a JSON file (the shipped defaults when ``path`` is None)."""
    data = json.loads(Path(path or RESOURCES / "section_rules.json").read_text())
    return [SectionRule.from_dict(item) for item in data["rules"]]


class Sectionizer:
    """Finds section headers at line starts and records ``doc._.sections``."""

    def __init__(self, nlp: Language, name: str, *, rules: str | Iterable[SectionRule] = "default",
                 require_colon: bool = False) -> None:
        self.name = name
        self.require_colon = require_colon
        self.rules: list[SectionRule] = []
        self.add(load_section_rules() if rules == "default" else list(rules))  # type: ignore[arg-type]

    def add(self, rules: Iterable[SectionRule]) -> None:
        self.rules.extend(rules)
        self._by_literal = {lit.lower(): rule.name for rule in self.rules for lit in rule.literals}
        alternatives = sorted(self._by_literal, key=len, reverse=True)
        body = "|".join(re.escape(lit).replace(r"\ ", r"[ \t]+") for lit in alternatives)
        # Header at a line start: "FINDINGS:", "Impression -", or an ALL CAPS line by itself.
        self._pattern = re.compile(
            rf"(?im)^[ \t]*(?P<header>{body})[ \t]*(?P<sep>:|-(?=[ \t])|$)[ \t]*"
        )

    def find(self, text: str) -> list[SectionSpan]:
        starts: list[tuple[str, int, int]] = []
        for match in self._pattern.finditer(text):
            header = match.group("header")
            sep = match.group("sep")
            if sep != ":" and (self.require_colon or not header.isupper()):
                continue
            name = self._by_literal[re.sub(r"\s+", " ", header.lower())]
            body_start = match.end()
            while body_start < len(text) and text[body_start] in " \t\r\n":
                body_start += 1
            starts.append((name, match.start("header"), body_start))
        sections = []
        for i, (name, start, body_start) in enumerate(starts):
            end = starts[i + 1][1] if i + 1 < len(starts) else len(text)
            sections.append(SectionSpan(name, start, body_start, end))
        return sections

    def __call__(self, doc: Doc) -> Doc:
        doc._.sections = self.find(doc.text)
        return doc
