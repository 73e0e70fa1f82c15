"""Follow-up recommendations: modality, body region, interval, condition, guideline, finding."""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from spacy.language import Language
from spacy.tokens import Doc, Span

from pipelines._extensions import (
    ANATOMY_GROUP,
    BODY_REGION_GROUP,
    RECOMMENDATION_GROUP,
)
from pipelines.communication import CommunicationInfo, read_communication
from pipelines.sections import INDICATION_SECTIONS
from pipelines.sentences import is_list_marker
from terminology.vocabulary import (
    concept_region,
    modality_mentions,
    modality_region,
    region_name,
    reported_region,
)

RULES_FILE = Path(__file__).parent / "resources" / "recommendation_rules.json"
KINDS = ("imaging", "clinical_correlation", "comparison_with_prior", "consultation",
         "communication")


@dataclass(frozen=True)
class RecommendationRules:
    """The recommendation grammar (``resources/recommendation_rules.json``), compiled."""

    request: re.Pattern[str]
    masked: re.Pattern[str]
    negated: re.Pattern[str]
    kinds: dict[str, re.Pattern[str]]
    imaging: re.Pattern[str]
    correlation_requested: re.Pattern[str]
    condition: re.Pattern[str]
    sequence: re.Pattern[str]
    protocols: dict[str, str]
    protocol: re.Pattern[str]

    @classmethod
    def load(cls, path: Path = RULES_FILE) -> RecommendationRules:
        data = json.loads(path.read_text())

        def union(key: str) -> re.Pattern[str]:
            return re.compile("|".join(f"(?:{p})" for p in data[key]), re.IGNORECASE)

        protocols = {k: v for k, v in data["protocols"].items() if not k.startswith("_")}
        names = "|".join(map(re.escape, sorted(protocols, key=len, reverse=True)))
        return cls(
            request=union("request"), masked=union("masked"), negated=union("negated"),
            kinds={kind: union(kind) for kind in KINDS if kind != "imaging"},
            imaging=union("imaging"), condition=union("condition"),
            correlation_requested=union("clinical_correlation_requested"),
            sequence=union("sequence"), protocols=protocols,
            protocol=re.compile(rf"(?i)\b({names})[- ]protocol\b"))


@functools.cache
def recommendation_rules() -> RecommendationRules:
    return RecommendationRules.load()


GUIDELINES = [
    (re.compile(r"(?i)\bfleischner\b"), "Fleischner"),
    (re.compile(r"(?i)\blung[- ]?rads\b"), "Lung-RADS"),
    (re.compile(r"(?i)\bti[- ]?rads\b"), "TI-RADS"),
    (re.compile(r"(?i)\bo[- ]?rads\b"), "O-RADS"),
    (re.compile(r"(?i)\bbi[- ]?rads\b"), "BI-RADS"),
    (re.compile(r"(?i)\bli[- ]?rads\b"), "LI-RADS"),
    (re.compile(r"(?i)\bbosniak\b"), "Bosniak"),
    (re.compile(r"(?i)\b(?:acr|american college of radiology)\b"), "ACR"),
    (re.compile(r"(?i)\bsociety of radiologists in ultrasound\b|\bsru\b"), "SRU"),
]
NUMBER_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
                "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
                "eighteen": 18, "twenty-four": 24}
UNIT_DAYS = {"day": 1, "week": 7, "month": 30, "year": 365, "yr": 365, "mo": 30, "wk": 7}
_NUM = r"(\d+(?:\.\d+)?|" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + ")"
_UNIT = r"(day|week|wk|month|mo|year|yr)s?\b"
# "6 months to 1 year": a unit on each side.
INTERVAL_UNIT_RANGE = re.compile(rf"(?i)\b{_NUM}[\s-]*{_UNIT}\s*(?:-|–|to)\s*{_NUM}[\s-]*{_UNIT}")
INTERVAL_WITHIN = re.compile(
    rf"(?i)\bwithin (?:the next |the coming |a period of )?{_NUM}[\s-]*{_UNIT}")
# "at 3 and 6 months", "at 3, 9 and 24 months": from the first to the last.
INTERVAL_AT_AND = re.compile(
    rf"(?i)\bat {_NUM}(?:, {_NUM[1:-1]})*(?:,? and|, then| then) {_NUM}[\s-]*{_UNIT}")
