"""The scorer against hand-computed numbers."""

import json

import pytest

from pipelines.evaluation import GoldSpan, evaluate, load_gold, match_overlapping
from pipelines.schema import FindingOut, RecommendationOut, ReportAnalysis

TEXT = "No pneumothorax. Small left pleural effusion. Recommend CT chest in 3 months."


def gold_file(tmp_path, spans, recommendations=()):
    path = tmp_path / "gold.jsonl"
    path.write_text(json.dumps({"id": "r1", "split": "test", "text": TEXT, "spans": spans,
                                "recommendations": list(recommendations)}) + "\n")
    return path


def span(text, label="FINDING", assertion=None, occurrence=1):
    start = -1
    for _ in range(occurrence):
        start = TEXT.index(text, start + 1)
    item = {"start": start, "end": start + len(text), "label": label, "text": text}
    if assertion:
        item["assertion"] = assertion
    return item


def test_scores_match_a_hand_computation(tmp_path):
    gold = load_gold(gold_file(
        tmp_path,
        [span("pneumothorax", assertion="absent"),
         span("pleural effusion", assertion="present")],
        [{**span("Recommend CT chest in 3 months."), "modality": "CT", "body_region": "chest",
          "interval_min_days": 90, "interval_max_days": 90, "conditional": False}],
    ))
    predicted = ReportAnalysis(id="r1", model_version="t", findings=[
        # exact hit, wrong assertion
        FindingOut(text="pneumothorax", start=3, end=15, assertion="possible"),
        # overlapping hit ("effusion" inside "pleural effusion"), right assertion
        FindingOut(text="effusion", start=35, end=43, assertion="present"),
        # spurious
        FindingOut(text="Small", start=17, end=22, assertion="present"),
    ], recommendations=[RecommendationOut(text="Recommend CT chest", start=46, end=64,
                                          modality="CT", body_region="chest",
                                          interval_min_days=90, interval_max_days=None)])
    result = evaluate(gold, {"r1": predicted})
    exact, overlap = result.exact["FINDING"], result.overlap["FINDING"]
    assert (exact.tp, exact.fp, exact.fn) == (1, 2, 1)
    assert (overlap.tp, overlap.fp, overlap.fn) == (2, 1, 0)
    assert overlap.precision == pytest.approx(2 / 3)
    assert overlap.f1 == pytest.approx(0.8)
    assert result.assertion_accuracy == pytest.approx(0.5)
    per_class = result.assertion_class_prf()
    assert (per_class["absent"].tp, per_class["absent"].fn) == (0, 1)
    assert (per_class["possible"].fp, per_class["present"].tp) == (1, 1)
    scores = result.as_dict()["recommendations"]
    assert scores["detection"]["f1"] == 1.0
    assert scores["modality_accuracy"] == 1.0 and scores["interval_accuracy"] == 0.0


def test_gold_offsets_are_checked(tmp_path):
    bad = span("pneumothorax")
    bad["start"] += 1
    with pytest.raises(ValueError, match="does not match"):
        load_gold(gold_file(tmp_path, [bad]))


def test_overlap_matching_is_one_to_one():
    gold = [GoldSpan(0, 10, "FINDING")]
    predicted = [GoldSpan(0, 4, "FINDING"), GoldSpan(2, 10, "FINDING")]
    assert match_overlapping(gold, predicted) == [(0, 1)]


@pytest.mark.parametrize("with_kinds", [False, True])
def test_a_gold_file_of_the_older_guidelines_scores_only_imaging_and_tissue_requests(
        tmp_path, with_kinds):
    text = "IMPRESSION: Nodule. Recommend CT or MRI. Findings were discussed with Dr. Lee."
    start = text.index("Recommend")
    rec = {"start": start, "end": start + len("Recommend CT or MRI."),
           "text": "Recommend CT or MRI.", "modality": "CT"}
    if with_kinds:
        rec |= {"kind": "imaging", "modalities": ["CT", "MR"]}
    path = tmp_path / "gold.jsonl"
    path.write_text(json.dumps({"id": "r1", "text": text, "spans": [],
                                "recommendations": [rec]}) + "\n")
    discussed = text.index("Findings")
    analysis = ReportAnalysis(id="r1", model_version="t", recommendations=[
        RecommendationOut(text=rec["text"], start=rec["start"], end=rec["end"],
                          modalities=["CT", "MR"]),
        RecommendationOut(text=text[discussed:], start=discussed, end=len(text),
                          kind="communication")])
    result = evaluate(load_gold(path), {"r1": analysis})
    detection = result.overlap["RECOMMENDATION"]
    # The older file never annotated communication: not a false hit there; the newer one
    # annotates every kind, so the unannotated communication is one.
    assert (detection.tp, detection.fp) == ((1, 1) if with_kinds else (1, 0))
    assert result.recommendation_attributes["modality"] == 1
