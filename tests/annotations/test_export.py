"""Export and import: JSON Lines in the gold form and spaCy DocBin, round trips losing nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin

from annotations.document import AnnotatedReport
from annotations.export import (
    from_docbin,
    iter_jsonl,
    read_jsonl,
    read_jsonl_text,
    to_doc,
    to_docbin,
    to_jsonl_text,
    write_jsonl,
)
from pipelines.pipeline import RadiologyPipeline

GOLD = Path(__file__).resolve().parents[2] / "annotations" / "gold" / "gold.jsonl"
TEXT = "No pneumothorax.  Left 6mm\tnodule, likely granuloma."


@pytest.fixture(scope="module")
def gold() -> list[AnnotatedReport]:
    return read_jsonl(GOLD)


@pytest.fixture
def edited() -> AnnotatedReport:
    """A report with every optional field set and spans that do not align with tokens."""
    return AnnotatedReport(
        id="edited-1", text=TEXT, split="train", modality="CT", model_version="rules-2026.11",
        annotator="alice",
        spans=[
            {"start": 3, "end": 9, "label": "FINDING", "assertion": "absent",
             "concept": "pneumothorax", "source": "model", "status": "pending"},  # "pneumo"
            {"start": 3, "end": 15, "label": "FINDING", "assertion": "absent"},
            {"start": 18, "end": 22, "label": "ANATOMY", "laterality": "left"},
            {"start": 23, "end": 25, "label": "MEASUREMENT", "source": "model"},  # "6m" of "6mm"
            {"start": 27, "end": 33, "label": "FINDING", "assertion": "present",
             "laterality": "left", "status": "pending", "source": "model"},
            {"start": 42, "end": 51, "label": "FINDING", "assertion": "possible"},
        ],
        recommendations=[{"start": 18, "end": 34, "modality": "CT", "body_region": "chest",
                          "interval_min_days": 90, "interval_max_days": 180,
                          "conditional": True, "source": "model", "status": "pending"}])


def test_gold_round_trips_through_jsonl(gold: list[AnnotatedReport], tmp_path: Path) -> None:
    assert len(gold) >= 150
    path = tmp_path / "export.jsonl"
    assert write_jsonl(gold, path) == len(gold)
    assert read_jsonl(path) == gold
    written = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert written == [json.loads(line) for line in GOLD.read_text().splitlines()]


def test_gold_round_trips_through_docbin(gold: list[AnnotatedReport]) -> None:
    assert from_docbin(to_docbin(gold)) == gold


def test_jsonl_then_docbin_keeps_every_field(edited: AnnotatedReport, tmp_path: Path) -> None:
    path = tmp_path / "edited.jsonl"
    write_jsonl([edited], path)
    [read] = read_jsonl(path)
    assert read == edited
    assert from_docbin(to_docbin([read])) == [edited]


def test_docbin_holds_token_spans_and_user_data(edited: AnnotatedReport) -> None:
    doc_bin = DocBin(store_user_data=True).from_bytes(to_docbin([edited]))
    [doc] = doc_bin.get_docs(spacy.blank("en").vocab)
    assert doc.text == TEXT
    # Spans not aligned with tokens are expanded to whole tokens for spaCy consumers.
    assert [(s.text, s.label_) for s in doc.spans["annotations"]] == [
        ("pneumothorax", "FINDING"), ("pneumothorax", "FINDING"), ("Left", "ANATOMY"),
        ("6mm", "MEASUREMENT"), ("nodule", "FINDING"), ("granuloma", "FINDING")]
    data = doc.user_data["radnlp.annotations"]
    assert (data["id"], data["split"], data["modality"], data["annotator"]) == (
        "edited-1", "train", "CT", "alice")
    assert (data["spans"][0]["start"], data["spans"][0]["end"]) == (3, 9)
    assert "start" not in data["spans"][1]


def test_pre_annotations_round_trip(rules_pipeline: RadiologyPipeline, tmp_path: Path) -> None:
    reports = []
    for line in GOLD.read_text().splitlines()[:20]:
        data = json.loads(line)
        analysis = rules_pipeline.analyze(data["text"], data["id"])
        reports.append(AnnotatedReport.from_analysis(analysis, data["text"], split=data["split"]))
    assert any(r.recommendations for r in reports)
    path = tmp_path / "pre.jsonl"
    write_jsonl(reports, path)
    assert from_docbin(to_docbin(read_jsonl(path))) == reports


def test_docbin_without_our_user_data_gives_annotator_spans() -> None:
    nlp = spacy.blank("en")
    doc = nlp.make_doc("No pleural effusion.")
    doc.spans["annotations"] = [doc.char_span(3, 19, label="FINDING")]
    doc_bin = DocBin(docs=[doc])
    [report] = from_docbin(doc_bin.to_bytes())
    assert report.id == "doc-1"
    assert [(s.text, s.label, s.source, s.status) for s in report.spans] == [
        ("pleural effusion", "FINDING", "annotator", "accepted")]


def test_to_doc_accepts_a_given_pipeline(edited: AnnotatedReport) -> None:
    nlp = spacy.blank("en")
    doc = to_doc(edited, nlp)
    assert doc.vocab is nlp.vocab
    assert len(doc.spans["annotations"]) == len(edited.spans)


def test_read_errors_name_the_line(tmp_path: Path) -> None:
    good = json.dumps({"id": "r1", "text": "No effusion.", "spans": []})
    bad_span = json.dumps({"id": "r2", "text": "No effusion.", "spans": [
        {"start": 3, "end": 11, "label": "FINDING", "text": "effusions"}]})

    path = tmp_path / "bad.jsonl"
    path.write_text(f"{good}\n\n{bad_span}\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:3: invalid annotated report: report: report "
                                         r"'r2': FINDING span 3-11 'effusions': text does not"):
        read_jsonl(path)

    path.write_text(f"{good}\n{{not json\n")
    reports = iter_jsonl(path)
    assert next(reports).id == "r1"  # streamed: the first line is read before the bad one
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: not valid JSON"):
        next(reports)

    path.write_text("[1, 2]\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: expected a JSON object, got list"):
        read_jsonl(path)


def test_jsonl_text_round_trip_and_errors(edited: AnnotatedReport) -> None:
    text = to_jsonl_text([edited, edited.accepted()])
    assert text.count("\n") == 2
    assert read_jsonl_text(text) == [edited, edited.accepted()]
    message = r"^line 2: invalid annotated report: text: Field required$"
    with pytest.raises(ValueError, match=message):
        read_jsonl_text(text.splitlines()[0] + "\n" + json.dumps({"id": "x"}))
