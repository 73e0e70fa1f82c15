"""Active learning: order the annotation queue so the model's most uncertain reports come first.

Uncertainty of one full-mode analysis, in [0, 1]::

    u = 0.5 * (1 - min_f score_f) + 0.5 * D

- ``score_f`` is the transformer's mean probability that finding ``f``'s tokens belong to a
  finding. Full mode sets it on every finding, the rules-only ones too, so a lexicon finding
  the model doubts counts as much as a doubtful transformer span. One doubtful finding is
  enough to make a report worth annotating, hence the minimum.
- ``D`` is the share of findings on which rules and transformer disagree (``sources`` lacks
  ``"rules"`` or lacks ``"transformer"``): the two detectors as a committee of two.

A report without findings scores 0. Assertion probabilities are not part of ``ReportAnalysis``,
so the assertion margin does not enter. Rules-mode analyses carry no transformer scores (every
score is 1.0 and every finding rules-only, so every report with findings scores 0.5): rank with
full-mode analyses.
"""

from __future__ import annotations

from collections.abc import Iterable

from pipelines.schema import ReportAnalysis

MODEL_SOURCES = frozenset({"rules", "transformer"})


def uncertainty(analysis: ReportAnalysis) -> float:
    """How unsure the pipeline is about a report (see the module docstring for the formula)."""
    findings = analysis.findings
    if not findings:
        return 0.0
    confidence_term = 1.0 - min(f.score for f in findings)
    disagreement = sum(not set(f.sources) >= MODEL_SOURCES for f in findings) / len(findings)
    return round(0.5 * confidence_term + 0.5 * disagreement, 6)


def order_by_uncertainty(analyses: Iterable[ReportAnalysis]) -> list[str]:
    """Report ids, most uncertain first (ties keep the input order)."""
    scored = [(uncertainty(a), a.id) for a in analyses]
    return [report_id for _, report_id in sorted(scored, key=lambda item: -item[0])]
