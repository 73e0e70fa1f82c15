"""The radiology pipeline: build it, run it over reports, return the analysis contract."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span

from pipelines import factories
from pipelines._extensions import RECOMMENDATION_GROUP
from pipelines.components import add_error
from pipelines.errors import Errors
from pipelines.schema import (
    AnalysisError,
    AnatomyRef,
    ClinicalContext,
    CommunicationOut,
    ConceptRef,
    DeclinedFollowUp,
    Descriptor,
    FindingOut,
    Measurement,
    Mention,
    RecommendationOut,
    RecommendationStep,
    ReportAnalysis,
    Section,
)
from pipelines.sections import INDICATION_SECTIONS
from pipelines.tokenizer import LongRunTokenizer

RULES_MODEL_VERSION = "rules-2026.11"
MODES = ("full", "rules")
# About 100,000 tokens, far beyond any real report; longer input is refused, not cut.
DEFAULT_MAX_CHARS = 500_000


@dataclass(frozen=True)
class ReportInput:
    """One report to analyse."""

    id: str
    text: str


def build_nlp(*, components: Iterable[str] = factories.RULES_PIPELINE,
              config: dict[str, dict[str, Any]] | None = None) -> Language:
    """A blank English pipeline with the radiology components added in order; ``config``
    overrides a component's options by factory name."""
    nlp = spacy.blank("en")
    nlp.tokenizer = LongRunTokenizer(nlp.tokenizer)
    nlp.max_length = DEFAULT_MAX_CHARS + 1
    for name in components:
        nlp.add_pipe(name, config=(config or {}).get(name, {}))
    nlp.set_error_handler(_record_error)  # type: ignore[arg-type]
    return nlp


def _record_error(name: str, component: Any, docs: list[Doc], error: Exception) -> None:
    # spaCy hands component failures here, so one bad report does not sink its batch.
    for doc in docs:
        add_error(doc, f"{name}: {type(error).__name__}: {error}")


class RadiologyPipeline:
    """Turns report text into ``ReportAnalysis`` objects."""

    def __init__(self, nlp: Language, *, model_version: str,
                 max_chars: int = DEFAULT_MAX_CHARS) -> None:
        self.nlp = nlp
        self.model_version = model_version
        self.max_chars = max_chars

    @classmethod
    def load(cls, mode: str = "full", *, model: str = "default",
             max_chars: int = DEFAULT_MAX_CHARS,
             config: dict[str, dict[str, Any]] | None = None) -> RadiologyPipeline:
        """The pipeline of a mode: ``rules`` alone, or ``full`` (rules + transformer models of
        version ``model``). ``config`` overrides component options by factory name."""
        if mode not in MODES:
            raise ValueError(Errors.E001.format(mode=mode, modes=", ".join(MODES)))
        if mode == "rules":
            nlp = build_nlp(config=config)
            version = RULES_MODEL_VERSION
        else:
            from pipelines.models import model_dir
            from pipelines.models import model_version as version_of

            folder = model_dir(model)
            overrides = {name: {"model": str(folder), **(config or {}).get(name, {})}
                         for name in ("radnlp_transformer_ner", "radnlp_assertion_model")}
            nlp = build_nlp(components=factories.FULL_PIPELINE,
                            config={**(config or {}), **overrides})
            version = version_of(folder)
        nlp.max_length = max(nlp.max_length, max_chars + 1)
        return cls(nlp, model_version=version, max_chars=max_chars)

    def analyze(self, text: str, report_id: str = "report") -> ReportAnalysis:
        """Analyse one report; raises ``ValueError`` for input that cannot be analysed."""
        result = next(self.analyze_stream([ReportInput(report_id, text)]))
        if isinstance(result, AnalysisError):
            raise ValueError(result.error)
        return result

    def analyze_stream(self, reports: Iterable[ReportInput], *,
                       batch_size: int = 64) -> Iterator[ReportAnalysis | AnalysisError]:
        """Analyse reports lazily, in input order; a bad report yields an ``AnalysisError``."""
        pending: list[tuple[ReportInput, str | None]] = []
        for report in reports:
            pending.append((report, self._check(report)))
            if len(pending) >= batch_size:
                yield from self._run(pending, batch_size)
                pending = []
        if pending:
            yield from self._run(pending, batch_size)

    def _check(self, report: ReportInput) -> str | None:
        if not isinstance(report.text, str):
            return Errors.E002.format(kind=type(report.text).__name__)
        if not report.text.strip():
            return Errors.E003
        if len(report.text) > self.max_chars:
            return Errors.E004.format(length=len(report.text), limit=self.max_chars)
        return None

    def _run(self, pending: list[tuple[ReportInput, str | None]],
             batch_size: int) -> Iterator[ReportAnalysis | AnalysisError]:
        docs: dict[int, Doc] = {}
        for i, (report, problem) in enumerate(pending):
            if problem is None:
                try:
                    docs[i] = self.nlp.make_doc(report.text)
                except Exception as exc:  # a tokenizer failure stays with its report
                    pending[i] = (report, f"tokenizer: {type(exc).__name__}: {exc}")
        # Components that fail hand the doc to _record_error, and spaCy drops it from the stream.
        for _ in self.nlp.pipe(docs.values(), batch_size=batch_size):
            pass
        for i, (report, problem) in enumerate(pending):
            doc = docs.get(i)
            if problem is not None or doc is None:
                yield AnalysisError(id=report.id, error=problem or "not analysed")
                continue
            if doc._.errors:
                yield AnalysisError(id=report.id, error="; ".join(doc._.errors))
                continue
            try:
                yield doc_to_analysis(doc, report_id=report.id, model_version=self.model_version)
            except Exception as exc:  # a conversion bug must not sink the other reports
                yield AnalysisError(id=report.id, error=f"{type(exc).__name__}: {exc}")


