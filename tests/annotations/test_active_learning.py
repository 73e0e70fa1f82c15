"""Uncertainty ordering: the formula on hand-made analyses, the ranking on real full-mode ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annotations.active_learning import order_by_uncertainty, uncertainty
from pipelines.pipeline import RadiologyPipeline
from pipelines.schema import FindingOut, ReportAnalysis

GOLD = Path(__file__).resolve().parents[2] / "annotations" / "gold" / "gold.jsonl"
CONFIDENT = "FINDINGS: No pneumothorax. No pleural effusion."


def _analysis(report_id: str, *findings: tuple[list[str], float]) -> ReportAnalysis:
    return ReportAnalysis(id=report_id, model_version="test", findings=[
        FindingOut(text="x", start=0, end=1, sources=sources, score=score)
        for sources, score in findings])


def test_formula_confidence_and_disagreement_terms():
    both = ["rules", "transformer"]
    assert uncertainty(_analysis("empty")) == 0.0
    assert uncertainty(_analysis("sure", (both, 1.0))) == 0.0
    assert uncertainty(_analysis("doubt", (both, 0.9), (both, 0.4))) == pytest.approx(0.3)
    # One of two findings found by the transformer alone: D = 0.5.
    assert uncertainty(_analysis("split", (both, 1.0), (["transformer"], 1.0))) == 0.25
    assert uncertainty(_analysis("rules", (["rules"], 1.0))) == 0.5


def test_order_is_most_uncertain_first_and_stable_on_ties():
    both = ["rules", "transformer"]
    analyses = [_analysis("a", (both, 0.95)), _analysis("b", (both, 0.2)),
                _analysis("c", (both, 0.95)), _analysis("d")]
    assert order_by_uncertainty(analyses) == ["b", "a", "c", "d"]


@pytest.fixture(scope="module")
def full_pipeline() -> RadiologyPipeline:
    return RadiologyPipeline.load("full")


def test_low_score_transformer_findings_rank_above_a_confident_report(full_pipeline):
    record = next(json.loads(line) for line in GOLD.read_text().splitlines()
                  if '"gold-a-004"' in line)
    doubtful = full_pipeline.analyze(record["text"], "doubtful")
    confident = full_pipeline.analyze(CONFIDENT, "confident")
    low = [f for f in doubtful.findings if "transformer" in f.sources and f.score < 0.5]
    assert low, [(f.text, f.sources, f.score) for f in doubtful.findings]
    assert all(set(f.sources) == {"rules", "transformer"} and f.score > 0.9
               for f in confident.findings)
    # A clear margin, not a model-specific level: the doubtful report's uncertainty is at
    # least three times the confident one's.
    assert uncertainty(doubtful) > 0.3 > 0.1 > uncertainty(confident)
    assert order_by_uncertainty([confident, doubtful]) == ["doubtful", "confident"]
