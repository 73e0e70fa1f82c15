"""Follow-up recommendations: modality, body region, interval, condition, guideline, finding."""

from __future__ import annotations

import re
from dataclasses import dataclass

from spacy.language import Language
from spacy.tokens import Doc, Span

from pipelines._extensions import (
    ANATOMY_GROUP,
    BODY_REGION_GROUP,
    MODALITY_GROUP,
    RECOMMENDATION_GROUP,
)
from pipelines.sections import INDICATION_SECTIONS
from pipelines.sentences import is_list_marker
from terminology import load_lexicon

TRIGGER = re.compile(
    r"""(?ix)\b(
        recommend(?:s|ed|ation|ations)?|advis(?:e|ed|able)|(?:is|are)\ suggested|
        suggest\ (?:a\ |an\ )?(?:follow|repeat|further|short|ct|mri?|ultrasound|dedicated)|
        consider(?:ed|ation)?|warrant(?:s|ed)?|
        (?:should|could|can|may|might)\ be\ (?:obtained|performed|considered|helpful|useful|done)|
        surveillance|further\ (?:evaluation|characterization|assessment)\ (?:with|by)|
        continue\ (?:[\w-]+\ ){0,3}?(?:screening|surveillance|follow[-\ ]?up|imaging)|
        (?:repeat|follow[-\ ]?up|short[-\ ](?:term|interval)\ follow[-\ ]?up)\ (?:\w+\ ){0,4}?
            (?:ct|mri?|ultrasound|us|radiograph|x-ray|imaging|exam|examination|study|mammogram|
            chest|in\ \d|in\ \w+\ (?:weeks?|months?|years?))
    )""",
)
CLINICAL_ONLY = re.compile(r"(?i)^\W*(clinical|correlat)")
CONDITIONAL = re.compile(
    r"""(?ix)\b(if|unless|should\ (?:symptoms|there|the\ patient)|
        as\ (?:clinically\ )?(?:indicated|needed|appropriate)|consider(?:ed)?|
        (?:could|can|may|might)\ be\ (?:considered|obtained|performed|helpful|useful)|
        optional|in\ the\ event|when\ clinically|depending\ on|would\ be\ helpful)\b"""
)
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
INTERVAL_RANGE = re.compile(rf"(?i)\b{_NUM}\s*(?:-|–|to|or)\s*{_NUM}[\s-]*{_UNIT}")
INTERVAL_SINGLE = re.compile(rf"(?i)\b{_NUM}[\s-]*{_UNIT}")
ANNUAL = re.compile(r"(?i)\b(annual(?:ly)?|yearly|every year|once a year)\b")
SHORT_TERM = re.compile(r"(?i)\bshort[- ](?:term|interval)\b")
MODALITY_REGIONS = {"MG": "breast"}
# Lexicon finding regions that name a body region.
FINDING_REGIONS = {"chest": "chest", "abdomen": "abdomen", "breast": "breast",
                   "thyroid": "thyroid", "neuro": "head"}


@dataclass
class RecommendationInfo:
    """What a recommendation sentence asks for; ``finding`` is the finding it concerns."""

    modality: str | None
    body_region: str | None
    interval_min_days: int | None
    interval_max_days: int | None
    conditional: bool
    guideline: str | None
    finding: Span | None


def _number(text: str) -> float:
    return float(NUMBER_WORDS.get(text.lower(), text))


def _days(amount: float, unit: str) -> int:
    """Days in ``amount`` units; whole years of months count as years (12 months = 365 days)."""
    unit = unit.lower()
    if unit in {"month", "mo"} and amount >= 12 and amount % 12 == 0:
        return round(amount / 12 * UNIT_DAYS["year"])
    return round(amount * UNIT_DAYS[unit])


def parse_interval(text: str) -> tuple[int | None, int | None]:
    """(min, max) days of a stated follow-up interval; (None, None) if none or short-term."""
    if match := INTERVAL_RANGE.search(text):
        unit = match.group(3)
        return _days(_number(match.group(1)), unit), _days(_number(match.group(2)), unit)
    if match := INTERVAL_SINGLE.search(text):
        value = _days(_number(match.group(1)), match.group(2))
        return value, value
    if ANNUAL.search(text):
        return 365, 365
    return None, None


