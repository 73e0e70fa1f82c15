"""What guideline checks need beyond findings and recommendations, read once in the pipeline.

Finding descriptors (nodule texture, benign and suspicious features, cyst type, Bosniak class,
attenuation, several nodules, the organ of a generic "nodule"), the clinical context (known
cancer, immunosuppression, screening, Lung-RADS category, smoking risk, thyroid disease),
statements that no follow-up is needed and the source they cite, and three readings of each
recommendation (the guideline source its list item cites, whether it speaks of a later step,
whether it asks for tissue sampling). The words are data (``resources/report_features.json``);
``nlp_service.audit.guidelines`` turns them into verdicts with decision tables, and reads no
report text of its own.
"""

from __future__ import annotations

import functools
import json
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc, Span

from pipelines._extensions import RECOMMENDATION_GROUP
from pipelines.sections import INDICATION_SECTIONS
from pipelines.spans import sentence_of

RULES_PATH = Path(__file__).parent / "resources" / "report_features.json"
# Sections whose words describe the findings and conclusions; the others hold the clinical
# context (history, indication, exam, technique, comparison).
BODY_SECTIONS = frozenset({"findings", "impression", "recommendation", "addendum"})
# A list item or paragraph line: a blank line, a numbered or bulleted line, or a "Header:" line
# starts the next one.
ITEM_BREAK = re.compile(r"\n\s*\n|\n(?=[ \t]*(?:\d{1,2}[.)]|[-*•])\s)"
                        r"|\n(?=[ \t]*[A-Za-z][A-Za-z /&-]{0,40}:)")
REACH = 400  # characters read around a finding (sentence) and its sentence (list item)
SENTENCE_BREAK = re.compile(rf"{ITEM_BREAK.pattern}|(?<=[.!?;])\s+")


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _named(pairs: Iterable[list[str]]) -> list[tuple[str, re.Pattern[str]]]:
    return [(name, _compile(pattern)) for name, pattern in pairs]


@dataclass(frozen=True)
class ReportFeatureRules:
    """``report_features.json``, compiled."""

    negated_before: re.Pattern[str]
    texture: list[tuple[str, re.Pattern[str]]]
    benign_feature: list[tuple[str, re.Pattern[str]]]
    suspicious_feature: list[tuple[str, re.Pattern[str]]]
    item_suspicious_feature: list[tuple[str, re.Pattern[str]]]
    cyst_type: list[tuple[str, re.Pattern[str]]]
    bosniak: re.Pattern[str]
    bosniak_names: dict[str, str]
    attenuation_hu: re.Pattern[str]
    multiple: re.Pattern[str]
    ti_rads: re.Pattern[str]
    organ: list[tuple[str, re.Pattern[str]]]
    context: dict[str, re.Pattern[str]]
    lung_rads_category: re.Pattern[str]
    lung_rads_order: list[str]
    conditional_sentence: re.Pattern[str]
    low_risk: re.Pattern[str]
    high_risk: re.Pattern[str]
    no_follow_up: re.Pattern[str]
    named_source: list[tuple[str, re.Pattern[str]]]
    tissue_sampling: re.Pattern[str]
    later_step: re.Pattern[str]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReportFeatureRules:
        return cls(
            negated_before=_compile(data["negated_before"]),
            texture=_named(data["texture"]),
            benign_feature=_named(data["benign_feature"]),
            suspicious_feature=_named(data["suspicious_feature"]),
            item_suspicious_feature=_named(data["item_suspicious_feature"]),
            cyst_type=_named(data["cyst_type"]),
            bosniak=_compile(data["bosniak"]),
            bosniak_names=dict(data["bosniak_names"]),
            attenuation_hu=_compile(data["attenuation_hu"]),
            multiple=_compile(data["multiple"]),
            ti_rads=_compile(data["ti_rads"]),
            organ=_named(data["organ"]),
            context={key: _compile(pattern) for key, pattern in data["context"].items()},
            lung_rads_category=_compile(data["lung_rads_category"]),
            lung_rads_order=[str(c) for c in data["lung_rads_order"]],
            conditional_sentence=_compile(data["conditional_sentence"]),
            low_risk=_compile(data["low_risk"]),
            high_risk=_compile(data["high_risk"]),
            no_follow_up=_compile(data["no_follow_up"]),
            named_source=_named(data["named_source"]),
            tissue_sampling=_compile(data["tissue_sampling"]),
            later_step=_compile(data["later_step"]),
        )


