"""The annotation document: validation, pre-annotation from the pipeline, the gold form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from annotations.document import AnnotatedRecommendation, AnnotatedReport, AnnotatedSpan
from pipelines.evaluation import predicted_spans
from pipelines.pipeline import RadiologyPipeline

GOLD = Path(__file__).resolve().parents[2] / "annotations" / "gold" / "gold.jsonl"

REPORT = ("FINDINGS:\nThere is a 6 mm nodule in the right upper lobe. No pneumothorax. "
          "Possible small left pleural effusion.\n"
          "IMPRESSION:\nFollow-up CT chest in 6-12 months is recommended.")
TEXT = "No pneumothorax. Small left pleural effusion."


def test_pre_annotation_from_a_rules_analysis(rules_pipeline: RadiologyPipeline) -> None:
    analysis = rules_pipeline.analyze(REPORT, "r1")
    report = AnnotatedReport.from_analysis(analysis, REPORT, split="dev")

    assert (report.id, report.split, report.model_version) == ("r1", "dev", "rules-2026.11")
    assert {(s.source, s.status) for s in [*report.spans, *report.recommendations]} == {
        ("model", "pending")}
    by_text = {(s.text, s.label): s for s in report.spans}
    assert set(by_text) == {("6 mm", "MEASUREMENT"), ("nodule", "FINDING"),
                            ("right upper lobe", "ANATOMY"), ("pneumothorax", "FINDING"),
                            ("pleural effusion", "FINDING")}
    nodule = by_text[("nodule", "FINDING")]
    assert (nodule.assertion, nodule.concept, nodule.laterality) == ("present", "nodule", "right")
    effusion = by_text[("pleural effusion", "FINDING")]
    assert (effusion.assertion, effusion.laterality) == ("possible", "left")
    assert by_text[("pneumothorax", "FINDING")].assertion == "absent"
    assert by_text[("right upper lobe", "ANATOMY")].assertion is None
    assert [s.start for s in report.spans] == sorted(s.start for s in report.spans)

    [rec] = report.recommendations
    assert rec.text == "Follow-up CT chest in 6-12 months is recommended."
    assert (rec.modality, rec.body_region, rec.interval_min_days, rec.interval_max_days,
            rec.conditional) == ("CT", "chest", 180, 365, False)


def test_pre_annotation_matches_the_evaluation_flattening_on_gold_reports(
        rules_pipeline: RadiologyPipeline) -> None:
    for line in GOLD.read_text().splitlines()[:40]:
        data = json.loads(line)
        analysis = rules_pipeline.analyze(data["text"], data["id"])
        report = AnnotatedReport.from_analysis(analysis, data["text"])
        ours = {(s.start, s.end, s.label, s.assertion) for s in report.spans}
        ours |= {(r.start, r.end, "RECOMMENDATION", None) for r in report.recommendations}
        assert ours == {(s.start, s.end, s.label, s.assertion)
                        for s in predicted_spans(analysis)}, data["id"]


def test_text_is_filled_from_the_offsets() -> None:
    report = AnnotatedReport(id="r", text=TEXT, spans=[
        AnnotatedSpan(start=3, end=15, label="FINDING", assertion="absent")],
        recommendations=[{"start": 17, "end": 45}])
    assert report.spans[0].text == "pneumothorax"
    assert report.recommendations[0].text == "Small left pleural effusion."
    assert report.spans[0].source == "annotator" and report.spans[0].status == "accepted"


@pytest.mark.parametrize(("span", "message"), [
    ({"start": 3, "end": 99, "label": "FINDING"},
     "FINDING span 3-99 '': end is past the end of the report text (45 characters)"),
    ({"start": 15, "end": 15, "label": "FINDING"},
     "FINDING span 15-15 '': end must be greater than start"),
    ({"start": 3, "end": 15, "label": "FINDING", "text": "pneumonia"},
     "FINDING span 3-15 'pneumonia': text does not match the report text at these offsets "
     "('pneumothorax')"),
    ({"start": 23, "end": 27, "label": "ANATOMY", "assertion": "absent"},
     "ANATOMY span 23-27 'left': only FINDING spans have an assertion (got 'absent')"),
])
def test_invalid_spans_are_named_in_the_error(span: dict, message: str) -> None:
    with pytest.raises(ValidationError) as error:
        AnnotatedReport(id="r7", text=TEXT, spans=[span])
    assert f"report 'r7': {message}" in str(error.value)


def test_duplicate_spans_and_recommendations_are_refused() -> None:
    span = {"start": 3, "end": 15, "label": "FINDING", "assertion": "absent"}
    with pytest.raises(ValidationError, match="FINDING span 3-15 'pneumothorax': duplicate span"):
        AnnotatedReport(id="r", text=TEXT, spans=[span, {**span, "assertion": "present"}])
    # Same offsets under another label is not a duplicate.
    AnnotatedReport(id="r", text=TEXT, spans=[span, {**span, "label": "ANATOMY",
                                                     "assertion": None}])
    rec = {"start": 17, "end": 45}
    with pytest.raises(ValidationError, match=r"recommendation 17-45 .*: duplicate"):
        AnnotatedReport(id="r", text=TEXT, recommendations=[rec, rec])


@pytest.mark.parametrize("span", [
    {"start": 3, "end": 15, "label": "DISEASE"},
    {"start": 3, "end": 15, "label": "FINDING", "assertion": "negated"},
    {"start": 3, "end": 15, "label": "FINDING", "status": "rejected"},
    {"start": -1, "end": 15, "label": "FINDING"},
    {"start": 3, "end": 15, "label": "FINDING", "score": 0.9},
])
def test_unknown_values_and_fields_are_refused(span: dict) -> None:
    with pytest.raises(ValidationError):
        AnnotatedReport(id="r", text=TEXT, spans=[span])


def test_every_gold_line_reads_and_writes_back_unchanged() -> None:
    lines = GOLD.read_text().splitlines()
    assert len(lines) >= 150
    for line in lines:
        data = json.loads(line)
        report = AnnotatedReport.from_gold_dict(data)
        assert all(s.source == "annotator" and s.status == "accepted" for s in report.spans)
        assert report.to_gold_dict() == data


def test_gold_dict_keeps_the_extra_fields() -> None:
    report = AnnotatedReport(
        id="r", text=TEXT, split="test", modality="XR", model_version="rules-1",
        annotator="alice",
        spans=[AnnotatedSpan(start=3, end=15, label="FINDING", assertion="absent",
                             concept="pneumothorax", source="model", status="pending"),
               AnnotatedSpan(start=23, end=27, label="ANATOMY", laterality="left")],
        recommendations=[AnnotatedRecommendation(start=17, end=45, status="pending")])
    data = report.to_gold_dict()
    assert data["spans"] == [
        {"start": 3, "end": 15, "label": "FINDING", "text": "pneumothorax",
         "assertion": "absent", "concept": "pneumothorax", "source": "model",
         "status": "pending"},
        {"start": 23, "end": 27, "label": "ANATOMY", "text": "left", "laterality": "left"}]
    assert data["recommendations"][0]["status"] == "pending"
    assert "source" not in data["recommendations"][0]
    assert (data["model_version"], data["annotator"]) == ("rules-1", "alice")
    assert AnnotatedReport.from_gold_dict(json.loads(json.dumps(data))) == report


def test_accepted_accepts_every_pending_item(rules_pipeline: RadiologyPipeline) -> None:
    report = AnnotatedReport.from_analysis(rules_pipeline.analyze(REPORT, "r1"), REPORT)
    assert report.pending == len(report.spans) + len(report.recommendations) > 0
    accepted = report.accepted()
    assert accepted.pending == 0
    assert {s.source for s in accepted.spans} == {"model"}
    assert report.pending > 0  # the original is untouched
    assert [s.model_copy(update={"status": "pending"}) for s in accepted.spans] == report.spans
