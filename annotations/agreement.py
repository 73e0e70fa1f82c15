"""Inter-annotator agreement: span F1 per label and Cohen's kappa on finding assertions.

Span agreement uses exact matching: two spans agree when start, end and label are all equal
(recommendations count under the label ``RECOMMENDATION``). Annotator ``b`` is scored against
annotator ``a``: tp = spans in both, fp = only in ``b``, fn = only in ``a``. F1 = 2tp / (2tp + fp +
fn) does not change when ``a`` and ``b`` swap, so it serves as the agreement measure.

Cohen's kappa is computed over the FINDING spans that both annotators marked with the same
offsets, pairing their assertions (an unset assertion counts as ``present``, as in
``pipelines.evaluation``). With n pairs, po the fraction of pairs with equal assertions, and
p_a(k), p_b(k) the fraction of pairs where each annotator chose category k:

    pe = sum_k p_a(k) * p_b(k)
    kappa = (po - pe) / (1 - pe)

Kappa is undefined (``None``) when there are no pairs, or when pe = 1, which happens exactly when
both annotators gave one and the same category to every pair (then po = 1 too and the formula is
0 / 0).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from annotations.document import AnnotatedReport
from pipelines.evaluation import ENTITY_LABELS, PRF


def _labelled_offsets(report: AnnotatedReport) -> set[tuple[int, int, str]]:
    spans = {(s.start, s.end, s.label) for s in report.spans}
    return spans | {(r.start, r.end, "RECOMMENDATION") for r in report.recommendations}


def _check_same_report(a: AnnotatedReport, b: AnnotatedReport) -> None:
    if a.id != b.id:
        raise ValueError(f"cannot compare annotations of different reports ({a.id!r}, {b.id!r})")
    if a.text != b.text:
        raise ValueError(f"report {a.id!r}: the two annotations are of different texts")


def span_agreement(a: AnnotatedReport, b: AnnotatedReport) -> dict[str, PRF]:
    """Exact-match counts of ``b``'s spans against ``a``'s, for every label."""
    _check_same_report(a, b)
    spans_a, spans_b = _labelled_offsets(a), _labelled_offsets(b)
    scores = {}
    for label in ENTITY_LABELS:
        label_a = {s for s in spans_a if s[2] == label}
        label_b = {s for s in spans_b if s[2] == label}
        scores[label] = PRF(tp=len(label_a & label_b), fp=len(label_b - label_a),
                            fn=len(label_a - label_b))
    return scores


def assertion_pairs(a: AnnotatedReport, b: AnnotatedReport) -> list[tuple[str, str]]:
    """(assertion in ``a``, assertion in ``b``) for each FINDING span both marked exactly."""
    _check_same_report(a, b)
    findings_b = {(s.start, s.end): s for s in b.spans if s.label == "FINDING"}
    pairs: list[tuple[str, str]] = []
    for span in a.spans:
        other = findings_b.get((span.start, span.end))
        if span.label == "FINDING" and other is not None:
            pairs.append((span.assertion or "present", other.assertion or "present"))
    return pairs


def assertion_kappa(pairs: Iterable[tuple[str, str]]) -> float | None:
    """Cohen's kappa of paired labels; ``None`` when there are no pairs or pe = 1."""
    pairs = list(pairs)
    n = len(pairs)
    if not n:
        return None
    po = sum(x == y for x, y in pairs) / n
    counts_a = Counter(x for x, _ in pairs)
    counts_b = Counter(y for _, y in pairs)
    chance = sum(counts_a[k] * counts_b[k] for k in counts_a)
    if chance == n * n:  # pe = 1, compared in integers to avoid a rounding miss
        return None
    pe = chance / (n * n)
    return (po - pe) / (1 - pe)


@dataclass
class PairAgreement:
    """Agreement between two annotators over the reports both annotated."""

    annotator_a: str
    annotator_b: str
    reports: int = 0
    per_label: dict[str, PRF] = field(default_factory=lambda: {lb: PRF() for lb in ENTITY_LABELS})
    assertion_pairs: list[tuple[str, str]] = field(default_factory=list)

    @property
    def overall(self) -> PRF:
        """Counts summed over all labels (micro average)."""
        return PRF(tp=sum(p.tp for p in self.per_label.values()),
                   fp=sum(p.fp for p in self.per_label.values()),
                   fn=sum(p.fn for p in self.per_label.values()))

    @property
    def span_f1(self) -> float | None:
        """Micro F1 over all labels; ``None`` when neither annotator marked anything."""
        return _f1_or_none(self.overall)

    @property
    def label_f1(self) -> dict[str, float | None]:
        """F1 per label; ``None`` for a label neither annotator used."""
        return {label: _f1_or_none(prf) for label, prf in self.per_label.items()}

    @property
    def matched_findings(self) -> int:
        return len(self.assertion_pairs)

    @property
    def assertion_kappa(self) -> float | None:
        return assertion_kappa(self.assertion_pairs)

    def as_dict(self) -> dict[str, Any]:
        kappa = self.assertion_kappa
        return {
            "annotators": [self.annotator_a, self.annotator_b],
            "reports": self.reports,
            "span_f1": _round(self.span_f1),
            "per_label": {label: {**prf.as_dict(), "f1": _round(self.label_f1[label])}
                          for label, prf in self.per_label.items()},
            "assertion_kappa": _round(kappa),
            "matched_findings": self.matched_findings,
        }


@dataclass
class AgreementReport:
    """Agreement for every pair of annotators (pairs in sorted annotator order)."""

    pairs: list[PairAgreement] = field(default_factory=list)

    def pair(self, a: str, b: str) -> PairAgreement:
        """The agreement between annotators ``a`` and ``b`` (in either order)."""
        for pair in self.pairs:
            if {pair.annotator_a, pair.annotator_b} == {a, b}:
                return pair
        raise KeyError(f"no agreement computed for annotators {a!r} and {b!r}")

    def as_dict(self) -> dict[str, Any]:
        return {"pairs": [pair.as_dict() for pair in self.pairs]}


def agreement_report(annotations: Mapping[str, Sequence[AnnotatedReport]]) -> AgreementReport:
    """Agreement of each annotator pair over the reports (matched by id) both annotated."""
    by_id: dict[str, dict[str, AnnotatedReport]] = {}
    for annotator, reports in annotations.items():
        own: dict[str, AnnotatedReport] = {}
        for report in reports:
            if report.id in own:
                raise ValueError(f"annotator {annotator!r} annotated report {report.id!r} twice")
            own[report.id] = report
        by_id[annotator] = own
    result = AgreementReport()
    for name_a, name_b in combinations(sorted(by_id), 2):
        pair = PairAgreement(name_a, name_b)
        reports_a, reports_b = by_id[name_a], by_id[name_b]
        for report_id in sorted(reports_a.keys() & reports_b.keys()):
            a, b = reports_a[report_id], reports_b[report_id]
            pair.reports += 1
            for label, prf in span_agreement(a, b).items():
                total = pair.per_label[label]
                total.tp += prf.tp
                total.fp += prf.fp
                total.fn += prf.fn
            pair.assertion_pairs.extend(assertion_pairs(a, b))
        result.pairs.append(pair)
    return result


def _f1_or_none(prf: PRF) -> float | None:
    return prf.f1 if prf.tp + prf.fp + prf.fn else None


def _round(value: float | None) -> float | None:
    return round(value, 4) if value is not None else None