@functools.cache
def report_feature_rules() -> ReportFeatureRules:
    return ReportFeatureRules.from_dict(json.loads(RULES_PATH.read_text()))


@dataclass(frozen=True)
class Descriptor:
    """A word describing a finding: ``name`` is what it describes ("texture",
    "benign_feature", ...), ``value`` the reading ("part-solid", "calcified", "II")."""

    name: str
    value: str
    text: str
    start_char: int
    end_char: int


@dataclass(frozen=True)
class ContextMention:
    """Where the clinical context says something (``start``/``end`` None when it was read
    from text outside the report, such as the procedure name)."""

    text: str
    start: int | None = None
    end: int | None = None


@dataclass
class ClinicalContextInfo:
    cancer: ContextMention | None = None
    immunosuppression: ContextMention | None = None
    screening: ContextMention | None = None
    thyroid_disease: ContextMention | None = None
    lung_rads: str | None = None
    smoking_risk: str | None = None  # "low" | "high"


@dataclass(frozen=True)
class DeclinedFollowUp:
    """A statement that no follow-up is needed, and the guideline source its item cites."""

    text: str
    start_char: int
    end_char: int
    source: str | None = None


class TextItems:
    """The report text with its list items indexed once."""

    def __init__(self, text: str) -> None:
        self.text = text
        breaks = [m.span() for m in ITEM_BREAK.finditer(text)]
        self._starts = [low for low, _ in breaks]
        self._ends = [high for _, high in breaks]

    def item(self, start: int, end: int) -> tuple[int, int]:
        """Bounds of the list item or paragraph line around [start, end)."""
        before = bisect_right(self._ends, start)
        after = bisect_left(self._starts, end)
        return (self._ends[before - 1] if before else 0,
                self._starts[after] if after < len(self._starts) else len(self.text))


def _not_negated(pattern: re.Pattern[str], text: str, offset: int = 0,
                 rules: ReportFeatureRules | None = None) -> Iterable[re.Match[str]]:
    """Matches of ``pattern`` in ``text`` that no "no"/"without" just before negates."""
    rules = rules or report_feature_rules()
    for match in pattern.finditer(text):
        if not rules.negated_before.search(text[max(0, match.start() - 40):match.start()]):
            yield match


def _first_mention(pattern: re.Pattern[str], text: str, offset: int | None
                   ) -> ContextMention | None:
    for match in _not_negated(pattern, text):
        if offset is None:
            return ContextMention(match.group())
        return ContextMention(match.group(), offset + match.start(), offset + match.end())
    return None


def read_clinical_context(text: str, *, offset: int | None = None) -> ClinicalContextInfo:
    """The clinical context stated in ``text`` (the context sections of a report, or a
    procedure name: ``offset`` None keeps no positions)."""
    rules = report_feature_rules()
    cancer = None
    not_cancer = [m.span() for m in rules.context["not_cancer"].finditer(text)]
    for match in _not_negated(rules.context["cancer"], text):
        if not any(low <= match.start() < high for low, high in not_cancer):
            cancer = ContextMention(match.group(), *(
                (offset + match.start(), offset + match.end()) if offset is not None else ()))
            break
    return ClinicalContextInfo(
        cancer=cancer,
        immunosuppression=_first_mention(rules.context["immunosuppression"], text, offset),
        screening=_first_mention(rules.context["screening"], text, offset),
        thyroid_disease=_first_mention(rules.context["thyroid_disease"], text, offset),
        smoking_risk=smoking_risk(text))


