"""One vocabulary of imaging modalities and body regions, for every layer of the service.

Intake (the exam's modality and region), the pipeline (what a recommendation asks for), the
audit (which exam closes which request) and FHIR all name modalities and regions through this
module, so an exam and the recommendation it answers compare equal. Everything is read from
the lexicon files (``resources/modalities.jsonl``, ``body_regions.jsonl``, ``anatomy.jsonl``):

- a modality is its DICOM code (``code``: CT, MR, US, XR, MG, NM, PT, RF, XA; XR stands for the
  DICOM codes CR and DX), named by any surface form of a modality concept or by the code itself;
- a body region is reported by its concept name with "and" and commas turned into "/"
  ("chest, abdomen and pelvis" -> "chest/abdomen/pelvis"), named by the region's surface forms
  or by an anatomy word whose concept has that region ("renal" -> kidney, "rib" -> chest).

Matching is leftmost-longest on word boundaries over the text with punctuation folded to
spaces ("PET/CT", "PET-CT" and "PET CT" are one form), case-insensitive except for all-caps
abbreviations of up to five characters ("US", "CR"), which match case-sensitively as in the
pipeline's target matcher, unless the text has no capital letter at all ("us abdomen").
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from terminology.lexicon import Concept, load_lexicon

# Words procedure names shorten ("CT ABD & PELV W/O"), read as the full word.
ABBREVIATIONS = {"abd": "abdomen", "pelv": "pelvis"}
# Finding regions (findings.jsonl) that are not body region ids but imply one.
FINDING_REGION_NAMES = {"neuro": "head"}
# Codes of the vocabulary that are not DICOM defined terms: XR is our umbrella for CR and DX.
NON_DICOM_CODES = frozenset({"XR"})
# All-caps surface forms up to this length match case-sensitively ("US", not "us").
CASE_SENSITIVE_MAX_LEN = 5
# Word uses that name no exam: an image reference ("series 3, image 45") and idioms.
NOT_AN_EXAM = re.compile(r"(?i)\bseries\s*(?:#|no\.?)?\s*\d|\bin view of\b|\bfield of view\b|"
                         r"\b(?:let|tell|call|contact|page|notify|inform)\s+us\b")
_WORD = re.compile(r"[A-Za-z0-9]+|&")


@dataclass(frozen=True)
class Mention:
    """A modality or body region named in a text: offsets into it, the words, the value (the
    DICOM code or the region name)."""

    start: int
    end: int
    text: str
    value: str


@dataclass(frozen=True)
class _Forms:
    """Surface forms of one kind, compiled for leftmost-longest matching."""

    values: dict[str, str]  # normalized lowercase form -> value
    strict: re.Pattern[str]  # short all-caps forms case-sensitive
    relaxed: re.Pattern[str]  # everything case-insensitive (for text without capitals)

    @classmethod
    def build(cls, forms: Iterable[tuple[str, str]]) -> _Forms:
        values: dict[str, str] = {}
        sensitive: dict[str, set[str]] = {}  # lowercase key -> exact spellings, if case matters
        insensitive: set[str] = set()
        for form, value in forms:
            normalized = _normalize(form)[0]
            key = normalized.lower()
            if not key:
                continue
            values.setdefault(key, value)
            if form.isupper() and len(form) <= CASE_SENSITIVE_MAX_LEN:
                sensitive.setdefault(key, set()).add(normalized)
            else:
                insensitive.add(key)
        keys = sorted(values, key=lambda k: (-len(k), k))
        strict = []
        for key in keys:
            if key in insensitive or key not in sensitive:
                strict.append(f"(?i:{re.escape(key)})")
            else:
                strict.extend(re.escape(spelling) for spelling in sorted(sensitive[key]))
        relaxed = [re.escape(key) for key in keys]
        return cls(values, _alternation(strict), _alternation(relaxed, flags=re.IGNORECASE))

    def mentions(self, text: str | None) -> Iterator[Mention]:
        if not text:
            return
        normalized, starts, ends = _normalize(text)
        pattern = self.strict if any(c.isupper() for c in normalized) else self.relaxed
        excluded = [m.span() for m in NOT_AN_EXAM.finditer(text)]
        for match in pattern.finditer(normalized):
            start, end = starts[match.start()], ends[match.end() - 1]
            if any(s < end and start < e for s, e in excluded):
                continue
            yield Mention(start, end, text[start:end], self.values[match.group(0).lower()])


def _alternation(alternatives: list[str], flags: int = 0) -> re.Pattern[str]:
    return re.compile(r"(?<![A-Za-z0-9])(?:" + "|".join(alternatives) + r")(?![A-Za-z0-9])",
                      flags)


def _normalize(text: str) -> tuple[str, list[int], list[int]]:
    """Words joined by single spaces ("&" read as "and", ABBREVIATIONS expanded), with the
    start and end offset in ``text`` of the word each normalized character belongs to."""
    words: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for match in _WORD.finditer(text):
        word = match.group(0)
        word = "and" if word == "&" else ABBREVIATIONS.get(word.lower(), word)
        if words:
            words.append(" ")
            starts.append(match.start())
            ends.append(match.start())
        words.append(word)
        starts.extend([match.start()] * len(word))
        ends.extend([match.end()] * len(word))
    return "".join(words), starts, ends


def _plurals(form: str) -> list[str]:
    """Regular English plurals of a form's last word ("radiograph" -> "radiographs"); the
    pipeline's target matcher adds the same."""
    head = form.rsplit(" ", 1)[-1]
    if not head.isalpha() or head.isupper() or len(head) < 3:
        return []
    if head.endswith("y") and head[-2] not in "aeiou":
        return [form[:-1] + "ies"]
    if head.endswith(("s", "x", "z", "ch", "sh")):
        return [form + "es"] if not head.endswith(("us", "is")) else []
    return [form + "s"]


