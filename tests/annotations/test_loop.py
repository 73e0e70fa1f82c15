"""The whole annotation loop on a small set: a stored report is pre-annotated, an annotator
corrects a wrong negation and adds a missed finding, the export trains a new model version,
which is evaluated, recorded, activated, and re-analyses the report: the new analysis (and
its FHIR Observations) reflect the corrections."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session, col, select

from annotations.registry import activate, active_version, list_versions
from annotations.training import train_from_annotations
from nlp_service.reanalysis import reanalyze
from nlp_service.storage.models import FhirResource, Report
from pipelines.models import MODELS_DIR
from pipelines.pipeline import RadiologyPipeline
from pipelines.training import TrainConfig
from tests.conftest import LiveService

TEXT = ["FINDINGS: The left pleural effusion has disappeared. Mild tracheomalacia.",
        "No pneumothorax."]
# Weighted up so that a few seconds of training on one report change the model's output.
LOOP_TRAINING = TrainConfig(epochs=3, batch_size=4, trainable_layers=3, max_length=64,
                            threads=2)
GOLD = [("g-dev", "dev", "FINDINGS: Small right pleural effusion. No pneumothorax.",
         {"pleural effusion": "present", "pneumothorax": "absent"}),
        ("g-test", "test", "IMPRESSION: Mild cardiomegaly. No focal consolidation.",
         {"cardiomegaly": "present", "consolidation": "absent"})]


def _gold_file(path: Path) -> Path:
    lines = []
    for report_id, split, text, findings in GOLD:
        spans = [{"start": text.index(t), "end": text.index(t) + len(t), "label": "FINDING",
                  "text": t, "assertion": a} for t, a in findings.items()]
        lines.append(json.dumps({"id": report_id, "split": split, "text": text, "spans": spans,
                                 "recommendations": []}))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_annotate_export_train_activate_reanalyse(live_service: LiveService, tmp_path: Path,
                                                  oru: Callable[..., str]) -> None:
    base = live_service.base_url
    api = f"{base}/api/v1/annotations"
    httpx.post(f"{base}/api/v1/hl7", content=oru("L1", "ACC-LOOP", TEXT).encode(),
               headers={"content-type": "x-application/hl7-v2+er7"})
    live_service.drain()
    stored = httpx.get(f"{base}/api/v1/reports/1").json()
    before = {f["text"]: f["assertion"] for f in stored["findings"]}
    assert before.get("pleural effusion") == "present"  # the rules miss "has disappeared"
    assert "tracheomalacia" not in before  # and the lexicon lacks the word

    # Annotate: correct the negation, add the missed finding, accept, submit.
    task = httpx.post(f"{api}/tasks", json={"report_ids": [stored["id"]]}).json()["created"][0]
    document = httpx.get(f"{api}/tasks/{task['id']}").json()["pre_annotation"]
    text = document["text"]
    spans = [{**s, "status": "accepted"} for s in document["spans"]]
    for span in spans:
        if span["text"] == "pleural effusion":
            span["assertion"] = "absent"
    start = text.index("tracheomalacia")
    spans.append({"start": start, "end": start + len("tracheomalacia"), "label": "FINDING",
                  "text": "tracheomalacia", "assertion": "present"})
    saved = httpx.put(f"{api}/tasks/{task['id']}/annotations/ann1", json={
        "document": {**document, "spans": spans}, "state": "submitted"})
    assert saved.status_code == 200, saved.text

    # Export, train, evaluate, record.
    exported = tmp_path / "accepted.jsonl"
    exported.write_text(httpx.get(f"{api}/export").text)
    models = tmp_path / "models"
    shutil.copytree(MODELS_DIR, models, ignore=shutil.ignore_patterns("*.safetensors"))
    card = train_from_annotations(annotations_path=exported,
                                  gold_path=_gold_file(tmp_path / "gold.jsonl"),
                                  out_dir=models / "loop-1", version="loop-1",
                                  parent="ner-2026.11-1", config=LOOP_TRAINING, gold_weight=20)
    assert card["parent"] == "ner-2026.11-1"
    assert card["data"]["snapshot"]["annotations"]["reports"] == 1
    assert "FINDING" in json.dumps(card["test_metrics"])
    activate("loop-1", models_dir=models)
    assert active_version(models_dir=models) == "loop-1"
    assert [v["version"] for v in list_versions(models_dir=models) if v["active"]] == ["loop-1"]

    # Re-analyse the stored report with the new model: a new version that has the corrections.
    pipeline = RadiologyPipeline.load("full", model=str(models / "loop-1"))
    assert reanalyze(live_service.engine, pipeline) == {"reanalysed": 1, "failed": 0}
    with Session(live_service.engine) as session:
        current = session.exec(select(Report).where(Report.accession == "ACC-LOOP",
                                                    col(Report.is_current))).one()
        observations = session.exec(select(FhirResource).where(
            FhirResource.resource_type == "Observation", col(FhirResource.is_current))).all()
    after = {f["text"]: f["assertion"] for f in current.analysis["findings"]}
    assert (current.version, current.model_version) == (2, "loop-1")
    assert after["pleural effusion"] == "absent"
    assert after["tracheomalacia"] == "present"
    presence = {o.resource["code"].get("text"): o.resource["valueCodeableConcept"]["coding"][0]
                ["code"] for o in observations if o.resource["status"] != "entered-in-error"}
    assert presence["pleural effusion"] == "2667000"
    assert presence["tracheomalacia"] == "52101004"
