"""Lexicon-driven target matching: findings, anatomy, modalities and body regions."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spacy.language import Language
from spacy.matcher import Matcher, PhraseMatcher
from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from pipelines._extensions import ANATOMY_GROUP, BODY_REGION_GROUP, MODALITY_GROUP
from terminology import Concept, Kind, load_lexicon

FINDING = "FINDING"
ANATOMY = "ANATOMY"
MODALITY = "MODALITY"
BODY_REGION = "BODY_REGION"
LABEL_OF_KIND: dict[str, str] = {"finding": FINDING, "anatomy": ANATOMY, "modality": MODALITY,
                 "body_region": BODY_REGION}
GROUP_OF_LABEL = {ANATOMY: ANATOMY_GROUP, MODALITY: MODALITY_GROUP, BODY_REGION: BODY_REGION_GROUP}
LATERALITY_WORDS = frozenset({"left", "right", "bilateral", "both"})
# All-caps abbreviations of this length or less match case-sensitively ("PE", not "pe").
CASE_SENSITIVE_MAX_LEN = 5
# Token patterns for findings that radiologists state as a predicate ("the heart is mildly
# enlarged"), which no lexicon phrase can match.
FINDING_PATTERNS_FILE = Path(__file__).parent / "resources" / "finding_patterns.json"


@dataclass(frozen=True)
class TargetRule:
    """One surface form to match, with its label and lexicon concept id.

    ``pattern`` (a spaCy ``Matcher`` token pattern, as medspaCy's ``TargetRule`` takes) matches
    instead of ``literal`` when given; the literal then names the rule.
    """

    literal: str
    label: str
    concept_id: str | None = None
    pattern: tuple[dict[str, Any], ...] | None = None

    @classmethod
    def from_dict(cls, data: dict) -> TargetRule:
        if not data.get("literal") or data.get("label") not in LABEL_OF_KIND.values():
            raise ValueError(f"target rule needs a 'literal' and a known 'label': {data!r}")
        pattern = data.get("pattern")
        if pattern is not None and (not isinstance(pattern, list) or not pattern):
            raise ValueError(f"target rule {data['literal']!r}: 'pattern' must be a non-empty "
                             f"list of token patterns")
        return cls(literal=data["literal"], label=data["label"], concept_id=data.get("concept_id"),
                   pattern=tuple(pattern) if pattern else None)

    def to_dict(self) -> dict:
        data: dict[str, Any] = {"literal": self.literal, "label": self.label,
                                "concept_id": self.concept_id}
        if self.pattern is not None:
            data["pattern"] = list(self.pattern)
        return data


def load_finding_patterns(path: str | Path = FINDING_PATTERNS_FILE) -> list[TargetRule]:
    """The shipped predicate patterns, each checked to name a lexicon concept."""
    lexicon = load_lexicon()
    rules = [TargetRule.from_dict(item) for item in json.loads(Path(path).read_text())["rules"]]
    for rule in rules:
        if rule.concept_id is not None:
            lexicon.get(rule.concept_id)  # raises KeyError for an unknown concept
    return rules


def plural_forms(term: str) -> list[str]:
    """Regular English plurals of a term's last word ("opacity" -> "opacities")."""
    head = term.rsplit(" ", 1)[-1]
    if not head.isalpha() or head.isupper() or len(head) < 3:
        return []
    if head.endswith("y") and head[-2] not in "aeiou":
        return [term[:-1] + "ies"]
    if head.endswith(("s", "x", "z", "ch", "sh")):
        return [term + "es"] if not head.endswith(("us", "is")) else []
    return [term + "s"]


def lexicon_rules(kinds: Iterable[Kind] = ("finding", "anatomy", "modality", "body_region"),
                  ) -> Iterator[TargetRule]:
    """Target rules for every surface form (and regular plural) in the shipped lexicon."""
    lexicon = load_lexicon()
    for kind in kinds:
        for term, concept in lexicon.terms(kind):
            for literal in (term, *plural_forms(term)):
                yield TargetRule(literal, LABEL_OF_KIND[kind], concept.id)


class TargetMatcher:
    """Marks findings as ``doc.ents`` and anatomy/modality/body-region mentions as span groups."""

    def __init__(self, nlp: Language, name: str, *, rules: str | None = "lexicon") -> None:
        self.name = name
        self.nlp = nlp
        self._lower = PhraseMatcher(nlp.vocab, attr="LOWER")
        self._exact = PhraseMatcher(nlp.vocab, attr="ORTH")
        self._patterns = Matcher(nlp.vocab)
        self._concepts: dict[str, Concept] = {}
        self._rule_of_key: dict[str, TargetRule] = {}
        self.rules: list[TargetRule] = []
        if rules == "lexicon":
            self.add(lexicon_rules())
            self.add(load_finding_patterns())

    def add(self, rules: Iterable[TargetRule]) -> None:
        lexicon = load_lexicon()
        by_matcher: dict[tuple[bool, str], list[Doc]] = {}
        for rule in rules:
            key = f"{rule.label}|{rule.concept_id or rule.literal.lower()}"
            if rule.concept_id and rule.concept_id not in self._concepts:
                self._concepts[rule.concept_id] = lexicon.get(rule.concept_id)
            self._rule_of_key.setdefault(key, rule)
            self.rules.append(rule)
            if rule.pattern is not None:
                self._patterns.add(key, [list(rule.pattern)])
                continue
            exact = rule.literal.isupper() and len(rule.literal) <= CASE_SENSITIVE_MAX_LEN
            by_matcher.setdefault((exact, key), []).append(self.nlp.make_doc(rule.literal))
        for (exact, key), patterns in by_matcher.items():
            (self._exact if exact else self._lower).add(key, patterns)

    def __call__(self, doc: Doc) -> Doc:
        by_label: dict[str, list[Span]] = {label: [] for label in LABEL_OF_KIND.values()}
        matches = [*self._lower(doc), *self._exact(doc), *self._patterns(doc)]
        for match_id, start, end in matches:
            rule = self._rule_of_key[self.nlp.vocab.strings[match_id]]
            span = Span(doc, start, end, label=rule.label)
            span._.concept = self._concepts.get(rule.concept_id) if rule.concept_id else None
            by_label[rule.label].append(span)
        findings = filter_spans(by_label[FINDING])
        doc.ents = findings
        for label, group in GROUP_OF_LABEL.items():
            spans = filter_spans(by_label[label])
            if label == ANATOMY:
                spans = [_with_laterality(span) for span in spans]
            doc.spans[group] = spans
        return doc


def _with_laterality(span: Span) -> Span:
    """Extend an anatomy span over an adjacent laterality word ("left" + "kidney")."""
    start = span.start
    if start > 0 and span.doc[start - 1].lower_ in LATERALITY_WORDS:
        start -= 1
    if start == span.start:
        return span
    extended = Span(span.doc, start, span.end, label=span.label)
    extended._.concept = span._.concept
    return extended
