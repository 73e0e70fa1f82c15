"""Lexicon-driven target matching: findings, anatomy, modalities and body regions."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from spacy.language import Language
from spacy.matcher import PhraseMatcher
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


@dataclass(frozen=True)
class TargetRule:
    """One surface form to match, with its label and lexicon concept id."""

    literal: str
    label: str
    concept_id: str | None = None

    @classmethod
    def from_dict(cls, data: dict) -> TargetRule:
        if not data.get("literal") or data.get("label") not in LABEL_OF_KIND.values():
            raise ValueError(f"target rule needs a 'literal' and a known 'label': {data!r}")
        return cls(literal=data["literal"], label=data["label"], concept_id=data.get("concept_id"))

    def to_dict(self) -> dict:
        return {"literal": self.literal, "label": self.label, "concept_id": self.concept_id}


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
        self._concepts: dict[str, Concept] = {}
        self._rule_of_key: dict[str, TargetRule] = {}
        self.rules: list[TargetRule] = []
        if rules == "lexicon":
            self.add(lexicon_rules())

    def add(self, rules: Iterable[TargetRule]) -> None:
        lexicon = load_lexicon()
        by_matcher: dict[tuple[bool, str], list[Doc]] = {}
        for rule in rules:
            key = f"{rule.label}|{rule.concept_id or rule.literal.lower()}"
            if rule.concept_id and rule.concept_id not in self._concepts:
                self._concepts[rule.concept_id] = lexicon.get(rule.concept_id)
            self._rule_of_key.setdefault(key, rule)
            self.rules.append(rule)
            exact = rule.literal.isupper() and len(rule.literal) <= CASE_SENSITIVE_MAX_LEN
            by_matcher.setdefault((exact, key), []).append(self.nlp.make_doc(rule.literal))
        for (exact, key), patterns in by_matcher.items():
            (self._exact if exact else self._lower).add(key, patterns)

    def __call__(self, doc: Doc) -> Doc:
        by_label: dict[str, list[Span]] = {label: [] for label in LABEL_OF_KIND.values()}
        for match_id, start, end in [*self._lower(doc), *self._exact(doc)]:
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