INTERVAL_RANGE = re.compile(rf"(?i)\b{_NUM}\s*(?:-|–|to|or)\s*{_NUM}[\s-]*{_UNIT}")
INTERVAL_SINGLE = re.compile(rf"(?i)\b{_NUM}[\s-]*{_UNIT}")
ANNUAL = re.compile(r"(?i)\b(annual(?:ly)?|yearly|every year|once a year)\b")
SHORT_TERM = re.compile(r"(?i)\bshort[- ](?:term|interval)\b")


@dataclass
class RecommendationStep:
    """A later step of a sequence ("..., then CT at 18-24 months")."""

    modalities: list[str]
    interval_min_days: int | None
    interval_max_days: int | None


@dataclass
class RecommendationInfo:
    """What a recommendation sentence asks for; ``finding`` is the finding it concerns.

    ``modalities`` are the acceptable alternatives ("CT or MRI": both), ``modality`` the
    first of them; ``next_step`` the later step of a sequence."""

    kind: str
    modalities: list[str]
    body_region: str | None
    interval_min_days: int | None
    interval_max_days: int | None
    conditional: bool
    guideline: str | None
    finding: Span | None
    short_interval: bool = False
    next_step: RecommendationStep | None = None
    protocol: str | None = field(default=None, repr=False)
    # Set by ``radnlp_report_features``: the guideline source the recommendation's list item
    # cites, whether it speaks of a later step ("if stable", "then"), tissue sampling.
    cited_source: str | None = None
    later_step: bool = False
    tissue_sampling: bool = False
    communication: CommunicationInfo | None = None  # of a "communication" sentence

    @property
    def modality(self) -> str | None:
        return self.modalities[0] if self.modalities else None


def _number(text: str) -> float:
    return float(NUMBER_WORDS.get(text.lower(), text))


def _days(amount: float, unit: str) -> int:
    """Days in ``amount`` units; whole years of months count as years (12 months = 365 days)."""
    unit = unit.lower()
    if unit in {"month", "mo"} and amount >= 12 and amount % 12 == 0:
        return round(amount / 12 * UNIT_DAYS["year"])
    return round(amount * UNIT_DAYS[unit])


def parse_interval(text: str) -> tuple[int | None, int | None]:
    """(min, max) days of a stated follow-up interval; (None, None) if none.

    "within 3 months" is (0, 90); "at 3 and 6 months" (90, 180); "6 months to 1 year"
    (180, 365); "in 6-12 months" (180, 365); "annual" (365, 365)."""
    if match := INTERVAL_UNIT_RANGE.search(text):
        return (_days(_number(match.group(1)), match.group(2)),
                _days(_number(match.group(3)), match.group(4)))
    if match := INTERVAL_WITHIN.search(text):
        return 0, _days(_number(match.group(1)), match.group(2))
    for pattern in (INTERVAL_AT_AND, INTERVAL_RANGE):
        if match := pattern.search(text):
            unit = match.group(3)
            return _days(_number(match.group(1)), unit), _days(_number(match.group(2)), unit)
    if match := INTERVAL_SINGLE.search(text):
        value = _days(_number(match.group(1)), match.group(2))
        return value, value
    if ANNUAL.search(text):
        return 365, 365
    return None, None


def _is_header(sentence: Span) -> bool:
    return any(header.start <= sentence.start_char and sentence.end_char <= header.body_start
               for header in sentence.doc._.sections or ())


def masked_text(text: str) -> str:
    """``text`` with the phrases that look like requests and are not blanked (same length)."""
    return recommendation_rules().masked.sub(lambda m: " " * len(m.group(0)), text)


