"""The ``radnlp`` command, run as a user runs it (a real subprocess)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.schema import ReportAnalysis

ROOT = Path(__file__).resolve().parents[2]


def radnlp(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "nlp_service.cli", *args], input=stdin,
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_analyze_jsonl_stdin_reports_bad_lines_and_keeps_going():
    stdin = "\n".join([
        json.dumps({"id": "A1", "text": "No pneumothorax. Possible left pleural effusion."}),
        "{not json",
        json.dumps({"id": "A3"}),
        json.dumps({"id": "A4", "text": "6 mm nodule in the right upper lobe."}),
    ])
    result = radnlp("analyze", stdin=stdin)
    assert result.returncode == 1
    outputs = [ReportAnalysis.model_validate_json(line) for line in result.stdout.splitlines()]
    assert [o.id for o in outputs] == ["A1", "A4"]
    assert "line 2" in result.stderr and "E005" in result.stderr
    assert "line 3" in result.stderr and "E006" in result.stderr
    assert "2 report(s) failed" in result.stderr


def test_analyze_text_files(tmp_path):
    report = tmp_path / "ACC42.txt"
    report.write_bytes("FINDINGS: No pneumothorax.\nIMPRESSION: Normal \xe9.".encode("latin-1"))
    result = radnlp("analyze", str(report))
    assert result.returncode == 0, result.stderr
    (analysis,) = [ReportAnalysis.model_validate_json(x) for x in result.stdout.splitlines()]
    assert analysis.id == "ACC42"
    assert [s.name for s in analysis.sections] == ["findings", "impression"]
    assert analysis.findings[0].assertion == "absent"


def test_analyze_samples():
    result = radnlp("analyze", "--samples")
    assert result.returncode == 0, result.stderr
    analyses = [ReportAnalysis.model_validate_json(x) for x in result.stdout.splitlines()]
    assert len(analyses) >= 5
    assert sum(len(a.recommendations) for a in analyses) >= 3


def test_evaluate_prints_scores(tmp_path):
    text = "No pneumothorax. Small left pleural effusion."
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"id": "g1", "split": "test", "text": text, "spans": [
        {"start": 3, "end": 15, "label": "FINDING", "text": "pneumothorax", "assertion": "absent"},
        {"start": 28, "end": 44, "label": "FINDING", "text": "pleural effusion",
         "assertion": "present"}], "recommendations": []}) + "\n")
    result = radnlp("evaluate", "--gold", str(gold), "--json")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert scores["entities_overlap"]["FINDING"]["f1"] == 1.0
    assert scores["assertion"]["accuracy"] == 1.0
    missing = radnlp("evaluate", "--gold", str(gold), "--split", "dev")
    assert missing.returncode == 2 and "no gold reports" in missing.stderr


@pytest.mark.slow
def test_train_writes_a_versioned_model_that_full_mode_loads(tmp_path):
    texts = ["No pneumothorax. Small left pleural effusion.",
             "Possible right lower lobe pneumonia. Recommend chest radiograph in 6 weeks."]
    lines = []
    for i, text in enumerate(texts * 2):
        spans = [{"start": text.index(w), "end": text.index(w) + len(w), "label": "FINDING",
                  "text": w, "assertion": a}
                 for w, a in (("pneumothorax", "absent"), ("pleural effusion", "present"),
                              ("pneumonia", "possible")) if w in text]
        lines.append(json.dumps({"id": f"t{i}", "split": "dev" if i < 2 else "test",
                                 "text": text, "spans": spans, "recommendations": []}))
    gold = tmp_path / "gold.jsonl"
    gold.write_text("\n".join(lines) + "\n")
    out = tmp_path / "model"
    default_before = (ROOT / "pipelines" / "models" / "DEFAULT").read_text()
    result = radnlp("train", "--version", "test-1", "--gold", str(gold), "--data-dir",
                    str(tmp_path / "no-cmc"), "--out", str(out), "--epochs", "1",
                    "--real-gold", str(tmp_path / "no-real-gold.jsonl"))
    assert result.returncode == 0, result.stderr
    card = json.loads((out / "card.json").read_text())
    assert card["version"] == "test-1"
    assert card["data"]["gold_reports"] == 2 and card["data"]["silver_reports"] == 0
    assert set(card["metrics"]) == {"rules", "full"}
    assert card["metrics"]["full"]["reports"] == 2
    assert (out / "MODEL_CARD.md").read_text().startswith("# Model test-1")
    assert (ROOT / "pipelines" / "models" / "DEFAULT").read_text() == default_before
    analysis = radnlp("analyze", "--model", str(out),
                      stdin=json.dumps({"id": "x", "text": texts[0]}))
    assert analysis.returncode == 0, analysis.stderr
    (result_line,) = analysis.stdout.splitlines()
    assert ReportAnalysis.model_validate_json(result_line).model_version == "test-1"
