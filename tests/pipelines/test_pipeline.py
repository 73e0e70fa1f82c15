"""Batch behaviour: bad reports get an error, never sink the batch; output order is input order."""

import pytest

from pipelines.pipeline import RadiologyPipeline, ReportInput
from pipelines.schema import AnalysisError, ReportAnalysis

GOOD = "No pneumothorax. Small left pleural effusion."


def test_bad_reports_do_not_sink_a_batch(rules_pipeline):
    garbage = "".join(chr(33 + (i * 7919) % 90) for i in range(1_000_000))  # 1 MB of noise
    reports = [
        ReportInput("good-1", GOOD),
        ReportInput("empty", "   "),
        ReportInput("garbage", garbage[:250_000]),
        ReportInput("too-long", garbage),
        ReportInput("not-text", b"\xff\xfe bytes"),  # type: ignore[arg-type]
        ReportInput("replacement-chars", "No \ufffd\ufffd effusion.\x00"),
        ReportInput("good-2", GOOD),
    ]
    results = list(rules_pipeline.analyze_stream(reports, batch_size=3))
    assert [r.id for r in results] == [r.id for r in reports]
    kinds = {r.id: type(r) for r in results}
    assert kinds["empty"] is AnalysisError
    assert kinds["too-long"] is AnalysisError
    assert "E004" in next(r for r in results if r.id == "too-long").error
    assert kinds["not-text"] is AnalysisError
    assert kinds["garbage"] is ReportAnalysis
    assert kinds["replacement-chars"] is ReportAnalysis
    good = [r for r in results if r.id.startswith("good")]
    assert all(isinstance(r, ReportAnalysis) for r in good)
    assert good[0].model_dump(exclude={"id"}) == good[1].model_dump(exclude={"id"})


def test_component_failure_is_reported_per_report(rules_pipeline, monkeypatch):
    measurements = rules_pipeline.nlp.get_pipe("radnlp_measurements")
    original = measurements.__call__

    def failing(doc):
        if "boom" in doc.text:
            raise RuntimeError("simulated component failure")
        return original(doc)

    monkeypatch.setattr(type(measurements), "__call__", lambda self, doc: failing(doc))
    results = list(rules_pipeline.analyze_stream(
        [ReportInput("a", GOOD), ReportInput("b", "boom 6 mm nodule"), ReportInput("c", GOOD)]))
    assert isinstance(results[1], AnalysisError)
    assert "radnlp_measurements" in results[1].error
    assert isinstance(results[0], ReportAnalysis) and isinstance(results[2], ReportAnalysis)


@pytest.mark.parametrize("batch_size", [1, 2, 64])
def test_batch_size_does_not_change_results(rules_pipeline, batch_size):
    texts = [GOOD, "6 mm nodule in the right upper lobe. Recommend CT chest in 6 months.",
             "Possible pneumonia."]
    reports = [ReportInput(str(i), t) for i, t in enumerate(texts)]
    expected = [rules_pipeline.analyze(t, str(i)) for i, t in enumerate(texts)]
    assert list(rules_pipeline.analyze_stream(reports, batch_size=batch_size)) == expected


def test_unknown_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="E001"):
        RadiologyPipeline.load("quantum")