def _with_plurals(concept: Concept) -> Iterator[str]:
    for form in concept.surface_forms:
        yield form
        yield from _plurals(form)


def reported_region(name: str) -> str:
    """A body region concept's name as the service reports it: "chest, abdomen and pelvis"
    -> "chest/abdomen/pelvis", "head and neck" -> "head/neck"."""
    return re.sub(r",? and |, | & ", "/", name.lower())


@functools.cache
def _regions_by_id() -> dict[str, Concept]:
    return {concept.id: concept for concept in load_lexicon().of_kind("body_region")}


@functools.cache
def _modality_forms() -> _Forms:
    concepts = load_lexicon().of_kind("modality")
    forms = [(form, concept.code) for concept in concepts if concept.code
             for form in (*_with_plurals(concept), concept.code)]
    return _Forms.build(forms)


@functools.cache
def _region_forms() -> _Forms:
    """Body region forms first (an organ that is both a region and anatomy is the region),
    then anatomy forms, valued by their concept's region."""
    lexicon = load_lexicon()
    forms = [(form, reported_region(concept.name))
             for concept in lexicon.of_kind("body_region") for form in _with_plurals(concept)]
    for concept in lexicon.of_kind("anatomy"):
        region = concept_region(concept)
        if region:
            forms.extend((form, region) for form in _with_plurals(concept))
    return _Forms.build(forms)


@functools.cache
def _modalities_by_code() -> dict[str, list[Concept]]:
    by_code: dict[str, list[Concept]] = {}
    for concept in load_lexicon().of_kind("modality"):
        if concept.code:
            by_code.setdefault(concept.code, []).append(concept)
    return by_code


def _codes() -> frozenset[str]:
    return frozenset(_modalities_by_code())


# --- modalities ------------------------------------------------------------------------------


def modality_mentions(text: str | None) -> list[Mention]:
    """Every modality named in ``text``, in text order (values are DICOM codes)."""
    return list(_modality_forms().mentions(text))


def modality_codes(text: str | None) -> list[str]:
    """DICOM codes of every modality named, in text order, without repeats:
    "adrenal protocol CT or chemical shift MRI" -> ["CT", "MR"]."""
    codes: list[str] = []
    for mention in _modality_forms().mentions(text):
        if mention.value not in codes:
            codes.append(mention.value)
    return codes


