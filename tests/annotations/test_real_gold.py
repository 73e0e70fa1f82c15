"""The real gold tooling on team-written texts: tasks are created and pre-annotated through the
annotation API, corrected batches are submitted and exported, and a span whose text does not
match its offsets is refused before anything is sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from annotations.real_gold import (
    TASK_DB,
    SelectedReport,
    annotation_client,
    assign_batches,
    citation,
    create_task_lines,
    split_of,
    submit,
)
from pipelines.evaluation import load_gold
from pipelines.pipeline import RadiologyPipeline

SOURCE = "team-written test text"
REPORTS = [
    SelectedReport("team-1", "FINDINGS: No pneumothorax. Small left pleural effusion.\n\n"
                   "IMPRESSION: Mild cardiomegaly.", SOURCE, "XR"),
    SelectedReport("team-2", "IMPRESSION: Lungs are clear. Possible atelectasis at the right "
                   "base.", SOURCE, "XR"),
    SelectedReport("team-3", "CLINICAL HISTORY: Cough.\n\nIMPRESSION: Tracheomalacia.", SOURCE),
]


def _prepare(work: Path, pipeline: RadiologyPipeline) -> list[dict[str, Any]]:
    work.mkdir()
    with annotation_client(work / TASK_DB, pipeline) as client:
        return create_task_lines(client, REPORTS)


def _write(path: Path, lines: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_split_citation_and_batches() -> None:
    assert split_of("openi-1") == split_of("openi-1") in {"dev", "test"}
    assert "openi_dev uid 12" in (citation("openi-12") or "")
    assert citation("cmc-97636670") == ("CMC 2007 medical NLP challenge, cmc2007_train.xml "
                                        "doc 97636670")
    assert citation("team-1") is None
    reports = [SelectedReport(f"openi-{n}", "x", "") for n in range(8)] + [
        SelectedReport(f"cmc-{n}", "x", "") for n in range(4)]
    batches = assign_batches(reports)
    assert [len(b) for b in batches] == [3, 3, 3, 3]
    assert all({r.id.split("-")[0] for r in b} == {"openi", "cmc"} for b in batches)
    assert batches == assign_batches(reports)


def test_tasks_corrected_submitted_exported(tmp_path: Path,
                                            rules_pipeline: RadiologyPipeline) -> None:
    work = tmp_path / "_work"
    lines = _prepare(work, rules_pipeline)
    assert [line["id"] for line in lines] == ["team-1", "team-2", "team-3"]
    first = lines[0]
    assert first["split"] == split_of("team-1") and isinstance(first["task_id"], int)
    assert {"status", "source"}.isdisjoint(key for s in first["spans"] for key in s)
    assert any(s["text"] == "pneumothorax" and s["assertion"] == "absent"
               for s in first["spans"])

    # Correct: add the finding the lexicon lacks.
    third = lines[2]
    start = third["text"].index("Tracheomalacia")
    third["spans"] = [*third["spans"], {"start": start, "end": start + 14, "label": "FINDING",
                                        "text": "Tracheomalacia", "assertion": "present"}]
    _write(work / "corrected_1.jsonl", lines[:2])
    _write(work / "corrected_2.jsonl", lines[2:])
    out = tmp_path / "real.jsonl"
    result = submit(work, "ann1", out, pipeline=rules_pipeline)
    assert result["submitted"] == result["exported"] == 3

    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in exported] == ["team-1", "team-2", "team-3"]
    for got, sent in zip(exported, lines, strict=True):
        assert got["source"] == SOURCE and got["split"] == sent["split"]
        assert got["text"] == sent["text"] and got["annotator"] == "ann1"
        assert got["spans"] == sent["spans"]
        assert got["recommendations"] == sent["recommendations"]
    assert len(load_gold(out)) == 3  # offsets checked again by the evaluation loader

    # Submitting again (another annotator) replaces the gold version; nothing is duplicated.
    assert submit(work, "ann2", out, pipeline=rules_pipeline)["exported"] == 3
    assert {json.loads(line)["annotator"] for line in out.read_text().splitlines()} == {"ann2"}


def test_mismatching_span_is_refused_before_anything_is_sent(
        tmp_path: Path, rules_pipeline: RadiologyPipeline) -> None:
    work = tmp_path / "_work"
    lines = _prepare(work, rules_pipeline)
    span = next(s for s in lines[0]["spans"] if s["text"] == "pneumothorax")
    span["start"] += 1  # the text no longer matches the offsets
    _write(work / "corrected_1.jsonl", lines)
    out = tmp_path / "real.jsonl"
    with pytest.raises(ValueError, match=r"corrected_1\.jsonl:1: .*does not match"):
        submit(work, "ann1", out, pipeline=rules_pipeline)
    assert not out.exists()
    with annotation_client(work / TASK_DB, rules_pipeline) as client:
        queue = client.get("/api/v1/annotations/tasks").json()["items"]
    assert len(queue) == 3 and all(task["annotators"] == {} for task in queue)


def test_wrong_task_or_split_is_refused(tmp_path: Path,
                                        rules_pipeline: RadiologyPipeline) -> None:
    work = tmp_path / "_work"
    lines = _prepare(work, rules_pipeline)
    swapped = [{**lines[0], "task_id": lines[1]["task_id"]}]
    _write(work / "corrected_1.jsonl", swapped)
    with pytest.raises(ValueError, match="wrong task_id"):
        submit(work, "ann1", tmp_path / "real.jsonl", pipeline=rules_pipeline)
    other = "dev" if lines[0]["split"] == "test" else "test"
    _write(work / "corrected_1.jsonl", [{**lines[0], "split": other}])
    with pytest.raises(ValueError, match="belongs to split"):
        submit(work, "ann1", tmp_path / "real.jsonl", pipeline=rules_pipeline)