def smoking_risk(text: str) -> str | None:
    """Risk as stated (a stated high risk wins over a stated low risk); conditional sentences
    ("if the patient is high risk") do not count."""
    rules = report_feature_rules()
    stated = set()
    for sentence in SENTENCE_BREAK.split(text):
        if not sentence or rules.conditional_sentence.search(sentence):
            continue
        if rules.low_risk.search(sentence):
            stated.add("low")
        if rules.high_risk.search(rules.low_risk.sub("", sentence)):
            stated.add("high")
    return "high" if "high" in stated else "low" if stated else None


def named_source(text: str, skip: Iterable[tuple[int, int]] = ()) -> tuple[str, str] | None:
    """The first guideline source ``text`` names, outside the ``skip`` ranges: (canonical
    name, the words used)."""
    skipped = list(skip)
    found = [(match.start(), name, match.group()) for name, pattern in
             report_feature_rules().named_source for match in pattern.finditer(text)
             if not any(low <= match.start() < high for low, high in skipped)]
    return min(found)[1:] if found else None


def _negated(text: str, start: int, rules: ReportFeatureRules) -> bool:
    return bool(rules.negated_before.search(text[max(0, start - 40):start]))


@functools.cache
def _combined(category: str, named: tuple[tuple[str, re.Pattern[str]], ...] | list[Any]
              ) -> tuple[dict[str, str], re.Pattern[str]]:
    """One pass for a whole list: each pattern a named group inside a lookahead, so the words
    of one value may lie inside another's ("calcified" inside "stable ... for 3 years")."""
    values = {f"v{i}": value for i, (value, _) in enumerate(named)}
    alternatives = "|".join(f"(?P<v{i}>{pattern.pattern})"
                            for i, (_, pattern) in enumerate(named))
    return values, re.compile(f"(?=(?:{alternatives}))", re.IGNORECASE)


@dataclass(frozen=True)
class _Hit:
    """One match of a descriptor pattern in the report (``group``: its captured value)."""

    start: int
    end: int
    value: str
    text: str
    negated: bool
    group: str | None = None


class _DocHits:
    """Every descriptor word of a report, found once and looked up by position: each finding
    reads the words of its own sentence and list item."""

    VALUED = ("texture", "benign_feature", "suspicious_feature", "item_suspicious_feature",
              "cyst_type", "organ")
    SINGLE = ("bosniak", "attenuation_hu", "multiple", "ti_rads")

    def __init__(self, text: str, rules: ReportFeatureRules) -> None:
        self._order: dict[str, int] = {}
        self._hits: dict[str, tuple[list[int], list[_Hit]]] = {}
        for category in self.VALUED:
            named: list[tuple[str, re.Pattern[str]]] = getattr(rules, category)
            self._order.update((value, i) for i, (value, _) in enumerate(named))
            values, combined = _combined(category, tuple(named))
            hits = []
            for match in combined.finditer(text):
                group = match.lastgroup or ""
                start, end = match.span(group)
                hits.append(_Hit(start, end, values[group], match.group(group),
                                 _negated(text, start, rules)))
            self._index(category, hits)
        for category in self.SINGLE:
            pattern: re.Pattern[str] = getattr(rules, category)
            self._index(category, [
                _Hit(m.start(), m.end(), category, m.group(), _negated(text, m.start(), rules),
                     m.group(1) if pattern.groups else None)
                for m in pattern.finditer(text)])

    def _index(self, category: str, hits: list[_Hit]) -> None:
        hits.sort(key=lambda h: h.start)
        self._hits[category] = ([h.start for h in hits], hits)

    def within(self, category: str, *, low: int, high: int) -> list[_Hit]:
        """The hits of ``category`` that start in [low, high), in text order."""
        starts, hits = self._hits[category]
        return hits[bisect_left(starts, low):bisect_left(starts, high)]

    def preferred(self, hits: Iterable[_Hit]) -> _Hit | None:
        """The hit whose value comes first in its list (texture: part-solid before solid)."""
        return min(hits, key=lambda h: (self._order[h.value], h.start), default=None)

    @staticmethod
    def first_per_value(hits: Iterable[_Hit]) -> list[_Hit]:
        firsts: dict[str, _Hit] = {}
        for hit in hits:
            firsts.setdefault(hit.value, hit)
        return list(firsts.values())