def _concept_ref(span: Span) -> ConceptRef | None:
    concept = span._.concept
    if concept is None:
        return None
    return ConceptRef(name=concept.name, radlex=concept.radlex, snomed=concept.snomed)


def doc_to_analysis(doc: Doc, *, report_id: str, model_version: str) -> ReportAnalysis:
    """The analysis contract for one processed ``Doc``."""
    findings: list[FindingOut] = []
    index_of: dict[tuple[int, int], int] = {}
    for ent in doc.ents:
        anatomy = ent._.anatomy
        anatomy_ref = None
        if anatomy is not None:
            concept = anatomy._.concept
            anatomy_ref = AnatomyRef(
                name=concept.name if concept is not None else anatomy.text.lower(),
                radlex=getattr(concept, "radlex", None), snomed=getattr(concept, "snomed", None),
                text=anatomy.text, start=anatomy.start_char, end=anatomy.end_char,
            )
        section = ent._.section
        index_of[(ent.start, ent.end)] = len(findings)
        findings.append(FindingOut(
            text=ent.text, start=ent.start_char, end=ent.end_char, section=section,
            concept=_concept_ref(ent), assertion=ent._.assertion,
            historical=ent._.is_historical, hypothetical=ent._.is_hypothetical,
            change=ent._.change, anatomy=anatomy_ref, laterality=ent._.laterality,
            measurements=[
                Measurement(value=m.value, unit=m.unit, text=m.text, start=m.start_char,
                            end=m.end_char, dimensions=list(m.dimensions), qualifier=m.qualifier)
                for m in ent._.measurements or ()
            ],
            in_indication=section in INDICATION_SECTIONS, sources=ent._.sources or ["rules"],
            score=round(ent._.score, 4) if ent._.score is not None else 1.0,
            descriptors=[Descriptor(name=d.name, value=d.value, text=d.text, start=d.start_char,
                                    end=d.end_char) for d in ent._.descriptors or ()],
        ))
    recommendations = []
    for span in doc.spans.get(RECOMMENDATION_GROUP, []):
        info = span._.recommendation
        finding = info.finding
        step = info.next_step
        recommendations.append(RecommendationOut(
            text=span.text, start=span.start_char, end=span.end_char, kind=info.kind,
            modality=info.modality, modalities=info.modalities,
            body_region=info.body_region, interval_min_days=info.interval_min_days,
            interval_max_days=info.interval_max_days, short_interval=info.short_interval,
            conditional=info.conditional, guideline=info.guideline,
            cited_source=info.cited_source, later_step=info.later_step,
            tissue_sampling=info.tissue_sampling,
            next_step=RecommendationStep(
                modalities=step.modalities, interval_min_days=step.interval_min_days,
                interval_max_days=step.interval_max_days) if step is not None else None,
            finding_index=index_of.get((finding.start, finding.end)) if finding is not None
            else None,
            communication=CommunicationOut(
                recipient=info.communication.recipient, method=info.communication.method,
                date=info.communication.date, time=info.communication.time,
                read_back=info.communication.read_back)
            if info.communication is not None else None,
        ))
    return ReportAnalysis(
        id=report_id, model_version=model_version,
        sections=[Section(name=s.name, start=s.start, end=s.end) for s in doc._.sections or ()],
        findings=findings, recommendations=recommendations,
        clinical_context=_clinical_context(doc._.clinical_context),
        declined_follow_up=[
            DeclinedFollowUp(text=d.text, start=d.start_char, end=d.end_char, source=d.source)
            for d in doc._.declined_follow_up or ()],
    )


def _mention(mention: Any) -> Mention | None:
    return Mention(text=mention.text, start=mention.start, end=mention.end) if mention else None


def _clinical_context(context: Any) -> ClinicalContext:
    if context is None:  # a pipeline without ``radnlp_report_features``
        return ClinicalContext()
    return ClinicalContext(
        cancer=_mention(context.cancer), immunosuppression=_mention(context.immunosuppression),
        screening=_mention(context.screening), thyroid_disease=_mention(context.thyroid_disease),
        lung_rads=context.lung_rads, smoking_risk=context.smoking_risk)
