"""Peer systems for the benchmarks: medspaCy's default pipeline fed with our lexicon."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc

from pipelines.pipeline import ReportInput
from pipelines.schema import AnalysisError, Assertion, ConceptRef, FindingOut, ReportAnalysis
from pipelines.target_matcher import FINDING, TargetRule, lexicon_rules
from terminology import load_lexicon

MEDSPACY_VERSION_TAG = "medspacy-default"


def silence_pyrush() -> None:
    """Drop loguru's handlers: PyRuSH logs every sentence at DEBUG."""
    from loguru import logger

    logger.remove()


def medspacy_default(rules: Iterable[TargetRule] | None = None) -> Language:
    """``medspacy.load()`` (PyRuSH, target matcher, default ConText) with our finding rules.

    Each finding rule becomes ``TargetRule(literal, "FINDING")`` carrying its concept id in
    ``metadata``; medspaCy lower-cases every literal, as its default matcher does.
    """
    silence_pyrush()
    import medspacy
    from medspacy.target_matcher import TargetRule as MedspacyTargetRule

    nlp = medspacy.load()
    source = lexicon_rules(("finding",)) if rules is None else rules
    nlp.get_pipe("medspacy_target_matcher").add([
        MedspacyTargetRule(rule.literal, FINDING, metadata={"concept_id": rule.concept_id})
        for rule in source if rule.label == FINDING
    ])
    return nlp


def _concept_ref(concept_id: str | None) -> ConceptRef | None:
    if concept_id is None:
        return None
    concept = load_lexicon().get(concept_id)
    return ConceptRef(name=concept.name, radlex=concept.radlex, snomed=concept.snomed)


def medspacy_doc_to_analysis(doc: Doc, *, report_id: str,
                             model_version: str = MEDSPACY_VERSION_TAG) -> ReportAnalysis:
    """Findings of a medspaCy ``Doc`` as our ``ReportAnalysis`` (no sections, anatomy, etc.)."""
    findings = []
    for ent in doc.ents:
        if ent.label_ != FINDING:
            continue
        rule = ent._.target_rule
        metadata = (rule.metadata or {}) if rule is not None else {}
        assertion: Assertion
        if ent._.is_negated:
            assertion = "absent"
        elif ent._.is_uncertain:
            assertion = "possible"
        else:
            assertion = "present"
        findings.append(FindingOut(
            text=ent.text, start=ent.start_char, end=ent.end_char,
            concept=_concept_ref(metadata.get("concept_id")), assertion=assertion,
            historical=bool(ent._.is_historical), hypothetical=bool(ent._.is_hypothetical),
            sources=["medspacy"],
        ))
    return ReportAnalysis(id=report_id, model_version=model_version, findings=findings)


class MedspacyPeer:
    """medspaCy's default pipeline behind the same ``analyze_stream`` as ``RadiologyPipeline``."""

    def __init__(self, nlp: Language | None = None) -> None:
        self.nlp = nlp if nlp is not None else medspacy_default()
        self._errors: dict[int, str] = {}
        # spaCy annotates error handlers as NoReturn; recording and returning is what it allows.
        self.nlp.set_error_handler(self._record_error)  # type: ignore[arg-type]

    def _record_error(self, name: str, component: Any, docs: list[Doc], error: Exception) -> None:
        for doc in docs:
            self._errors[id(doc)] = f"{name}: {type(error).__name__}: {error}"

    def analyze_stream(self, reports: Iterable[ReportInput], *,
                       batch_size: int = 64) -> Iterator[ReportAnalysis | AnalysisError]:
        """Analyse reports in input order; a report that fails yields an ``AnalysisError``."""
        batch: list[ReportInput] = []
        for report in reports:
            batch.append(report)
            if len(batch) >= batch_size:
                yield from self._run(batch, batch_size)
                batch = []
        if batch:
            yield from self._run(batch, batch_size)

    def _run(self, batch: list[ReportInput],
             batch_size: int) -> Iterator[ReportAnalysis | AnalysisError]:
        docs: dict[int, Doc] = {}
        problems: dict[int, str] = {}
        for i, report in enumerate(batch):
            try:
                docs[i] = self.nlp.make_doc(report.text)
            except Exception as exc:  # a tokenizer failure stays with its report
                problems[i] = f"tokenizer: {type(exc).__name__}: {exc}"
        self._errors.clear()
        for _ in self.nlp.pipe(docs.values(), batch_size=batch_size):
            pass
        for i, report in enumerate(batch):
            doc = docs.get(i)
            problem = problems.get(i) or (self._errors.get(id(doc)) if doc is not None else None)
            if problem is not None or doc is None:
                yield AnalysisError(id=report.id, error=problem or "not analysed")
                continue
            try:
                yield medspacy_doc_to_analysis(doc, report_id=report.id)
            except Exception as exc:  # a conversion bug must not sink the other reports
                yield AnalysisError(id=report.id, error=f"{type(exc).__name__}: {exc}")