def modality_code(text: str | None) -> str | None:
    """The DICOM modality code for any wording or code ("CT angiogram" -> "CT", "MRI" -> "MR",
    "PET/CT" -> "PT", "DX" -> "XR", "views" -> "XR", "upper GI series" -> "RF"): the first
    modality the text names, ``None`` when it names none."""
    if not text:
        return None
    if text.strip().upper() in DICOM_MODALITY_CODES:
        return text.strip().upper()
    return next((m.value for m in _modality_forms().mentions(text)), None)


def modality_display(code: str | None) -> str | None:
    """The modality's display name ("MR" -> "magnetic resonance imaging"); any wording works."""
    concepts = _modalities_by_code().get(modality_code(code) or "")
    return concepts[0].name if concepts else None


def modality_region(code: str | None) -> str | None:
    """The body region a modality implies on its own ("MG" -> "breast"), else ``None``."""
    for concept in _modalities_by_code().get(modality_code(code) or "", []):
        if concept.region:
            return concept_region(concept)
    return None


def is_dicom_code(code: str | None) -> bool:
    """Whether a vocabulary code is a DICOM Modality (0008,0060) defined term (XR is not)."""
    return code in DICOM_MODALITY_CODES and code not in NON_DICOM_CODES


# --- body regions ----------------------------------------------------------------------------


def region_mentions(text: str | None) -> list[Mention]:
    """Every body region named in ``text`` (by a region's or an anatomy word), in text order."""
    return list(_region_forms().mentions(text))


def region_names(text: str | None) -> list[str]:
    """Body region names of every region named, in text order, without repeats."""
    names: list[str] = []
    for mention in _region_forms().mentions(text):
        if mention.value not in names:
            names.append(mention.value)
    return names


def region_name(text: str | None) -> str | None:
    """The first body region ``text`` names, as the service reports it ("abdomen and pelvis"
    -> "abdomen/pelvis", "renal" -> "kidney", "knee" -> "lower extremity"), else ``None``."""
    return next((m.value for m in _region_forms().mentions(text)), None)


def concept_region(concept: Concept | None) -> str | None:
    """The body region name of a lexicon concept: a body region's own, an anatomy concept's
    region, a finding's region where it names one ("neuro" -> "head"; "msk" none), a
    modality's implied region."""
    if concept is None:
        return None
    if concept.kind == "body_region":
        return reported_region(concept.name)
    if not concept.region:
        return None
    region = _regions_by_id().get(concept.region)
    if region is not None:
        return reported_region(region.name)
    return FINDING_REGION_NAMES.get(concept.region)


def region_concept(name: str | None) -> Concept | None:
    """The body region concept of a region as reported, or as worded ("abdomen/pelvis",
    "renal"; an anatomy word gives its region's concept)."""
    reported = name if name in REGION_NAMES else region_name(name)
    return next((c for c in _regions_by_id().values() if reported_region(c.name) == reported),
                None)


@functools.cache
def _parents() -> dict[str, str]:
    """Reported region name -> its parent's (lexicon ``parent``: kidney -> abdomen)."""
    regions = _regions_by_id()
    return {reported_region(c.name): reported_region(regions[c.parent].name)
            for c in regions.values() if c.parent in regions}


def region_within(inner: str | None, outer: str | None) -> bool:
    """Whether region ``inner`` lies within ``outer`` (or is it): by the lexicon's parents
    ("kidney" within "abdomen", "thyroid" within "head/neck") and by the parts of combined
    regions ("abdomen" within "abdomen/pelvis", "abdomen/pelvis" within
    "chest/abdomen/pelvis")."""
    if not inner or not outer:
        return False
    parents = _parents()
    outer_parts = set(outer.split("/"))

    def inside(part: str) -> bool:
        seen: set[str] = set()
        while part not in seen:
            if part in outer_parts:
                return True
            seen.add(part)
            part = parents.get(part, part)
        return False

    return inner == outer or all(inside(part) for part in inner.split("/"))


# The modality codes the vocabulary knows (DICOM codes, plus XR for CR and DX), and every body
# region name it reports.
DICOM_MODALITY_CODES: frozenset[str] = _codes()
REGION_NAMES: frozenset[str] = frozenset(reported_region(c.name)
                                         for c in _regions_by_id().values())
