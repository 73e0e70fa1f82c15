"""Attach anatomy, laterality and change status to findings from their sentence neighbourhood."""

from __future__ import annotations

from bisect import bisect_left

from spacy.language import Language
from spacy.tokens import Doc, Span

from pipelines._extensions import ANATOMY_GROUP
from pipelines.spans import sentence_bounds

LATERALITY = {"left": "left", "right": "right", "bilateral": "bilateral",
              "bilaterally": "bilateral", "both": "bilateral", "rt": "right", "lt": "left",
              "bibasilar": "bilateral", "biapical": "bilateral"}
CHANGE_WORDS = {
    "new": "new", "newly": "new", "interval development": "new", "developing": "new",
    "stable": "stable", "unchanged": "stable", "no change": "stable",
    "no significant change": "stable", "no interval change": "stable", "similar": "stable",
    "redemonstrated": "stable", "persistent": "stable", "again seen": "stable",
    "increased": "increased", "increasing": "increased", "enlarging": "increased",
    "larger": "increased", "worsening": "increased",
    "worsened": "increased", "progressed": "increased", "progression": "increased",
    "decreased": "decreased", "decreasing": "decreased", "smaller": "decreased",
    "improved": "decreased", "improving": "decreased", "improvement": "decreased",
    "diminished": "decreased", "regression": "decreased",
    "resolved": "resolved", "resolution": "resolved", "resolving": "decreased",
    "cleared": "resolved", "no longer": "resolved",
}


CLAUSE_ENDS = frozenset({";", ":", "but", "however", "and", "with"})
CHANGE_WINDOW = 12  # tokens either side of a finding searched for change words


def _neighbourhoods(doc: Doc) -> list[tuple[int, int]]:
    """Per finding, the token range around it that does not cross a neighbouring finding of
    its sentence or, after it, a clause end."""
    starts, ends = sentence_bounds(doc)
    ents = list(doc.ents)
    ranges = []
    for k, finding in enumerate(ents):
        start, end = starts[finding.start], ends[finding.start]
        if k > 0 and ents[k - 1].end > start:
            start = ents[k - 1].end
        if k + 1 < len(ents) and ents[k + 1].start < end:
            end = ents[k + 1].start
        for token in doc[finding.end:end]:
            if token.lower_ in CLAUSE_ENDS:
                end = token.i
                break
        ranges.append((start, end))
    return ranges


class AnatomyAttacher:
    """Sets ``anatomy``, ``laterality`` and ``change`` on each finding."""

    def __init__(self, nlp: Language, name: str, *, anatomy_window: int = 10) -> None:
        self.name = name
        self.anatomy_window = anatomy_window

    def __call__(self, doc: Doc) -> Doc:
        anatomy_spans = sorted(doc.spans.get(ANATOMY_GROUP, []),
                               key=lambda s: s.start)
        anatomy_starts = [s.start for s in anatomy_spans]
        for finding, (start, end) in zip(doc.ents, _neighbourhoods(doc), strict=True):
            nearby = anatomy_spans[bisect_left(anatomy_starts, start):
                                   bisect_left(anatomy_starts, end)]
            finding._.anatomy = self._anatomy(finding, nearby, start, end)
            finding._.laterality = self._laterality(finding, start, end)
            finding._.change = self._change(finding, max(start, finding.start - CHANGE_WINDOW),
                                            min(end, finding.end + CHANGE_WINDOW))
        return doc

    def _anatomy(self, finding: Span, spans: list[Span], start: int, end: int) -> Span | None:
        candidates: list[tuple[float, Span]] = []
        for span in spans:
            if finding.start <= span.start < finding.end:
                # Anatomy named inside the finding ("adrenal nodule", "hepatic lesion").
                candidates.append((-1, span))
                continue
            if span.start < start or span.end > end:
                continue
            # Locations follow ("nodule in the right upper lobe") at most a few words away or
            # precede the finding directly ("liver lesion", "right lower lobe consolidation").
            if span.start >= finding.end and span.start - finding.end <= self.anatomy_window:
                candidates.append((span.start - finding.end, span))
            elif span.end <= finding.start and finding.start - span.end <= 3:
                candidates.append((finding.start - span.end + 0.5, span))
        return min(candidates, key=lambda c: c[0])[1] if candidates else None

    def _laterality(self, finding: Span, start: int, end: int) -> str | None:
        anatomy = finding._.anatomy
        if anatomy is not None:
            concept = anatomy._.concept
            for token in anatomy:
                if token.lower_ in LATERALITY:
                    return LATERALITY[token.lower_]
            if concept is not None and getattr(concept, "laterality", None):
                return str(concept.laterality)
        doc = finding.doc
        # Laterality words directly before the finding ("left pleural effusion"), or after it
        # within the neighbourhood ("effusion on the right", "effusions bilaterally").
        for token in reversed(doc[max(start, finding.start - 4):finding.start]):
            if token.lower_ in LATERALITY:
                return LATERALITY[token.lower_]
        for token in doc[finding.end:min(end, finding.end + 5)]:
            if token.lower_ in LATERALITY:
                return LATERALITY[token.lower_]
        return None

    def _change(self, finding: Span, start: int, end: int) -> str | None:
        if finding._.is_resolved:
            return "resolved"
        doc = finding.doc
        text = doc[start:end].text.lower()
        best: tuple[int, str] | None = None
        offset = doc[start].idx if start < len(doc) else 0
        finding_char = finding.start_char - offset
        for phrase, change in CHANGE_WORDS.items():
            position = _word_position(text, phrase)
            if position < 0:
                continue
            distance = abs(position - finding_char)
            if best is None or distance < best[0]:
                best = (distance, change)
        return best[1] if best else None


def _word_position(text: str, phrase: str) -> int:
    """Start of ``phrase`` as whole words in ``text``, or -1."""
    position = text.find(phrase)
    while position >= 0:
        before = text[position - 1] if position else " "
        after_index = position + len(phrase)
        after = text[after_index] if after_index < len(text) else " "
        if not before.isalnum() and not after.isalnum():
            return position
        position = text.find(phrase, position + 1)
    return -1
