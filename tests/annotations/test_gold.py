"""The shipped gold set is well-formed: offsets, labels, splits, recommendation fields."""

import json
from pathlib import Path

from pipelines.evaluation import ASSERTIONS, ENTITY_LABELS, load_gold

GOLD = Path(__file__).resolve().parents[2] / "annotations" / "gold" / "gold.jsonl"
MODALITIES = {"CT", "MR", "US", "XR", "NM", "PT", "MG", "RF", None}


def test_gold_loads_with_checked_offsets_and_both_splits():
    reports = load_gold(GOLD)  # raises if any span's text does not match its offsets
    assert len(reports) >= 150
    assert len({r.id for r in reports}) == len(reports)
    splits = {r.split for r in reports}
    assert splits == {"dev", "test"}
    assert len(load_gold(GOLD, split="test")) >= 60


def test_labels_assertions_and_recommendations_are_valid():
    for line in GOLD.read_text().splitlines():
        report = json.loads(line)
        text = report["text"]
        for span in report["spans"]:
            assert span["label"] in ENTITY_LABELS, span
            assert text[span["start"]:span["end"]] == span["text"]
            if span["label"] == "FINDING":
                assert span["assertion"] in ASSERTIONS, span
        for rec in report["recommendations"]:
            assert text[rec["start"]:rec["end"]] == rec["text"]
            assert rec["modality"] in MODALITIES, rec
            low, high = rec["interval_min_days"], rec["interval_max_days"]
            assert (low is None) == (high is None), rec
            assert low is None or 0 < low <= high, rec
