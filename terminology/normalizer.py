"""Map free-text phrases to lexicon concepts: exact, then fuzzy (rapidfuzz), with near-miss guards.

How a phrase is matched against the concepts of one kind:

1. Both the phrase and every surface form are preprocessed the same way: lowercased, accents,
   apostrophes, hyphens and punctuation removed, laterality/direction shorthand expanded
   (``rt`` -> ``right``, ``bilat`` -> ``bilateral``) and simple plurals singularized per word.
2. An exact hit on a preprocessed surface form scores 100.
3. Otherwise ``fuzz.token_sort_ratio`` (word order free, tolerant to typos) ranks the forms; the
   best form at or above ``threshold`` that passes the near-miss guards wins. Forms and phrases
   under five characters (abbreviations) match exactly only.
4. If nothing matched, context words are stripped and steps 2-3 run again on what is left: the
   surface forms of the other kinds (for findings: anatomy, body regions, modalities, so
   "rt upper lobe nodule" -> "nodule"), size/severity words, stop words and, except when matching
   anatomy, laterality and direction words.

The near-miss guards reject a fuzzy candidate when the phrase and the candidate use opposite words
of one group (left/right, upper/lower, ...) or when a word pair that is spelled alike carries
different medical prefixes or suffixes (hyper/hypo, hemo/pneumo, -itis/-ia, ...): "hypertension"
never becomes "hypotension", "pneumonitis" never "pneumonia".
"""

from __future__ import annotations

import re
import unicodedata
import weakref
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from terminology.lexicon import KINDS, Concept, Kind, Lexicon, load_lexicon

SHORTHAND = {
    "rt": "right", "r": "right", "lt": "left", "l": "left", "bilat": "bilateral",
    "ant": "anterior", "sup": "superior", "inf": "inferior", "lat": "lateral",
    "prox": "proximal", "dist": "distal",
}
LOCATION_WORDS = frozenset({
    "right", "left", "bilateral", "both", "upper", "lower", "mid", "anterior", "posterior",
    "superior", "inferior", "medial", "lateral", "proximal", "distal", "apical", "basilar",
    "bibasilar", "central", "peripheral", "dependent",
})
DESCRIPTOR_WORDS = frozenset({
    "small", "large", "tiny", "mild", "mildly", "moderate", "severe", "minimal", "trace",
    "new", "stable", "increasing", "decreasing", "enlarging", "possible", "probable",
    "suspected", "focal", "diffuse", "multifocal", "multiple", "scattered", "patchy",
})
STOP_WORDS = frozenset({"of", "the", "a", "an", "in", "at", "on", "within", "with", "and", "or"})
CONTRAST_GROUPS = (
    frozenset({"right", "left"}),
    frozenset({"upper", "lower", "middle"}),
    frozenset({"anterior", "posterior"}),
    frozenset({"superior", "inferior"}),
    frozenset({"medial", "lateral"}),
    frozenset({"proximal", "distal"}),
    frozenset({"internal", "external", "common"}),
    frozenset({"inner", "outer"}),
    frozenset({"acute", "chronic"}),
    frozenset({"benign", "malignant"}),
    frozenset({"cervical", "thoracic", "lumbar", "sacral"}),
    frozenset({"arterial", "venous"}),
    frozenset({"artery", "vein"}),
)
# Longest first, so "hyper" is found before "hyp..." style overlaps and "emia" before "ia".
PREFIXES = tuple(sorted({
    "hyper", "hypo", "intra", "extra", "inter", "peri", "para", "retro", "supra", "infra", "sub",
    "epi", "pre", "post", "ante", "anti", "endo", "exo", "micro", "macro", "hemo", "haemo",
    "hemato", "haemato", "hydro", "pneumo", "pyo", "chylo", "poly", "mono", "oligo",
}, key=len, reverse=True))
PREFIX_CLASS = {"haemo": "hemo", "hemato": "hemo", "haemato": "hemo"}
SUFFIXES = tuple(sorted({
    "itis", "osis", "oma", "emia", "aemia", "ia", "ectasis", "ectasia", "megaly", "pathy",
    "plasia", "trophy", "algia", "cele", "coele", "rrhage", "rrhea", "lysis", "ectomy", "ostomy",
    "otomy", "plasty", "gram", "graphy", "scopy", "iasis", "ism",
}, key=len, reverse=True))
MIN_FUZZY_LENGTH = 5
SIMILAR_WORD = 70.0
CANDIDATES = 10


