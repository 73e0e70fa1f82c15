"""Scoring the pipeline against a gold set: entities, assertions and recommendations."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.schema import ReportAnalysis

ENTITY_LABELS = ("FINDING", "ANATOMY", "MEASUREMENT", "RECOMMENDATION")
ASSERTIONS = ("present", "absent", "possible")


@dataclass(frozen=True)
class GoldSpan:
    start: int
    end: int
    label: str
    assertion: str | None = None


@dataclass(frozen=True)
class GoldRecommendation:
    """An annotated recommendation (``annotations/gold/GUIDELINES.md``); files of the older
    form give ``modality`` only, read as the single acceptable modality of an imaging one."""

    start: int
    end: int
    modality: str | None
    body_region: str | None
    interval_min_days: int | None
    interval_max_days: int | None
    conditional: bool
    kind: str = "imaging"
    modalities: tuple[str, ...] = ()
    short_interval: bool = False
    next_step: tuple[tuple[str, ...], int | None, int | None] | None = None
    finding: str | None = None

    @classmethod
    def from_dict(cls, data: dict) -> GoldRecommendation:
        modalities = tuple(data.get("modalities")
                           or ([data["modality"]] if data.get("modality") else []))
        step = data.get("next_step")
        return cls(
            data["start"], data["end"], modalities[0] if modalities else None,
            data.get("body_region"), data.get("interval_min_days"),
            data.get("interval_max_days"), bool(data.get("conditional")),
            kind=data.get("kind", "imaging"), modalities=modalities,
            short_interval=bool(data.get("short_interval")),
            next_step=(tuple(step.get("modalities", ())), step.get("interval_min_days"),
                       step.get("interval_max_days")) if step else None,
            finding=data.get("finding"))


@dataclass(frozen=True)
class GoldReport:
    id: str
    text: str
    split: str | None
    spans: tuple[GoldSpan, ...]
    recommendations: tuple[GoldRecommendation, ...]
    # Annotated by the older guidelines: only requests for imaging or tissue sampling are
    # recommendations (no kinds, no clinical correlation or communication).
    legacy_recommendations: bool = False


def load_gold(path: str | Path, split: str | None = None) -> list[GoldReport]:
    """Read a gold JSON Lines file, checking every span's offsets against its text."""
    reports = []
    lines = Path(path).read_text().splitlines()
    legacy = not any('"kind"' in line for line in lines)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        data = json.loads(line)
        if split and data.get("split") != split:
            continue
        text = data["text"]
        for span in [*data.get("spans", []), *data.get("recommendations", [])]:
            if "text" in span and text[span["start"]:span["end"]] != span["text"]:
                raise ValueError(f"{path}:{number}: span {span['text']!r} does not match its "
                                 f"offsets {span['start']}-{span['end']}")
        reports.append(GoldReport(
            id=data["id"], text=text, split=data.get("split"),
            spans=tuple(GoldSpan(s["start"], s["end"], s["label"], s.get("assertion"))
                        for s in data.get("spans", [])),
            recommendations=tuple(GoldRecommendation.from_dict(r)
                                  for r in data.get("recommendations", [])),
            legacy_recommendations=legacy,
        ))
    return reports


def predicted_spans(analysis: ReportAnalysis) -> list[GoldSpan]:
    """The analysis flattened into labelled spans, comparable with the gold spans."""
    spans: set[GoldSpan] = set()
    for finding in analysis.findings:
        spans.add(GoldSpan(finding.start, finding.end, "FINDING", finding.assertion))
        anatomy = finding.anatomy
        if anatomy is not None and anatomy.start is not None and anatomy.end is not None:
            spans.add(GoldSpan(anatomy.start, anatomy.end, "ANATOMY"))
        for measurement in finding.measurements:
            if measurement.start is not None and measurement.end is not None:
                spans.add(GoldSpan(measurement.start, measurement.end, "MEASUREMENT"))
    for rec in analysis.recommendations:
        spans.add(GoldSpan(rec.start, rec.end, "RECOMMENDATION"))
    return sorted(spans, key=lambda s: (s.start, s.end, s.label))


@dataclass
class PRF:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": round(self.precision, 4),
                "recall": round(self.recall, 4), "f1": round(self.f1, 4)}


def _overlaps(a: GoldSpan | GoldRecommendation, b: GoldSpan | GoldRecommendation) -> bool:
    return a.start < b.end and b.start < a.end


