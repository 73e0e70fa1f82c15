"""Full mode: the shipped transformer models with the rules, through the batch engine."""

import pytest

from pipelines.pipeline import RadiologyPipeline, ReportInput
from pipelines.schema import AnalysisError, ReportAnalysis
from tests.pipelines.test_acceptance import REPORT

TEXTS = [
    REPORT,
    "FINDINGS: Small right apical pneumothorax. No pleural effusion.",
    "IMPRESSION: 1. Mild bibasilar atelectasis. 2. Pneumonia cannot be excluded.",
    "CT ABDOMEN: 2.1 x 1.8 cm simple cyst in the left kidney. No hydronephrosis.",
]


@pytest.fixture(scope="module")
def full_pipeline():
    return RadiologyPipeline.load("full")


def test_full_mode_keeps_the_acceptance_behaviour(full_pipeline, finding):
    analysis = full_pipeline.analyze(REPORT, "acc")
    assert analysis.model_version != "rules-2026.11"
    assert finding(analysis, "pneumothorax").assertion == "absent"
    assert finding(analysis, "consolidation").assertion == "absent"
    assert finding(analysis, "pleural effusion").assertion == "possible"
    nodule = next(f for f in analysis.findings if "nodule" in f.text)
    assert nodule.assertion == "present" and nodule.measurements[0].value == 6.0
    (rec,) = analysis.recommendations
    assert (rec.interval_min_days, rec.interval_max_days) == (180, 365)
    for item in analysis.findings:
        assert item.sources and set(item.sources) <= {"rules", "transformer"}
        assert 0.0 <= item.score <= 1.0
    assert any("transformer" in item.sources for item in analysis.findings)


def test_batched_and_single_agree(full_pipeline):
    reports = [ReportInput(str(i), t) for i, t in enumerate(TEXTS)]
    batched = list(full_pipeline.analyze_stream(reports, batch_size=8))
    single = [next(full_pipeline.analyze_stream([r], batch_size=1)) for r in reports]
    for a, b in zip(batched, single, strict=True):
        assert isinstance(a, ReportAnalysis) and isinstance(b, ReportAnalysis)
        assert a.model_dump(exclude={"findings"}) == b.model_dump(exclude={"findings"})
        assert [f.model_dump(exclude={"score"}) for f in a.findings] == [
            f.model_dump(exclude={"score"}) for f in b.findings]
        assert [f.score for f in a.findings] == pytest.approx([f.score for f in b.findings],
                                                              abs=1e-3)


def test_bad_input_never_sinks_the_batch(full_pipeline):
    # About 50,000 tokens of normal prose (11 per sentence) with one finding at the very end.
    long_report = "The lungs are clear and the heart size is normal. " * 4_600 + (
        "Small left pleural effusion.")
    garbage = "".join(chr(33 + (i * 7919) % 90) for i in range(1_000_000))
    reports = [ReportInput("good", TEXTS[1]), ReportInput("empty", ""),
               ReportInput("garbage", garbage), ReportInput("long", long_report),
               ReportInput("not-text", b"\xff\xfe"),  # type: ignore[arg-type]
               ReportInput("good-2", TEXTS[2])]
    results = {r.id: r for r in full_pipeline.analyze_stream(reports, batch_size=8)}
    assert isinstance(results["good"], ReportAnalysis)
    assert isinstance(results["good-2"], ReportAnalysis)
    assert isinstance(results["empty"], AnalysisError)
    assert isinstance(results["not-text"], AnalysisError)
    assert isinstance(results["garbage"], AnalysisError) and "E004" in results["garbage"].error
    long_result = results["long"]
    assert isinstance(long_result, ReportAnalysis)
    # Analysed whole: the finding at the very end of the report is found.
    assert [f.text for f in long_result.findings] == ["pleural effusion"]
    assert long_result.findings[0].laterality == "left"
