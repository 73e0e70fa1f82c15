"""ConText for radiology: negation, uncertainty, historical and hypothetical modifiers with scopes.

Scope policy: a modifier's scope runs from it to the end of its sentence (forward), back to the
sentence start (backward) or both, cut short by a terminator ("but", "however", ";", ...) and by
``max_scope`` tokens. Commas and "or"/"and" do not end a scope, which is what makes list negation
("No pneumothorax, effusion, or consolidation") work. Pseudo-modifiers ("no change in") win over the
shorter modifiers inside them. When several existence modifiers reach one finding, the nearest wins;
a *weak* modifier (the "or" of "atelectasis or scarring") counts only when no other existence
modifier reaches the finding, so "No pneumothorax or effusion" stays negated. Each finding keeps
the modifiers that reached it (``Span._.modifiers``), so a reader sees which trigger set what.
"""

from __future__ import annotations

import json
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from pipelines.spans import sentence_bounds

RESOURCES = Path(__file__).parent / "resources"

DIRECTIONS = frozenset({"forward", "backward", "bidirectional", "pseudo", "terminate"})
EXISTENCE_CATEGORIES = {"NEGATED_EXISTENCE": "is_negated", "POSSIBLE_EXISTENCE": "is_uncertain",
                        "RESOLVED": "is_resolved"}
FLAG_CATEGORIES = {"HISTORICAL": "is_historical", "HYPOTHETICAL": "is_hypothetical"}
CATEGORIES = frozenset({*EXISTENCE_CATEGORIES, *FLAG_CATEGORIES, "PSEUDO", "TERMINATE"})


@dataclass(frozen=True)
class ContextRule:
    """A modifier phrase, what it means and which way its scope reaches."""

    literal: str
    category: str
    direction: str
    max_scope: int | None = None
    weak: bool = False

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"context rule {self.literal!r}: direction must be one of "
                             f"{sorted(DIRECTIONS)}, got {self.direction!r}")
        if self.category not in CATEGORIES:
            raise ValueError(f"context rule {self.literal!r}: category must be one of "
                             f"{sorted(CATEGORIES)}, got {self.category!r}")
        if self.max_scope is not None and self.max_scope < 1:
            raise ValueError(f"context rule {self.literal!r}: max_scope must be >= 1")

    @classmethod
    def from_dict(cls, data: dict) -> ContextRule:
        return cls(literal=data["literal"], category=data["category"].upper(),
                   direction=data["direction"].lower(), max_scope=data.get("max_scope"),
                   weak=bool(data.get("weak", False)))

    def to_dict(self) -> dict:
        data: dict = {"literal": self.literal, "category": self.category,
                      "direction": self.direction}
        if self.max_scope is not None:
            data["max_scope"] = self.max_scope
        if self.weak:
            data["weak"] = True
        return data


@dataclass(frozen=True)
class ContextModifier:
    """A matched modifier and the token range ``[scope_start, scope_end)`` it governs."""

    rule: ContextRule
    start: int
    end: int
    scope_start: int
    scope_end: int

    def reaches(self, span: Span) -> bool:
        return self.scope_start <= span.start and span.end <= self.scope_end

    def distance(self, span: Span) -> int:
        return span.start - self.end if span.start >= self.end else self.start - span.end


def load_context_rules(path: str | Path | None = None) -> list[ContextRule]:
    """Read ConText rules from JSON (the shipped radiology rules when ``path`` is None)."""
    data = json.loads(Path(path or RESOURCES / "context_rules.json").read_text())
    return [ContextRule.from_dict(item) for item in data["rules"]]