def recommendation_kind(sentence: Span) -> str | None:
    """The kind of action a sentence asks for, or None when it asks for none."""
    if _is_header(sentence):
        return None  # the header line itself ("RECOMMENDATION:")
    section = sentence._.section
    if section in INDICATION_SECTIONS or section in {"comparison", "technique", "exam"}:
        return None
    rules = recommendation_rules()
    text = masked_text(sentence.text)
    if not re.search(r"[a-z]{3}", text, re.I) or rules.negated.search(text):
        return None
    if rules.kinds["communication"].search(text):
        return "communication"
    in_recommendation_section = section == "recommendation" and not re.fullmatch(
        r"(?i)\W*(none|n/a)\W*", text)
    requested = in_recommendation_section or bool(rules.request.search(text))
    correlation = rules.kinds["clinical_correlation"].search(text) or (
        requested and rules.correlation_requested.search(text))
    if not requested and not correlation:
        return None
    if rules.kinds["comparison_with_prior"].search(text):
        return "comparison_with_prior"
    modalities = modality_mentions(text)
    guided = any(re.match(r"[- ]?guided", text[m.end:m.end + 8], re.I) for m in modalities)
    if rules.kinds["consultation"].search(text) and (guided or not modalities):
        return "consultation"
    # "Correlate with physical exam" names an exam that is not imaging: read the imaging
    # words outside the correlation phrase.
    rest = text[:correlation.start()] + text[correlation.end():] if correlation else text
    imaging = bool(modalities) or bool(rules.imaging.search(rest))
    if correlation and not (imaging and requested):
        # "Clinical correlation and follow-up as indicated" names no exam: imaging words
        # alone do not turn a correlation into an imaging request.
        return "clinical_correlation"
    if requested and (imaging or in_recommendation_section):
        return "imaging"
    return None


def is_recommendation(sentence: Span) -> bool:
    """A sentence that asks for a further action (any kind)."""
    return recommendation_kind(sentence) is not None


class RecommendationExtractor:
    """Marks recommendation sentences (``doc.spans`` group) with their ``RecommendationInfo``.

    Words that name an imaging protocol ("renal mass protocol MRI") are the request's, not a
    finding: findings they produced are removed from ``doc.ents``."""

    def __init__(self, nlp: Language, name: str) -> None:
        self.name = name

    def __call__(self, doc: Doc) -> Doc:
        recommendations = []
        for sentence in doc.sents:
            kind = recommendation_kind(sentence)
            if kind is None:
                continue
            span = _strip_list_marker(sentence)
            if span is None:
                continue
            span._.recommendation = self._describe(span, kind)
            recommendations.append(span)
        doc.spans[RECOMMENDATION_GROUP] = recommendations
        _drop_protocol_findings(doc)
        return doc

    def _describe(self, span: Span, kind: str) -> RecommendationInfo:
        doc = span.doc
        rules = recommendation_rules()
        text = masked_text(span.text)
        first_end = span.end_char
        next_step = None
        if match := rules.sequence.search(text):
            first_end = span.start_char + match.start()
            next_low, next_high = parse_interval(text[match.end():])
            next_step = RecommendationStep(
                modalities=_modalities(doc, span.start_char + match.end(), span.end_char),
                interval_min_days=next_low, interval_max_days=next_high)
        first_text = text[:first_end - span.start_char]
        modalities = (_modalities(doc, span.start_char, first_end)
                      if kind in ("imaging", "consultation") else [])
        protocol = rules.protocol.search(span.text)
        regions = _regions(doc, span.start_char, span.end_char)
        if protocol:  # the protocol names the exam, so its region ("pancreatic head": abdomen)
            regions = [rules.protocols[protocol.group(1).lower()]]
        if {"abdomen", "pelvis"} <= set(regions):
            body_region: str | None = "abdomen/pelvis"
        else:
            body_region = regions[0] if regions else None
        short = bool(SHORT_TERM.search(first_text))
        low, high = (None, None) if short else parse_interval(first_text)
        if next_step is not None and next_step.modalities == modalities:
            next_step.modalities = []
        guideline = next((name for pattern, name in GUIDELINES if pattern.search(text)), None)
        finding = _concerned_finding(span, body_region)
        modality = modalities[0] if modalities else None
        if body_region is None and kind in ("imaging", "consultation"):
            body_region = _implied_region(span, modality, finding)
        return RecommendationInfo(
            kind=kind, modalities=modalities, body_region=body_region, interval_min_days=low,
            interval_max_days=high, conditional=bool(rules.condition.search(first_text)),
            guideline=guideline, finding=finding, short_interval=short, next_step=next_step,
            protocol=protocol.group(0) if protocol else None,
            communication=read_communication(span.text) if kind == "communication" else None)


