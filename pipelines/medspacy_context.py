"""The radiology ConText rules on medspaCy's own ConText component.

``pipelines/resources/context_rules.json`` loads into medspaCy as ``ConTextRule`` objects, so
medspaCy users can take the rules as they are, and the benchmarks can run them on medspaCy's
component beside ours (``benchmarks/openi.py``, system ``medspacy-context``).

Translation: categories keep their names (``RESOLVED`` sets ``is_resolved`` through
``span_attrs``); ``pseudo`` and ``terminate`` become medspaCy's ``PSEUDO`` and ``TERMINATE``
directions; ``max_scope`` carries over. medspaCy has no notion of a *weak* modifier, so a weak
rule's flag travels in ``metadata`` and medspaCy applies it like any other.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from spacy.language import Language

from pipelines.context import EXISTENCE_CATEGORIES, FLAG_CATEGORIES, ContextRule, load_context_rules

MEDSPACY_CONTEXT = "medspacy_context"
# Category -> the Span attribute medspaCy sets: the same attributes as our component.
SPAN_ATTRS: dict[str, dict[str, Any]] = {
    category: {attribute: True}
    for category, attribute in {**EXISTENCE_CATEGORIES, **FLAG_CATEGORIES}.items()
}


def to_medspacy_rules(rules: Iterable[ContextRule] | None = None) -> list[Any]:
    """Our rules (the shipped ones when ``None``) as medspaCy ``ConTextRule`` objects."""
    from medspacy.context import ConTextRule

    converted = []
    for rule in load_context_rules() if rules is None else rules:
        converted.append(ConTextRule(
            rule.literal, rule.category, direction=rule.direction.upper(),
            max_scope=rule.max_scope, metadata={"weak": True} if rule.weak else None))
    return converted


def add_medspacy_context(nlp: Language, *, before: str | None = None,
                         rules: Iterable[ContextRule] | None = None) -> Any:
    """Add medspaCy's ConText to ``nlp`` holding our rules; returns the component."""
    import medspacy.context  # noqa: F401  (registers the "medspacy_context" factory)

    component: Any = nlp.add_pipe(MEDSPACY_CONTEXT, before=before,
                                  config={"rules": None, "span_attrs": SPAN_ATTRS})
    component.add(to_medspacy_rules(rules))
    return component


def build_medspacy_context_nlp() -> Language:
    """The rules pipeline with medspaCy's ConText (our rules) in place of ``radnlp_context``."""
    from pipelines import factories
    from pipelines.pipeline import build_nlp
    components = [c for c in factories.RULES_PIPELINE if c != "radnlp_context"]
    nlp = build_nlp(components=components)
    add_medspacy_context(nlp, before="radnlp_measurements")
    return nlp