class ConTextComponent:
    """Sets ``is_negated``, ``is_uncertain``, ``is_historical``, ``is_hypothetical`` on findings."""

    def __init__(self, nlp: Language, name: str, *, rules: str | Iterable[ContextRule] = "default",
                 max_scope: int | None = 50) -> None:
        self.name = name
        self.nlp = nlp
        self.max_scope = max_scope
        self._matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
        self._rules: dict[str, ContextRule] = {}
        self.add(load_context_rules() if rules == "default" else rules)  # type: ignore[arg-type]

    @property
    def rules(self) -> list[ContextRule]:
        return list(self._rules.values())

    def add(self, rules: Iterable[ContextRule]) -> None:
        for rule in rules:
            key = f"{rule.category}|{rule.direction}|{rule.literal.lower()}"
            if key not in self._rules:
                self._rules[key] = rule
                self._matcher.add(key, [self.nlp.make_doc(rule.literal)])

    def __call__(self, doc: Doc) -> Doc:
        modifiers = self.find_modifiers(doc)
        doc._.context_modifiers = modifiers
        # Scopes are at most ``reach`` tokens long, so only modifiers that close can reach a
        # finding: looked up by position, which keeps long reports linear.
        scoped = sorted((m for m in modifiers if m.scope_end > m.scope_start),
                        key=lambda m: m.scope_start)
        scope_starts = [m.scope_start for m in scoped]
        reach = max((m.scope_end - m.scope_start for m in scoped), default=0)
        for finding in doc.ents:
            low = bisect_left(scope_starts, finding.end - reach)
            high = bisect_right(scope_starts, finding.start)
            reaching = [m for m in scoped[low:high] if m.reaches(finding)]
            finding._.modifiers = reaching
            existence = [m for m in reaching if m.rule.category in EXISTENCE_CATEGORIES]
            existence = [m for m in existence if not m.rule.weak] or existence
            if existence:
                nearest = min(existence, key=lambda m: m.distance(finding))
                setattr(finding._, EXISTENCE_CATEGORIES[nearest.rule.category], True)
            for modifier in reaching:
                flag = FLAG_CATEGORIES.get(modifier.rule.category)
                if flag:
                    setattr(finding._, flag, True)
        return doc

    def find_modifiers(self, doc: Doc) -> list[ContextModifier]:
        """Modifiers with their scopes; pseudo and terminate matches are kept as barriers."""
        inside_target = {i for ent in doc.ents for i in range(ent.start, ent.end)}
        matches = [Span(doc, start, end, label=match_id)
                   for match_id, start, end in self._matcher(doc)
                   if not inside_target.intersection(range(start, end))]
        starts, ends = sentence_bounds(doc)
        found: list[ContextModifier] = []
        for span in filter_spans(matches):
            rule = self._rules[self.nlp.vocab.strings[span.label]]
            found.append(ContextModifier(rule, span.start, span.end, starts[span.start],
                                         ends[span.start]))
        barriers = sorted((m for m in found if m.rule.direction == "terminate"),
                          key=lambda m: m.start)
        return [self._limit_scope(m, barriers) for m in found]

    def _limit_scope(self, modifier: ContextModifier,
                     barriers: list[ContextModifier]) -> ContextModifier:
        rule = modifier.rule
        if rule.direction in {"pseudo", "terminate"}:
            return ContextModifier(rule, modifier.start, modifier.end, modifier.start,
                                   modifier.start)
        limit = rule.max_scope or self.max_scope
        scope_start, scope_end = modifier.start, modifier.end
        barrier_starts = [b.start for b in barriers]
        if rule.direction in {"forward", "bidirectional"}:
            scope_end = modifier.scope_end
            after = bisect_left(barrier_starts, modifier.end)
            if after < len(barriers) and barriers[after].start < scope_end:
                scope_end = barriers[after].start
            if limit:
                scope_end = min(scope_end, modifier.end + limit)
        if rule.direction in {"backward", "bidirectional"}:
            scope_start = modifier.scope_start
            before = bisect_right(barrier_starts, modifier.start) - 1
            while before >= 0 and barriers[before].end > modifier.start:
                before -= 1
            if before >= 0 and barriers[before].end > scope_start:
                scope_start = barriers[before].end
            if limit:
                scope_start = max(scope_start, modifier.start - limit)
        return ContextModifier(rule, modifier.start, modifier.end, scope_start, scope_end)