def match_overlapping(gold: Sequence, predicted: Sequence) -> list[tuple[int, int]]:
    """One-to-one (gold, predicted) index pairs of overlapping spans, largest overlap first."""
    candidates = []
    for g, gs in enumerate(gold):
        for p, ps in enumerate(predicted):
            if _overlaps(gs, ps):
                overlap = min(gs.end, ps.end) - max(gs.start, ps.start)
                candidates.append((-overlap, g, p))
    used_gold: set[int] = set()
    used_pred: set[int] = set()
    pairs = []
    for _, g, p in sorted(candidates):
        if g not in used_gold and p not in used_pred:
            used_gold.add(g)
            used_pred.add(p)
            pairs.append((g, p))
    return pairs


@dataclass
class EvaluationResult:
    reports: int = 0
    exact: dict[str, PRF] = field(default_factory=lambda: {lb: PRF() for lb in ENTITY_LABELS})
    overlap: dict[str, PRF] = field(default_factory=lambda: {lb: PRF() for lb in ENTITY_LABELS})
    assertion_confusion: Counter = field(default_factory=Counter)  # (gold, predicted) -> count
    assertion_end_to_end: dict[str, PRF] = field(
        default_factory=lambda: {a: PRF() for a in ASSERTIONS})
    recommendation_attributes: Counter = field(default_factory=Counter)  # attribute -> correct
    recommendations_matched: int = 0

    @property
    def assertion_accuracy(self) -> float:
        total = sum(self.assertion_confusion.values())
        correct = sum(n for (g, p), n in self.assertion_confusion.items() if g == p)
        return correct / total if total else 0.0

    def assertion_class_prf(self) -> dict[str, PRF]:
        """Per-class P/R/F1 over gold findings the pipeline also found (overlap match)."""
        scores = {}
        for label in ASSERTIONS:
            confusion = self.assertion_confusion
            tp = confusion[(label, label)]
            fp = sum(n for (g, p), n in confusion.items() if p == label and g != label)
            fn = sum(n for (g, p), n in confusion.items() if g == label and p != label)
            scores[label] = PRF(tp, fp, fn)
        return scores

    @property
    def assertion_macro_f1(self) -> float:
        return sum(prf.f1 for prf in self.assertion_class_prf().values()) / len(ASSERTIONS)

    def as_dict(self) -> dict:
        matched = self.recommendations_matched
        return {
            "reports": self.reports,
            "entities_exact": {lb: prf.as_dict() for lb, prf in self.exact.items()},
            "entities_overlap": {lb: prf.as_dict() for lb, prf in self.overlap.items()},
            "assertion": {
                "matched_findings": sum(self.assertion_confusion.values()),
                "accuracy": round(self.assertion_accuracy, 4),
                "macro_f1": round(self.assertion_macro_f1, 4),
                "per_class": {k: v.as_dict() for k, v in self.assertion_class_prf().items()},
                "end_to_end": {k: v.as_dict() for k, v in self.assertion_end_to_end.items()},
            },
            "recommendations": {
                "detection": self.overlap["RECOMMENDATION"].as_dict(),
                "matched": matched,
                **{f"{attr}_accuracy": round(n / matched, 4) if matched else 0.0
                   for attr, n in sorted(self.recommendation_attributes.items())},
            },
        }


# The kinds a gold file of the older guidelines annotates.
LEGACY_KINDS = frozenset({"imaging", "consultation"})
REC_ATTRIBUTES = ("kind", "modality", "body_region", "interval", "conditional")


def evaluate(gold: Iterable[GoldReport],
             predictions: dict[str, ReportAnalysis]) -> EvaluationResult:
    """Score predictions (by report id) against gold reports."""
    result = EvaluationResult()
    for attr in REC_ATTRIBUTES:
        result.recommendation_attributes[attr] = 0
    for report in gold:
        result.reports += 1
        analysis = predictions.get(report.id)
        if analysis is not None and report.legacy_recommendations:
            analysis = analysis.model_copy(update={"recommendations": [
                r for r in analysis.recommendations if r.kind in LEGACY_KINDS]})
        predicted = predicted_spans(analysis) if analysis is not None else []
        gold_spans = list(report.spans) + [GoldSpan(r.start, r.end, "RECOMMENDATION")
                                           for r in report.recommendations]
        for label in ENTITY_LABELS:
            g_label = [s for s in gold_spans if s.label == label]
            p_label = [s for s in predicted if s.label == label]
            g_exact = {(s.start, s.end) for s in g_label}
            p_exact = {(s.start, s.end) for s in p_label}
            exact = result.exact[label]
            exact.tp += len(g_exact & p_exact)
            exact.fp += len(p_exact - g_exact)
            exact.fn += len(g_exact - p_exact)
            pairs = match_overlapping(g_label, p_label)
            overlap = result.overlap[label]
            overlap.tp += len(pairs)
            overlap.fp += len(p_label) - len(pairs)
            overlap.fn += len(g_label) - len(pairs)
            if label == "FINDING":
                _score_assertions(result, g_label, p_label, pairs)
        if analysis is not None:
            _score_recommendations(result, report, analysis)
    return result


