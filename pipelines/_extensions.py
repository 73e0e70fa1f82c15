"""Every custom ``Doc``/``Span``/``Token`` attribute the pipeline uses, declared in one place."""

from __future__ import annotations

from spacy.tokens import Doc, Span

# Span-group keys used by the components.
ANATOMY_GROUP = "radnlp_anatomy"
MODALITY_GROUP = "radnlp_modality"
BODY_REGION_GROUP = "radnlp_body_region"
RECOMMENDATION_GROUP = "radnlp_recommendations"

_DOC_ATTRIBUTES: dict[str, object] = {
    "sections": None,  # list[pipelines.sections.SectionSpan]
    "context_modifiers": None,  # list[pipelines.context.ContextModifier]
    "measurements": None,  # list[pipelines.measurements.MeasurementMatch]
    "errors": None,  # list[str]: component failures handed to the error handler
    "clinical_context": None,  # pipelines.report_features.ClinicalContextInfo
    "declined_follow_up": None,  # list[pipelines.report_features.DeclinedFollowUp]
}

_SPAN_ATTRIBUTES: dict[str, object] = {
    "concept": None,  # terminology.Concept
    "is_negated": False,
    "is_uncertain": False,
    "is_historical": False,
    "is_hypothetical": False,
    "is_resolved": False,
    "modifiers": None,  # list[pipelines.context.ContextModifier]: the ConText triggers reaching it
    "anatomy": None,  # Span from the anatomy group
    "laterality": None,  # "left" | "right" | "bilateral"
    "measurements": None,  # list[pipelines.measurements.MeasurementMatch]
    "change": None,  # "new" | "stable" | "increased" | "decreased" | "resolved"
    "recommendation": None,  # pipelines.recommendations.RecommendationInfo
    "sources": None,  # list[str]: which stages produced the finding ("rules", "transformer")
    "score": None,  # float: the transformer's confidence that this span is a finding
    "assertion_override": None,  # str: the assertion model's verdict where it overrides ConText
    "assertion_scores": None,  # dict[str, float]: the assertion model's class probabilities
    "descriptors": None,  # list[pipelines.report_features.Descriptor]
}


def _section_of(span: Span) -> str | None:
    for section in span.doc._.sections or ():
        if section.start <= span.start_char < section.end:
            return str(section.name)
    return None


def _assertion_of(span: Span) -> str:
    if span._.assertion_override:
        return str(span._.assertion_override)
    if span._.is_negated or span._.is_resolved:
        return "absent"
    if span._.is_uncertain or span._.is_hypothetical:
        # "Rule out pneumonia", "if a nodule is present": asked about, not seen.
        return "possible"
    return "present"


def register_extensions() -> None:
    """Declare the attributes (idempotent)."""
    for name, default in _DOC_ATTRIBUTES.items():
        if not Doc.has_extension(name):
            Doc.set_extension(name, default=default)
    for name, default in _SPAN_ATTRIBUTES.items():
        if not Span.has_extension(name):
            Span.set_extension(name, default=default)
    if not Span.has_extension("section"):
        Span.set_extension("section", getter=_section_of)
    if not Span.has_extension("assertion"):
        Span.set_extension("assertion", getter=_assertion_of)


register_extensions()
