"""The real gold recommendations: the files as shipped, and the checks that guard them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from annotations.real_gold import split_of
from annotations.recommendation_gold import (
    BODY_REGIONS,
    KINDS,
    MODALITIES,
    REAL_GOLD,
    build,
    check_line,
    read_annotated,
)
from pipelines.evaluation import load_gold

GOLD = Path(__file__).resolve().parents[2] / "annotations" / "gold"
SHIPPED = GOLD / "real_recommendations.jsonl"


def _line(text: str, **rec: object) -> dict:
    rec = {("text" if key == "text_" else key): value for key, value in rec.items()}
    start = text.index("Recommend")
    body = {"start": start, "end": len(text), "text": text[start:], "kind": "imaging",
            "modalities": ["CT"], "body_region": "chest", "interval_min_days": 90,
            "interval_max_days": 90, "conditional": False, "next_step": None,
            "finding": "pulmonary nodule"} | rec
    return {"id": "team-1", "split": split_of("team-1"), "source": "team", "text": text,
            "recommendations": [body]}


TEXT = "IMPRESSION: 5 mm nodule. Recommend CT chest in 3 months."


def test_a_good_line_passes() -> None:
    assert check_line(_line(TEXT), "x") == []


@pytest.mark.parametrize(("change", "message"), [
    ({"kind": "follow-up"}, "kind"),
    ({"modalities": ["CAT"]}, "modalities"),
    ({"modalities": "CT"}, "modalities"),
    ({"body_region": "lung"}, "body_region"),
    ({"interval_min_days": 200}, "interval"),
    ({"interval_min_days": None}, "interval"),
    ({"conditional": "no"}, "conditional"),
    ({"text": "Recommend MRI."}, "is "),
    ({"next_step": {"modalities": [], "interval_min_days": 5, "interval_max_days": 1}},
     "next_step"),
])
def test_each_wrong_attribute_is_named(change: dict, message: str) -> None:
    errors = check_line(_line(TEXT, **{("text_" if k == "text" else k): v
                                        for k, v in change.items()}), "x")
    assert errors and message in errors[0]


def test_a_wrong_split_or_bad_json_stops_the_build(tmp_path: Path) -> None:
    line = _line(TEXT)
    (tmp_path / "annotated_1.jsonl").write_text(
        json.dumps(line | {"split": "dev" if line["split"] == "test" else "test"}) + "\n{\n")
    with pytest.raises(SystemExit, match="split of team-1"):
        build(tmp_path, "tester", tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("path", [SHIPPED, REAL_GOLD])
def test_shipped_recommendations_pass_the_checks(path: Path) -> None:
    lines, errors = read_annotated([path])
    assert errors == []
    recs = [rec for line in lines for rec in line["recommendations"]]
    assert recs, "the set has recommendations"
    assert {rec["kind"] for rec in recs} <= set(KINDS)
    assert {m for rec in recs for m in rec["modalities"]} <= set(MODALITIES)
    assert {rec["body_region"] for rec in recs} <= {None, *BODY_REGIONS}


def test_shipped_set_cites_real_sources_and_loads_for_scoring() -> None:
    lines = [json.loads(line) for line in SHIPPED.read_text().splitlines()]
    assert len(lines) >= 400
    assert all(line["source"].startswith(("Open-i", "CMC 2007")) for line in lines)
    assert not {line["id"] for line in lines} & {
        json.loads(line)["id"] for line in REAL_GOLD.read_text().splitlines()}
    reports = load_gold(SHIPPED)
    kinds = {rec.kind for report in reports for rec in report.recommendations}
    assert {"imaging", "clinical_correlation", "communication"} <= kinds
