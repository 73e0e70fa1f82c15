"""The annotation review and adjudication pages (static pages over the annotations API) and
the terminology search the review page uses to pick a span's concept."""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from rapidfuzz import fuzz, process

from nlp_service.api import pages
from terminology.lexicon import Concept, Kind, Lexicon, load_lexicon
from terminology.normalizer import MIN_FUZZY_LENGTH, normalize, preprocess

ASSETS = {**pages.SHARED_ASSETS, "annotate.js": "text/javascript", "annotate.css": "text/css",
          "adjudicate.js": "text/javascript", "adjudicate.css": "text/css"}
MAX_CONCEPTS = 10
# Fuzzy candidates looked at before keeping one per concept: a concept has many surface forms.
CANDIDATES = 60
MIN_SCORE = 70.0

router = APIRouter(tags=["annotate"], include_in_schema=False)


@router.get("/annotate", response_class=FileResponse)
def page() -> FileResponse:
    """The annotation page (``?annotator=NAME``; the page asks for a name when it is missing)."""
    return pages.page("annotate.html")


@router.get("/annotate/adjudicate", response_class=FileResponse)
def adjudicate_page() -> FileResponse:
    """The adjudication page (``?adjudicator=NAME&task=ID``; without a task, the tasks that
    await adjudication)."""
    return pages.page("adjudicate.html")


@router.get("/annotate/static/{name}", response_class=FileResponse)
def asset(name: str) -> FileResponse:
    """The pages' scripts and stylesheets (only those)."""
    return pages.asset(name, ASSETS)


@functools.cache
def _search_keys(lexicon: Lexicon, kind: Kind | None) -> dict[str, tuple[str, Concept]]:
    """Preprocessed surface form -> (surface form, concept), for one kind or all."""
    keys: dict[str, tuple[str, Concept]] = {}
    for term, concept in lexicon.terms(kind):
        keys.setdefault(preprocess(term), (term, concept))
    return keys


def search_concepts(query: str, kind: Kind | None = None, limit: int = MAX_CONCEPTS,
                    lexicon: Lexicon | None = None) -> list[dict[str, Any]]:
    """Concepts for a typed phrase, best first: the normalizer's match (typo-tolerant, with
    its near-miss guards), then surface forms that start with the phrase, then fuzzy ones."""
    lexicon = lexicon if lexicon is not None else load_lexicon()
    key = preprocess(query)
    if not key:
        return []
    keys = _search_keys(lexicon, kind)
    scored: list[tuple[float, str, Concept]] = []
    best = normalize(query, kind, lexicon=lexicon)
    if best is not None:
        scored.append((1000.0, best.term, best.concept))
    # While typing, "pneumo" should list every pneumo- concept, not only the closest one.
    scored += [(500.0 - len(form), term, concept) for form, (term, concept) in keys.items()
               if form.startswith(key)]
    # Short phrases and abbreviations ("CIA", "fx") match by prefix only, as in the normalizer.
    fuzzy = ([form for form in keys if len(form) >= MIN_FUZZY_LENGTH]
             if len(key) >= MIN_FUZZY_LENGTH else [])
    for form, score, _ in process.extract(key, fuzzy, scorer=fuzz.WRatio,
                                          score_cutoff=MIN_SCORE, limit=CANDIDATES):
        term, concept = keys[form]
        scored.append((score, term, concept))
    seen: set[str] = set()
    found = []
    for _, term, concept in sorted(scored, key=lambda item: -item[0]):
        if concept.id in seen:
            continue
        seen.add(concept.id)
        found.append({"id": concept.id, "name": concept.name, "kind": concept.kind,
                      "radlex": concept.radlex, "snomed": concept.snomed, "term": term})
        if len(found) == limit:
            break
    return found


@router.get("/annotate/api/concepts")
def concepts(
    q: Annotated[str, Query(min_length=1, max_length=200, description="What was typed")],
    kind: Annotated[Literal["finding", "anatomy", "modality", "body_region"] | None,
                    Query(description="Only concepts of this kind")] = None,
) -> Any:
    """Up to 10 lexicon concepts for a phrase (typos tolerated), each with its codes."""
    return {"query": q, "items": search_concepts(q, kind)}
