"""Backfill on a local Ray: an actor pool analyses a corpus, each batch is written as it arrives,
a rerun skips what is done, and a bad report never sinks a batch."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import ray
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from nlp_service.backfill import backfill
from nlp_service.intake.receiver import receive_message
from nlp_service.storage.models import Report
from nlp_service.worker import Worker
from pipelines.pipeline import RULES_MODEL_VERSION, RadiologyPipeline
from pipelines.schema import ReportAnalysis

pytestmark = pytest.mark.slow

TEXTS = [
    "FINDINGS: 7 mm solid nodule in the right upper lobe. IMPRESSION: Recommend CT in 6 months.",
    "FINDINGS: The lungs are clear of focal airspace disease, pneumothorax, or effusion.",
    "FINDINGS: Small left pleural effusion. Mild cardiomegaly.",
    "IMPRESSION: Right lower lobe infiltrate, possibly pneumonia.",
    "FINDINGS: No acute fracture. Degenerative change of the spine.",
    "FINDINGS: Stable 4 mm calcified granuloma in the left lower lobe.",
]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield
    ray.shutdown()


def _corpus(tmp_path: Path, count: int, *, bad_lines: bool = False) -> Path:
    lines = [json.dumps({"id": f"r{i}", "text": TEXTS[i % len(TEXTS)]}) for i in range(count)]
    if bad_lines:
        lines += ["{not json", json.dumps({"id": "empty", "text": ""})]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(lines) + "\n")
    return corpus


def _rows(out: Path) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    for part in sorted(out.glob("part-*.parquet")):
        for row in pq.read_table(part).to_pylist():
            assert row["id"] not in rows, f"{row['id']} written twice"
            rows[row["id"]] = row
    return rows


def test_a_corpus_becomes_parquet_analyses_equal_to_the_pipelines(
        local_ray: None, tmp_path: Path, rules_pipeline: RadiologyPipeline) -> None:
    out = tmp_path / "out"
    progress = io.StringIO()

    counts = backfill(str(_corpus(tmp_path, 12, bad_lines=True)), "jsonl", out=out,
                      mode="rules", actors=2, batch_size=4, progress_out=progress)

    assert counts == {"analysed": 12, "failed": 2, "skipped": 0}
    rows = _rows(out)
    assert len(rows) == 14
    for i in range(12):
        analysis = ReportAnalysis.model_validate_json(rows[f"r{i}"]["analysis"])
        expected = rules_pipeline.analyze(TEXTS[i % len(TEXTS)], f"r{i}")
        assert analysis == expected
        assert rows[f"r{i}"]["model_version"] == RULES_MODEL_VERSION
    assert "not a JSON report" in rows["corpus.jsonl#13"]["error"]
    assert rows["empty"]["analysis"] is None and "empty" in rows["empty"]["error"].lower()
    assert "rows/s" in progress.getvalue() and "ETA" in progress.getvalue()


def test_a_rerun_resumes_where_the_last_run_stopped(local_ray: None, tmp_path: Path) -> None:
    out = tmp_path / "out"
    # A first run that got through the first half (as if it crashed there)...
    half = tmp_path / "half"
    half.mkdir()
    backfill(str(_corpus(half, 5)), "jsonl", out=out, mode="rules", batch_size=2,
             progress_out=io.StringIO())
    # ...then the whole corpus: only the rest is analysed, and nothing twice.
    counts = backfill(str(_corpus(tmp_path, 10)), "jsonl", out=out, mode="rules",
                      batch_size=2, progress_out=io.StringIO())

    assert counts == {"analysed": 5, "failed": 0, "skipped": 5}
    assert sorted(_rows(out), key=lambda i: int(i[1:])) == [f"r{i}" for i in range(10)]
    again = backfill(str(_corpus(tmp_path, 10)), "jsonl", out=out, mode="rules",
                     progress_out=io.StringIO())
    assert again == {"analysed": 0, "failed": 0, "skipped": 10}


def test_stored_reports_get_new_versions_through_the_store_path(
        local_ray: None, engine: Engine, oru: Callable[..., str],
        rules_pipeline: RadiologyPipeline) -> None:
    for number, text in enumerate(TEXTS[:4]):
        message = oru(f"BF{number}", f"BF-{number}", text, mrn=f"MRN80000{number}")
        assert receive_message(engine, message.encode(), source="test").ack_code == "AA"
    assert Worker(engine, rules_pipeline, batch_size=10).run_until_empty().reports == 4

    # Every report is already this model's: a backfill has nothing to do unless asked.
    assert backfill("", "stored", engine=engine, mode="rules",
                    progress_out=io.StringIO()) == {"analysed": 0, "failed": 0, "skipped": 0}
    counts = backfill("", "stored", engine=engine, mode="rules", batch_size=3,
                      include_same_model=True, progress_out=io.StringIO())

    assert counts == {"analysed": 4, "failed": 0, "skipped": 0}
    with Session(engine) as session:
        current = session.exec(select(Report).where(col(Report.is_current))).all()
        assert sorted((r.accession, r.version) for r in current) == [
            (f"BF-{n}", 2) for n in range(4)]
        stored = {r.accession: ReportAnalysis.model_validate(r.analysis) for r in current}
    assert stored["BF-0"].id == "BF-0"
    assert stored["BF-0"].recommendations and stored["BF-0"].recommendations[0].modality == "CT"


def test_bad_arguments_fail_before_ray_starts(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mode"):
        backfill(str(tmp_path), "jsonl", out=tmp_path / "o", mode="fast")
    with pytest.raises(ValueError, match="Parquet"):
        backfill(str(tmp_path), "jsonl", mode="rules")
    with pytest.raises(ValueError, match="at least 1"):
        backfill(str(tmp_path), "jsonl", out=tmp_path / "o", mode="rules", actors=0)


def test_the_command_line_reports_counts_and_refuses_a_missing_corpus(
        local_ray: None, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from nlp_service.cli import app

    runner = CliRunner()
    out = tmp_path / "out"
    result = runner.invoke(app, ["backfill", str(_corpus(tmp_path, 3)), "--out", str(out),
                                 "--mode", "rules"])
    assert result.exit_code == 0, result.output
    assert "analysed 3, failed 0, skipped (done before) 0" in result.output
    missing = runner.invoke(app, ["backfill", str(tmp_path / "nope.jsonl"), "--out", str(out),
                                  "--mode", "rules"])
    assert missing.exit_code == 2 and "no such corpus" in missing.output


def test_a_backfill_killed_mid_run_resumes_and_stores_each_report_once(tmp_path: Path) -> None:
    """The command on a local Ray of its own, 2 actors, 500 reports, SIGKILLed (with its Ray)
    once the first batch is written; the rerun analyses only the rest."""
    import os
    import signal
    import subprocess
    import sys
    import time

    corpus, out = _corpus(tmp_path, 500), tmp_path / "out"
    command = [sys.executable, "-m", "nlp_service.cli", "backfill", str(corpus), "--out",
               str(out), "--mode", "rules", "--actors", "2", "--batch-size", "5"]
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    first = subprocess.Popen(command, cwd=root, env=env, start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while not (out.exists() and any(out.glob("part-*.parquet"))):
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.02)
    os.killpg(first.pid, signal.SIGKILL)  # the driver and the Ray it started
    first.wait(timeout=60)
    written = len(_rows(out))
    assert 0 < written < 500, "the run was not cut short"

    rerun = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True,
                           timeout=300)

    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"skipped (done before) {written}" in rerun.stdout
    rows = _rows(out)  # raises if any report was written twice
    assert sorted(rows) == sorted(f"r{i}" for i in range(500))
    assert all(row["analysis"] for row in rows.values())
