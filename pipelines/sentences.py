"""Sentence splitting for radiology prose: numbered lists, ALL CAPS, headers and line breaks."""

from __future__ import annotations

import re

import numpy
from spacy.attrs import SENT_START
from spacy.language import Language
from spacy.tokens import Doc, Token

SENTENCE_FINAL = frozenset({".", "?", "!"})
ABBREVIATIONS = frozenset({"dr", "mr", "mrs", "ms", "vs", "e.g", "i.e", "approx", "fig", "cf"})
# Line-final words after which a line break does not end the sentence (wrapped text).
CONTINUATION_WORDS = frozenset(
    {"of", "and", "or", "the", "a", "an", "with", "without", "in", "to", "at", "on", "for", "by",
     "from", "is", "are", "was", "were", "be", "no", "not", "which", "that", "as", "than", "per"}
)
LIST_MARKER = re.compile(r"^(\d{1,2}|[a-z])$|^[-*•]$")


def is_list_marker(doc: Doc, i: int) -> bool:
    """``1.``/``2)``/``-``/``*`` opening a list item at token ``i``."""
    token = doc[i]
    if token.text in {"-", "*", "•"}:
        return True
    if not LIST_MARKER.match(token.text) or i + 1 >= len(doc):
        return False
    return doc[i + 1].text in {".", ")"} and bool(doc[i + 1].whitespace_)


class RadiologySentencizer:
    """Sets ``Token.is_sent_start`` for every token using report-aware rules."""

    def __init__(self, nlp: Language, name: str, *, split_on_line_breaks: bool = True) -> None:
        self.name = name
        self.split_on_line_breaks = split_on_line_breaks

    def __call__(self, doc: Doc) -> Doc:
        if not len(doc):
            return doc
        header_bounds: set[int] = set()
        for section in doc._.sections or ():
            header_bounds.update((section.start, section.body_start))
        text = doc.text
        starts = [False] * len(doc)
        starts[0] = True
        previous: Token | None = None  # last non-space token
        list_marker_end = -1
        for token in doc:
            i = token.i
            if token.is_space:
                continue
            if token.idx in header_bounds:
                starts[i] = True
            elif previous is not None:
                starts[i] = self._starts_after(doc, text, previous, token, list_marker_end)
            if starts[i] and is_list_marker(doc, i):
                list_marker_end = i + 1
            previous = token
        # One array write: setting Token.is_sent_start one by one is quadratic in spaCy.
        values = numpy.array([[1 if is_start else -1] for is_start in starts],
                             dtype="int64").astype("uint64")
        doc.from_array([SENT_START], values)  # type: ignore[arg-type]
        return doc

    def _starts_after(self, doc: Doc, text: str, previous: Token, token: Token,
                      list_marker_end: int) -> bool:
        gap = text[previous.idx + len(previous.text) : token.idx]
        # ".." and "..." (typing slips and ellipses in dictated text) end a sentence as "." does.
        final = previous.text in SENTENCE_FINAL or set(previous.text) == {"."}
        if final and previous.i != list_marker_end:
            before = doc[previous.i - 1] if previous.i > 0 else None
            # "Dr." / "e.g." do not end a sentence.
            return before is None or bool(before.whitespace_) or before.lower_ not in ABBREVIATIONS
        if previous.text == ":" and "\n" in gap:
            return True
        if not self.split_on_line_breaks or "\n" not in gap:
            return False
        if gap.count("\n") >= 2 or is_list_marker(doc, token.i):
            return True
        if previous.lower_ in CONTINUATION_WORDS or previous.text in {",", "-", "/", "("}:
            return False
        return token.text[:1].isupper() or token.text[:1].isdigit()