@dataclass(frozen=True)
class ConceptMatch:
    """A concept found for a phrase, the score (0-100) and the surface form that matched."""

    concept: Concept
    score: float
    term: str


def _singular(word: str) -> str:
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "zes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is", "ous")):
        return word[:-1]
    return word


def preprocess(text: str) -> str:
    """The comparison key of a phrase: lowercase words, shorthand expanded, plurals singularized."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"\bb/l\b", " bilateral ", text)
    text = re.sub(r"['’]", "", text)
    words = re.sub(r"[^a-z0-9]+", " ", text).split()
    return " ".join(_singular(SHORTHAND.get(word, word)) for word in words)


def _affixes(word: str) -> tuple[str | None, str | None]:
    prefix = next((p for p in PREFIXES if word.startswith(p) and len(word) >= len(p) + 3), None)
    suffix = next((s for s in SUFFIXES if word.endswith(s) and len(word) >= len(s) + 3), None)
    return PREFIX_CLASS.get(prefix, prefix) if prefix else None, suffix


def _is_near_miss(query: str, candidate: str) -> bool:
    """True if the candidate differs from the query in a way that changes the meaning."""
    query_words, candidate_words = query.split(), candidate.split()
    for group in CONTRAST_GROUPS:
        in_query = group.intersection(query_words)
        in_candidate = group.intersection(candidate_words)
        if in_query and in_candidate and in_query != in_candidate:
            return True
    for word in query_words:
        if word in candidate_words:
            continue
        similar, similarity, _ = process.extractOne(word, candidate_words, scorer=fuzz.ratio)
        if similarity < SIMILAR_WORD:
            continue
        for ours, theirs in zip(_affixes(word), _affixes(similar), strict=True):
            if ours and theirs and ours != theirs:
                return True
    return False


class _KindIndex:
    """Preprocessed surface forms of one kind, and the context words to strip for it."""

    def __init__(self, lexicon: Lexicon, kind: Kind) -> None:
        self.exact: dict[str, tuple[str, Concept]] = {}
        for term, concept in lexicon.terms(kind):
            self.exact.setdefault(preprocess(term), (term, concept))
        self.fuzzy_keys = [key for key in self.exact if len(key) >= MIN_FUZZY_LENGTH]
        other_forms = {
            preprocess(term) for other in KINDS if other != kind for term, _ in lexicon.terms(other)
        }
        strip = (other_forms - self.exact.keys()) | DESCRIPTOR_WORDS | STOP_WORDS
        if kind != "anatomy":
            strip |= LOCATION_WORDS
        alternatives = "|".join(re.escape(form) for form in sorted(strip, key=len, reverse=True))
        self.context = re.compile(rf"\b(?:{alternatives})\b")

    def lookup(self, query: str, threshold: float) -> ConceptMatch | None:
        if query in self.exact:
            term, concept = self.exact[query]
            return ConceptMatch(concept, 100.0, term)
        if len(query) < MIN_FUZZY_LENGTH:
            return None
        candidates = process.extract(query, self.fuzzy_keys, scorer=fuzz.token_sort_ratio,
                                     score_cutoff=threshold, limit=CANDIDATES)
        for key, score, _ in candidates:
            if not _is_near_miss(query, key):
                term, concept = self.exact[key]
                return ConceptMatch(concept, float(score), term)
        return None

    def match(self, query: str, threshold: float) -> ConceptMatch | None:
        found = self.lookup(query, threshold)
        if found:
            return found
        core = " ".join(self.context.sub(" ", query).split())
        return self.lookup(core, threshold) if core and core != query else None


_INDEXES: weakref.WeakKeyDictionary[Lexicon, dict[Kind, _KindIndex]] = weakref.WeakKeyDictionary()


def _index(lexicon: Lexicon) -> dict[Kind, _KindIndex]:
    if lexicon not in _INDEXES:
        _INDEXES[lexicon] = {kind: _KindIndex(lexicon, kind) for kind in KINDS}
    return _INDEXES[lexicon]


def normalize(
    text: str,
    kind: Kind | None = "finding",
    threshold: float = 85.0,
    lexicon: Lexicon | None = None,
) -> ConceptMatch | None:
    """The best concept of ``kind`` (any kind if ``None``) for a phrase, else ``None``."""
    query = preprocess(text)
    if not query:
        return None
    indexes = _index(lexicon if lexicon is not None else load_lexicon())
    matches = [
        found
        for each in ((kind,) if kind else KINDS)
        if (found := indexes[each].match(query, threshold))
    ]
    return max(matches, key=lambda found: found.score, default=None)