def _modalities(doc: Doc, start: int, end: int) -> list[str]:
    """DICOM codes of the modalities named between two offsets, in text order, no repeats
    (the terminology's reading, which knows "series 3" and "in view of" are not exams)."""
    codes: list[str] = []
    for mention in modality_mentions(doc.text[start:end]):
        if mention.value not in codes:
            codes.append(mention.value)
    return codes


def _regions(doc: Doc, start: int, end: int) -> list[str]:
    names: list[str] = []
    for span in doc.spans.get(BODY_REGION_GROUP, []):
        if start <= span.start_char and span.end_char <= end:
            concept = span._.concept
            name = reported_region(concept.name) if concept is not None else region_name(
                span.text) or span.text.lower()
            if name not in names:
                names.append(name)
    return names


def _drop_protocol_findings(doc: Doc) -> None:
    """Remove findings that are the first words of a protocol name inside a recommendation."""
    protocol = recommendation_rules().protocol
    spans = [m.span() for rec in doc.spans.get(RECOMMENDATION_GROUP, [])
             for m in protocol.finditer(doc.text, rec.start_char, rec.end_char)]
    if not spans:
        return
    doc.ents = [ent for ent in doc.ents
                if not any(start <= ent.start_char and ent.end_char <= end
                           for start, end in spans)]


def _implied_region(recommendation: Span, modality: str | None,
                    finding: Span | None) -> str | None:
    """Body region a recommendation implies without naming it: from anatomy it names, the
    modality (mammography), the finding it concerns, else the region the report's findings
    (negated ones too: "no pneumothorax" is about the chest) and anatomy mostly lie in (a chest
    radiograph report's "CT would be helpful")."""
    anatomy = [s for s in recommendation.doc.spans.get(ANATOMY_GROUP, [])
               if _inside(s, recommendation) and s._.concept is not None]
    if finding is not None and finding._.anatomy is not None:
        anatomy.append(finding._.anatomy)
    for span in anatomy:
        if region := concept_region(span._.concept):
            return region
    if region := modality_region(modality):
        return region
    if finding is not None and (region := _finding_region(finding)):
        return region
    doc = recommendation.doc
    regions = Counter(region for ent in doc.ents if ent._.section not in INDICATION_SECTIONS
                      and (region := _finding_region(ent)))
    regions.update(region for span in doc.spans.get(ANATOMY_GROUP, [])
                   if span._.section not in INDICATION_SECTIONS
                   and (region := concept_region(span._.concept)))
    return regions.most_common(1)[0][0] if regions else None


def _finding_region(finding: Span) -> str | None:
    anatomy = finding._.anatomy
    return (concept_region(anatomy._.concept) if anatomy is not None else None) or \
        concept_region(finding._.concept)


def _inside(inner: Span, outer: Span) -> bool:
    return outer.start <= inner.start and inner.end <= outer.end


def _strip_list_marker(sentence: Span) -> Span | None:
    start = sentence.start
    doc = sentence.doc
    while start < sentence.end and (doc[start].is_space or is_list_marker(doc, start)):
        start += 2 if is_list_marker(doc, start) and doc[start].text not in "-*•" else 1
    end = sentence.end
    while end > start and doc[end - 1].is_space:
        end -= 1
    return doc[start:end] if end > start else None


def _concerned_finding(recommendation: Span, body_region: str | None) -> Span | None:
    """The present finding a recommendation most plausibly concerns."""
    doc = recommendation.doc
    candidates = [ent for ent in doc.ents
                  if ent._.assertion != "absent" and not ent._.is_historical
                  and ent._.section not in INDICATION_SECTIONS
                  and ent.start < recommendation.end]
    if not candidates:
        return None
    in_sentence = [ent for ent in candidates if _inside(ent, recommendation)]
    earlier = [ent for ent in candidates if ent.end <= recommendation.start]
    for ent in in_sentence:
        same_concept = [e for e in earlier if e._.concept is not None
                        and e._.concept == ent._.concept]
        return same_concept[-1] if same_concept else ent

    def score(ent: Span) -> tuple[int, int]:
        concept = ent._.concept
        points = 2 * bool(ent._.measurements)
        if body_region and concept is not None and getattr(concept, "region", None) == body_region:
            points += 2
        if ent._.section == recommendation._.section:
            points += 1
        return points, ent.start

    return max(earlier, key=score) if earlier else None