def _score_assertions(result: EvaluationResult, gold: list[GoldSpan], predicted: list[GoldSpan],
                      pairs: list[tuple[int, int]]) -> None:
    matched_gold = {g for g, _ in pairs}
    matched_pred = {p for _, p in pairs}
    for g, p in pairs:
        g_assert, p_assert = gold[g].assertion or "present", predicted[p].assertion or "present"
        result.assertion_confusion[(g_assert, p_assert)] += 1
        if g_assert == p_assert:
            result.assertion_end_to_end[g_assert].tp += 1
        else:
            result.assertion_end_to_end[g_assert].fn += 1
            result.assertion_end_to_end[p_assert].fp += 1
    for g, span in enumerate(gold):
        if g not in matched_gold:
            result.assertion_end_to_end[span.assertion or "present"].fn += 1
    for p, span in enumerate(predicted):
        if p not in matched_pred:
            result.assertion_end_to_end[span.assertion or "present"].fp += 1


def _score_recommendations(result: EvaluationResult, report: GoldReport,
                           analysis: ReportAnalysis) -> None:
    predicted = analysis.recommendations
    for g, p in match_overlapping(report.recommendations, predicted):
        gold_rec, pred = report.recommendations[g], predicted[p]
        result.recommendations_matched += 1
        result.recommendation_attributes["kind"] += (
            pred.kind in LEGACY_KINDS if report.legacy_recommendations
            else gold_rec.kind == pred.kind)
        result.recommendation_attributes["modality"] += (
            gold_rec.modality == pred.modality if report.legacy_recommendations  # first named
            else set(gold_rec.modalities) == set(pred.modalities))
        result.recommendation_attributes["body_region"] += gold_rec.body_region == pred.body_region
        result.recommendation_attributes["interval"] += (
            (gold_rec.interval_min_days, gold_rec.interval_max_days)
            == (pred.interval_min_days, pred.interval_max_days))
        result.recommendation_attributes["conditional"] += gold_rec.conditional == pred.conditional


def format_report(result: EvaluationResult, title: str = "") -> str:
    """A plain-text table of an evaluation result."""
    lines = [title] if title else []
    lines.append(f"reports: {result.reports}")
    lines.append(f"{'label':<16}{'exact P':>9}{'exact R':>9}{'exact F1':>9}"
                 f"{'ovl P':>9}{'ovl R':>9}{'ovl F1':>9}{'gold':>7}")
    for label in ENTITY_LABELS:
        e, o = result.exact[label], result.overlap[label]
        lines.append(f"{label:<16}{e.precision:>9.3f}{e.recall:>9.3f}{e.f1:>9.3f}"
                     f"{o.precision:>9.3f}{o.recall:>9.3f}{o.f1:>9.3f}{o.tp + o.fn:>7}")
    lines.append(f"assertion (matched findings: {sum(result.assertion_confusion.values())}): "
                 f"accuracy {result.assertion_accuracy:.3f}, "
                 f"macro F1 {result.assertion_macro_f1:.3f}")
    for label, prf in result.assertion_class_prf().items():
        e2e = result.assertion_end_to_end[label]
        lines.append(f"  {label:<10} P {prf.precision:.3f} R {prf.recall:.3f} F1 {prf.f1:.3f}"
                     f"   end-to-end (span+assertion) F1 {e2e.f1:.3f}")
    rec = result.overlap["RECOMMENDATION"]
    matched = result.recommendations_matched
    attrs = ", ".join(f"{a} {result.recommendation_attributes[a] / matched:.3f}" if matched
                      else f"{a} n/a" for a in REC_ATTRIBUTES)
    lines.append(f"recommendations: P {rec.precision:.3f} R {rec.recall:.3f} F1 {rec.f1:.3f}; "
                 f"attribute accuracy on {matched} matched: {attrs}")
    return "\n".join(lines)
