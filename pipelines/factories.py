"""Registration of every pipeline component by factory name (``radnlp_*``)."""

# No `from __future__ import annotations` here: spaCy validates factory signatures at runtime.


from spacy.language import Language

from pipelines import _extensions  # noqa: F401  (declares the custom attributes)
from pipelines.anatomy import AnatomyAttacher
from pipelines.assertion_model import AssertionClassifier
from pipelines.context import ConTextComponent
from pipelines.measurements import MeasurementAttacher
from pipelines.ner import TransformerNER
from pipelines.recommendations import RecommendationExtractor
from pipelines.report_features import ReportFeatures
from pipelines.sections import Sectionizer
from pipelines.sentences import RadiologySentencizer
from pipelines.target_matcher import TargetMatcher


@Language.factory("radnlp_sectionizer", default_config={"rules": "default", "require_colon": False})
def make_sectionizer(nlp: Language, name: str, rules: str, require_colon: bool) -> Sectionizer:
    return Sectionizer(nlp, name, rules=rules, require_colon=require_colon)


@Language.factory("radnlp_sentencizer", default_config={"split_on_line_breaks": True})
def make_sentencizer(nlp: Language, name: str, split_on_line_breaks: bool) -> RadiologySentencizer:
    return RadiologySentencizer(nlp, name, split_on_line_breaks=split_on_line_breaks)


@Language.factory("radnlp_target_matcher", default_config={"rules": "lexicon"})
def make_target_matcher(nlp: Language, name: str, rules: str | None) -> TargetMatcher:
    return TargetMatcher(nlp, name, rules=rules)


@Language.factory("radnlp_context", default_config={"rules": "default", "max_scope": 50})
def make_context(nlp: Language, name: str, rules: str, max_scope: int | None) -> ConTextComponent:
    return ConTextComponent(nlp, name, rules=rules, max_scope=max_scope)


@Language.factory("radnlp_measurements", default_config={"max_distance": 12})
def make_measurements(nlp: Language, name: str, max_distance: int) -> MeasurementAttacher:
    return MeasurementAttacher(nlp, name, max_distance=max_distance)


@Language.factory("radnlp_anatomy", default_config={"anatomy_window": 10})
def make_anatomy(nlp: Language, name: str, anatomy_window: int) -> AnatomyAttacher:
    return AnatomyAttacher(nlp, name, anatomy_window=anatomy_window)


@Language.factory("radnlp_recommendations", default_config={})
def make_recommendations(nlp: Language, name: str) -> RecommendationExtractor:
    return RecommendationExtractor(nlp, name)


@Language.factory("radnlp_report_features", default_config={})
def make_report_features(nlp: Language, name: str) -> ReportFeatures:
    return ReportFeatures(nlp, name)


@Language.factory("radnlp_transformer_ner", default_config={
    "model": "default", "min_score": 0.8, "max_batch_tokens": 2048, "device": "auto",
    "precision": "auto"})
def make_transformer_ner(nlp: Language, name: str, model: str, min_score: float,
                         max_batch_tokens: int, device: str, precision: str) -> TransformerNER:
    return TransformerNER(nlp, name, model=model, min_score=min_score,
                          max_batch_tokens=max_batch_tokens, device=device, precision=precision)


@Language.factory("radnlp_assertion_model", default_config={
    "model": "default", "policy": "combined", "override_threshold": 0.9, "batch_tokens": 8192,
    "device": "auto", "precision": "auto"})
def make_assertion_model(nlp: Language, name: str, model: str, policy: str,
                         override_threshold: float, batch_tokens: int, device: str,
                         precision: str) -> AssertionClassifier:
    return AssertionClassifier(nlp, name, model=model, policy=policy,
                               override_threshold=override_threshold, batch_tokens=batch_tokens,
                               device=device, precision=precision)


RULES_PIPELINE = (
    "radnlp_sectionizer",
    "radnlp_sentencizer",
    "radnlp_target_matcher",
    "radnlp_context",
    "radnlp_measurements",
    "radnlp_anatomy",
    "radnlp_recommendations",
    "radnlp_report_features",
)
# Full mode: the transformer adds findings before ConText reads them, and the assertion model
# reviews ConText's verdicts before measurements and recommendations use them.
FULL_PIPELINE = (
    "radnlp_sectionizer",
    "radnlp_sentencizer",
    "radnlp_target_matcher",
    "radnlp_transformer_ner",
    "radnlp_context",
    "radnlp_assertion_model",
    "radnlp_measurements",
    "radnlp_anatomy",
    "radnlp_recommendations",
    "radnlp_report_features",
)
