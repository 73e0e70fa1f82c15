"""Span helpers that stay linear on very long documents.

``Span.sent`` walks token by token to its sentence start, and pairwise loops over findings are
quadratic; a 50,000-token report made either unusable. These helpers index a ``Doc`` once.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence

from spacy.tokens import Doc, Span

_BOUNDS_KEY = "radnlp_sentence_bounds"


def sentence_bounds(doc: Doc) -> tuple[list[int], list[int]]:
    """Per token, the (start, end) token indices of its sentence; computed once per doc."""
    cached = doc.user_data.get(_BOUNDS_KEY)
    if cached is not None and len(cached[0]) == len(doc):
        return cached
    starts, ends = [0] * len(doc), [len(doc)] * len(doc)
    start = 0
    for token in doc:
        if token.i > 0 and token.is_sent_start:
            for i in range(start, token.i):
                ends[i] = token.i
            start = token.i
        starts[token.i] = start
    doc.user_data[_BOUNDS_KEY] = (starts, ends)
    return starts, ends


def sentence_of(span: Span) -> Span:
    """The sentence containing the span's first token (like ``span.sent``, in O(1))."""
    starts, ends = sentence_bounds(span.doc)
    return span.doc[starts[span.start]:ends[span.start]]


def overlapping(spans: Sequence[Span], starts: Sequence[int], start: int, end: int,
                max_length: int) -> list[Span]:
    """Spans (sorted by start, with ``starts`` their start tokens, none longer than
    ``max_length``) that overlap tokens [start, end)."""
    low = bisect_left(starts, start - max_length)
    high = bisect_right(starts, end - 1)
    return [s for s in spans[low:high] if s.start < end and start < s.end]