def is_recommendation(sentence: Span) -> bool:
    """A sentence that asks for further imaging or follow-up."""
    section = sentence._.section
    for header in sentence.doc._.sections or ():
        if header.start <= sentence.start_char and sentence.end_char <= header.body_start:
            return False  # the header line itself ("RECOMMENDATION:")
    if section in INDICATION_SECTIONS or section in {"comparison", "technique", "exam"}:
        return False
    text = sentence.text
    if section == "recommendation" and re.search(r"[a-z]{3}", text, re.I):
        return not re.fullmatch(r"(?i)\W*(none|n/a|no (?:further )?follow[- ]?up[^.]*)\W*", text)
    if not TRIGGER.search(text):
        return False
    if re.search(r"(?i)\bno (?:further |additional )?(?:follow[- ]?up|imaging)\b", text):
        return False
    return not (CLINICAL_ONLY.search(text) and not re.search(r"(?i)follow|imag|ct|mri|ultra",
                                                            text))


class RecommendationExtractor:
    """Marks recommendation sentences (``doc.spans`` group) with their ``RecommendationInfo``."""

    def __init__(self, nlp: Language, name: str) -> None:
        self.name = name

    def __call__(self, doc: Doc) -> Doc:
        recommendations = []
        for sentence in doc.sents:
            if not is_recommendation(sentence):
                continue
            span = _strip_list_marker(sentence)
            if span is None:
                continue
            span._.recommendation = self._describe(span)
            recommendations.append(span)
        doc.spans[RECOMMENDATION_GROUP] = recommendations
        return doc

    def _describe(self, span: Span) -> RecommendationInfo:
        doc = span.doc
        text = span.text
        modalities = [s for s in doc.spans.get(MODALITY_GROUP, []) if _inside(s, span)]
        regions = [s for s in doc.spans.get(BODY_REGION_GROUP, []) if _inside(s, span)]
        region_ids = []
        for region in regions:
            concept = region._.concept
            name = region_code(concept.name if concept is not None else region.text)
            if name not in region_ids:
                region_ids.append(name)
        if {"abdomen", "pelvis"} <= set(region_ids):
            body_region: str | None = "abdomen/pelvis"
        else:
            body_region = region_ids[0] if region_ids else None
        modality = None
        if modalities:
            concept = modalities[0]._.concept
            modality = getattr(concept, "code", None) or (concept.name if concept else None)
        low, high = (None, None) if SHORT_TERM.search(text) else parse_interval(text)
        guideline = next((name for pattern, name in GUIDELINES if pattern.search(text)), None)
        finding = _concerned_finding(span, body_region)
        if body_region is None:
            body_region = _implied_region(span, modality, finding)
        return RecommendationInfo(
            modality=modality, body_region=body_region, interval_min_days=low,
            interval_max_days=high, conditional=bool(CONDITIONAL.search(text)),
            guideline=guideline, finding=finding,
        )


def _implied_region(recommendation: Span, modality: str | None,
                    finding: Span | None) -> str | None:
    """Body region a recommendation implies without naming it: from anatomy it names, the
    modality (mammography), or the finding it concerns."""
    lexicon = load_lexicon()
    anatomy = [s for s in recommendation.doc.spans.get(ANATOMY_GROUP, [])
               if _inside(s, recommendation) and s._.concept is not None]
    if finding is not None and finding._.anatomy is not None:
        anatomy.append(finding._.anatomy)
    for span in anatomy:
        region_id = span._.concept.region if span._.concept is not None else None
        if region_id:
            return region_code(lexicon.get(region_id).name)
    if modality in MODALITY_REGIONS:
        return MODALITY_REGIONS[modality]
    concept = finding._.concept if finding is not None else None
    return FINDING_REGIONS.get(concept.region) if concept is not None and concept.region else None


def region_code(name: str) -> str:
    """Body region as reported: "chest, abdomen and pelvis" -> "chest/abdomen/pelvis"."""
    return re.sub(r",? and |, | & ", "/", name.lower())


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