class ReportFeatures:
    """Sets ``Span._.descriptors`` on findings, ``Doc._.clinical_context``,
    ``Doc._.declined_follow_up``, and the guideline readings of each recommendation."""

    def __init__(self, nlp: Language, name: str) -> None:
        self.name = name

    def __call__(self, doc: Doc) -> Doc:
        rules = report_feature_rules()
        words = doc.text  # built from the tokens on each access: read once
        text = TextItems(words)
        ents = list(doc.ents)
        ent_starts = [ent.start_char for ent in ents]
        hits = _DocHits(words, rules) if ents else None
        for ent in ents:
            assert hits is not None
            ent._.descriptors = self._descriptors(ent, text, hits, ents, ent_starts)
        doc._.clinical_context = self._context(doc, words, rules)
        requests = [(span.start_char, span.end_char)
                    for span in doc.spans.get(RECOMMENDATION_GROUP, [])]
        declined = []
        for match in rules.no_follow_up.finditer(words):
            statement = doc.char_span(*match.span(), alignment_mode="expand")
            source = self._source(
                text, sentence_of(statement) if statement is not None else None, *match.span(),
                others=requests)
            declined.append(DeclinedFollowUp(match.group(), match.start(), match.end(),
                                             source[0] if source else None))
        doc._.declined_follow_up = declined
        for span in doc.spans.get(RECOMMENDATION_GROUP, []):
            info = span._.recommendation
            source = self._source(text, span, span.start_char, span.end_char,
                                  others=[r for r in requests if r != (span.start_char,
                                                                       span.end_char)])
            span._.recommendation = replace(
                info, cited_source=source[1] if source else None,
                later_step=bool(rules.later_step.search(span.text)),
                tissue_sampling=bool(rules.tissue_sampling.search(span.text)))
        return doc

    @staticmethod
    def _source(text: TextItems, sentence: Span | None, start: int, end: int, *,
                others: list[tuple[int, int]]) -> tuple[str, str] | None:
        """The guideline source cited in the sentence, else in its list item outside the
        other recommendations ("Recommend CT per Fleischner. Findings were discussed with
        Dr. X." cites Fleischner for the CT, not for the call)."""
        if sentence is not None and (source := named_source(sentence.text)):
            return source
        low, high = text.item(start, end)
        return named_source(text.text[low:high],
                            [(a - low, b - low) for a, b in others if a < high and low < b])

    @staticmethod
    def _descriptors(ent: Span, text: TextItems, hits: _DocHits, ents: list[Span],
                     ent_starts: list[int]) -> list[Descriptor]:
        # The finding's sentence and list item, each capped: one endless sentence or line
        # must not make every finding read the whole report.
        sentence = sentence_of(ent)
        low = max(sentence.start_char, ent.start_char - REACH)
        high = min(sentence.end_char, ent.end_char + REACH)
        item_low, item_high = text.item(ent.start_char, ent.end_char)
        item_low = min(max(item_low, low - REACH), low)
        item_high = max(min(item_high, high + REACH), high)
        found: list[Descriptor] = []

        def add(name: str, hit: _Hit, value: str | None = None) -> None:
            found.append(Descriptor(name, value or hit.value, hit.text, hit.start, hit.end))

        def nearest(hit: _Hit) -> bool:
            """Words of the list item outside the finding's sentence describe it only when
            no other finding stands between them ("Thyroid: 8 mm nodule. Enlarged cervical
            nodes." but not the renal cyst's Bosniak class for the adrenal nodule before it)."""
            if low <= hit.start < high:
                return True
            between = ((ent.end_char, hit.start) if hit.start >= ent.end_char
                       else (hit.end, ent.start_char))
            first = bisect_left(ent_starts, between[0])
            return not any(other.end_char <= between[1]
                           for other in ents[first:bisect_left(ent_starts, between[1])])

        in_sentence = functools.partial(hits.within, low=low, high=high)
        if texture := hits.preferred(in_sentence("texture")):
            add("texture", texture)
        for name, category, scope in (
                ("benign_feature", "benign_feature", in_sentence),
                ("suspicious_feature", "suspicious_feature", in_sentence),
                ("suspicious_feature", "item_suspicious_feature",
                 functools.partial(hits.within, low=item_low, high=item_high))):
            for hit in hits.first_per_value(h for h in scope(category)
                                            if not h.negated and nearest(h)):
                if not any(d.name == name and d.value == hit.value for d in found):
                    add(name, hit)
        if cyst_type := hits.preferred(h for h in in_sentence("cyst_type") if not h.negated):
            add("cyst_type", cyst_type)
        rules = report_feature_rules()
        bosniak = next((h for h in hits.within("bosniak", low=item_low, high=item_high)
                        if nearest(h)), None)
        if bosniak is not None:
            value = (bosniak.group or "").upper()
            add("bosniak", bosniak, rules.bosniak_names.get(value, value))
        for hit in in_sentence("attenuation_hu"):
            add("attenuation_hu", hit, hit.group)
        for category in ("multiple", "ti_rads"):
            if first := next(iter(in_sentence(category)), None):
                add(category, first)
        # The organ of a generic "nodule" or "cyst": its anatomy's, else its sentence's.
        anatomy = ent._.anatomy
        if anatomy is not None:
            name = anatomy._.concept.name if anatomy._.concept is not None else anatomy.text
            organ = next((value for value, pattern in rules.organ if pattern.search(name)),
                         None)
            if organ is not None:
                found.append(Descriptor("organ", organ, anatomy.text, anatomy.start_char,
                                        anatomy.end_char))
                return found
        if organ_hit := hits.preferred(in_sentence("organ")):
            add("organ", organ_hit)
        return found

    @staticmethod
    def _context(doc: Doc, text: str, rules: ReportFeatureRules) -> ClinicalContextInfo:
        sections = doc._.sections or []
        if not any(s.name in BODY_SECTIONS for s in sections):
            parts = [(0, text)]
        else:
            first = min(s.start for s in sections)
            parts = [(0, text[:first])] + [(s.start, text[s.start:s.end])
                                           for s in sections if s.name not in BODY_SECTIONS]
        readings = [read_clinical_context(part, offset=offset) for offset, part in parts]
        context = ClinicalContextInfo()
        for key in ("cancer", "immunosuppression", "screening", "thyroid_disease"):
            setattr(context, key, next((getattr(r, key) for r in readings if getattr(r, key)),
                                       None))
        # Cancer named as a finding of the history or indication counts first.
        for ent in doc.ents:
            concept = ent._.concept
            name = concept.name if concept is not None else ent.text
            if ((ent._.section in INDICATION_SECTIONS or ent._.is_historical)
                    and ent._.assertion != "absent" and rules.context["cancer"].search(name)
                    and not rules.context["not_cancer"].search(sentence_of(ent).text)):
                context.cancer = ContextMention(ent.text, ent.start_char, ent.end_char)
                break
        if context.screening is None and (
                match := rules.lung_rads_category.search(text)):
            context.screening = ContextMention(match.group(), match.start(), match.end())
        categories = {m.group(1).upper() for m in rules.lung_rads_category.finditer(text)}
        context.lung_rads = max(categories, key=rules.lung_rads_order.index) if categories \
            else None
        context.smoking_risk = smoking_risk(text)
        return context
