"""Smoke test: the active-learning benchmark's ``main`` on a tiny gold file written here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import active_learning

TEXTS = [
    ("FINDINGS: Small left pleural effusion. No pneumothorax.",
     [("pleural effusion", "present"), ("pneumothorax", "absent")]),
    ("IMPRESSION: Possible right lower lobe pneumonia.", [("pneumonia", "possible")]),
    ("FINDINGS: No consolidation. Mild cardiomegaly.",
     [("consolidation", "absent"), ("cardiomegaly", "present")]),
    ("IMPRESSION: Mild atelectasis. No pleural effusion.",
     [("atelectasis", "present"), ("pleural effusion", "absent")]),
]


def _gold(path: Path) -> Path:
    lines = []
    for i, (text, findings) in enumerate(TEXTS * 2):
        text = text if i < 4 else f"COMPARISON: None. {text}"  # the test split is held out
        spans = [{"start": text.index(t), "end": text.index(t) + len(t), "label": "FINDING",
                  "text": t, "assertion": a} for t, a in findings]
        lines.append(json.dumps({"id": f"r{i}", "split": "dev" if i < 4 else "test",
                                 "text": text, "spans": spans, "recommendations": []}))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_main_prints_both_strategies_side_by_side(tmp_path, capsys):
    gold = _gold(tmp_path / "gold.jsonl")
    code = active_learning.main([str(gold), "--sizes", "1,2,9", "--max-length", "64",
                                 "--keep", str(tmp_path / "work")])
    assert code == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("1 |", "2 |"))]
    assert [row[0] for row in rows] == ["1", "2"]  # 9 exceeds the pool of 4 and is dropped
    assert all(0.0 <= float(value) <= 1.0 for row in rows for value in (row[2], row[3]))
    assert "rules mode alone" in out
    # Seed set (1) shared, random 2 and uncertain 2 (possibly the same set): 2 or 3 models.
    assert 2 <= len(list((tmp_path / "work").glob("model-*"))) <= 3
