"""Retraining from annotations and the model registry, on tiny data and a temporary models dir."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from annotations.registry import activate, active_version, check_version, list_versions
from annotations.training import file_sha256, train_from_annotations
from nlp_service.cli import app
from pipelines.models import MODELS_DIR
from pipelines.pipeline import RadiologyPipeline
from pipelines.training import TrainConfig

TINY = TrainConfig(epochs=1, batch_size=4, trainable_layers=1, max_length=64, threads=1)
TEXTS = [
    "FINDINGS: Small left pleural effusion. No pneumothorax.",
    "IMPRESSION: Possible right lower lobe pneumonia.",
    "FINDINGS: No consolidation. Mild cardiomegaly.",
    "IMPRESSION: Stable 6 mm nodule in the left upper lobe.",
]
FINDINGS = {"pleural effusion": "present", "pneumothorax": "absent", "pneumonia": "possible",
            "consolidation": "absent", "cardiomegaly": "present", "nodule": "present"}


def _report(report_id: str, split: str, text: str) -> dict:
    spans = [{"start": text.index(term), "end": text.index(term) + len(term), "label": "FINDING",
              "text": term, "assertion": assertion}
             for term, assertion in FINDINGS.items() if term in text]
    return {"id": report_id, "split": split, "text": text, "spans": spans,
            "recommendations": []}


def _write(path: Path, reports: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in reports))
    return path


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, Path]:
    annotations = _write(tmp_path / "accepted.jsonl",
                         [_report(f"acc-{i}", "train", t) for i, t in enumerate(TEXTS[:3])])
    gold = _write(tmp_path / "gold.jsonl", [_report("g-dev", "dev", TEXTS[3]),
                                            _report("g-test-1", "test", TEXTS[0] + " Edema."),
                                            _report("g-test-2", "test", "IMPRESSION: Mild "
                                                    "cardiomegaly. No pneumothorax.")])
    return annotations, gold


def test_annotations_holding_a_test_report_are_refused(data, tmp_path):
    _, gold = data
    leaky = _write(tmp_path / "leaky.jsonl", [_report("g-test-2", "train", TEXTS[2])])
    with pytest.raises(ValueError, match="never trained on"):
        train_from_annotations(annotations_path=leaky, gold_path=gold, out_dir=tmp_path / "m",
                               version="m", parent=None, config=TINY)
    assert not (tmp_path / "m").exists()


def test_registry_lists_the_shipped_models_and_refuses_bad_names(tmp_path):
    versions = list_versions()
    shipped = next(v for v in versions if v["version"] == "ner-2026.11-1")
    assert shipped["metrics"]["finding_f1_overlap"] > 0.5
    assert sum(v["active"] for v in versions) == 1
    assert check_version(MODELS_DIR / active_version()) == []
    with pytest.raises(ValueError):
        activate("../elsewhere", models_dir=tmp_path)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "card.json").write_text('{"version": "broken"}')
    with pytest.raises(ValueError, match="does not load"):
        activate("broken", models_dir=tmp_path)
    with pytest.raises(FileNotFoundError):
        activate("missing", models_dir=tmp_path)
    assert not (tmp_path / "DEFAULT").exists()


def test_cli_model_list_and_activate_errors():
    runner = CliRunner()
    listed = runner.invoke(app, ["model", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert any(v["version"] == "ner-2026.11-1" for v in json.loads(listed.output))
    refused = runner.invoke(app, ["model", "activate", "no-such-version"])
    assert refused.exit_code == 2


@pytest.mark.slow
def test_train_from_annotations_then_list_and_activate(data, tmp_path):
    annotations, gold = data
    models = tmp_path / "models"
    models.mkdir()
    shutil.copytree(MODELS_DIR / "ner-2026.11-1", models / "ner-2026.11-1")
    (models / "DEFAULT").write_text("ner-2026.11-1\n")
    folder = models / "ann-1"

    card = train_from_annotations(annotations_path=annotations, gold_path=gold, out_dir=folder,
                                  version="ann-1", parent="ner-2026.11-1", config=TINY,
                                  gold_weight=1)

    assert card["parent"] == "ner-2026.11-1"
    snapshot = card["data"]["snapshot"]
    assert snapshot["annotations"]["sha256"] == file_sha256(annotations)
    assert snapshot["gold"]["sha256"] == file_sha256(gold)
    assert (snapshot["annotations"]["reports"], snapshot["annotations"]["spans"]) == (3, 5)
    assert snapshot["gold"]["train"]["reports"] == 1 and snapshot["gold"]["test"]["reports"] == 2
    assert card["data"]["gold_reports"] == 4  # 3 annotated + 1 gold dev, never the test split
    metrics = card["test_metrics"]
    assert metrics["split"] == "test" and metrics["full"]["reports"] == 2
    assert {"finding_f1_overlap", "assertion_accuracy", "by_label"} <= set(metrics["full"])
    assert card["created"] and card["settings"]["epochs"] == 1
    assert json.loads((folder / "card.json").read_text()) == card
    assert "Parent version: ner-2026.11-1" in (folder / "MODEL_CARD.md").read_text()

    pipeline = RadiologyPipeline.load("full", model=str(folder))
    assert pipeline.model_version == "ann-1"
    analysis = pipeline.analyze("FINDINGS: No pneumothorax.", "t")
    assert "pneumothorax" in [f.text for f in analysis.findings]

    listed = {v["version"]: v for v in list_versions(models)}
    assert listed["ann-1"]["parent"] == "ner-2026.11-1" and not listed["ann-1"]["active"]
    assert listed["ner-2026.11-1"]["active"]
    activate("ann-1", models_dir=models)
    assert active_version(models) == "ann-1"
    assert (models / "DEFAULT").read_text() == "ann-1\n"
    assert [v["version"] for v in list_versions(models) if v["active"]] == ["ann-1"]
    assert sorted(p.name for p in models.iterdir()) == ["DEFAULT", "ann-1", "ner-2026.11-1"]
