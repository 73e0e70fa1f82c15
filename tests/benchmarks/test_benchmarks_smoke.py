"""Smoke tests: each benchmark's ``main`` on tiny fixtures written here, in the CMC format."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks import cmc2007, gold_peer, throughput
from pipelines.corpora import read_cmc

# medspaCy's matchers warn about their empty sub-matchers on every call.
pytestmark = pytest.mark.filterwarnings("ignore:.*W036")

TRAIN: list[tuple[str, list[str], str, str]] = [
    ("1", ["486"], "Cough and fever.", "Right lower lobe pneumonia."),
    ("2", ["591"], "Follow up hydronephrosis.", "Normal kidneys."),
    ("3", ["786.07"], "Wheezing.", "Possible atelectasis at the left base. No pneumonia."),
]
TEST: list[tuple[str, list[str], str, str]] = [
    ("4", [], "Abdominal pain.", "Normal abdomen."),
    ("5", [], "", ""),
]


def _write_cmc(path: Path, docs: list[tuple[str, list[str], str, str]]) -> None:
    parts = ["<docs>"]
    for doc_id, codes, history, impression in docs:
        parts.append(f'<doc id="{doc_id}" type="RADIOLOGY_REPORT"><codes>')
        parts += [f'<code origin="CMC_MAJORITY" type="ICD-9-CM">{c}</code>' for c in codes]
        parts.append(f'<code origin="COMPANY1" type="ICD-9-CM">518.0</code></codes><texts>'
                     f'<text origin="CCHMC_RADIOLOGY" type="CLINICAL_HISTORY">{history}</text>'
                     f'<text origin="CCHMC_RADIOLOGY" type="IMPRESSION">{impression}</text>'
                     "</texts></doc>")
    parts.append("</docs>")
    path.write_text("\n".join(parts))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    _write_cmc(tmp_path / "cmc2007_train.xml", TRAIN)
    _write_cmc(tmp_path / "cmc2007_test_nocodes.xml", TEST)
    return tmp_path


def _row(output: str, first: str) -> list[str]:
    return next(line.split() for line in output.splitlines() if line.startswith(first + " "))


def test_read_cmc_builds_text_and_keeps_majority_codes(data_dir: Path) -> None:
    report = read_cmc(data_dir / "cmc2007_train.xml")[0]
    assert report.text == ("CLINICAL HISTORY: Cough and fever.\n\n"
                           "IMPRESSION: Right lower lobe pneumonia.")
    assert report.text[report.impression_start:].startswith("IMPRESSION:")
    assert report.codes == {"486"}


def test_code_map_names_lexicon_findings() -> None:
    cmc2007.check_code_map()


def test_cmc2007_main(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cmc2007.main([str(data_dir)]) == 0
    out = capsys.readouterr().out
    # Last 12 cells: TP FP FN P R F1 for ours, then for medspaCy; the one before is support.
    pneumonia = _row(out, "486")
    assert pneumonia[-13:-6] == ["1", "1", "0", "0", "1.000", "1.000", "1.000"]
    hydronephrosis = _row(out, "591")  # named in the history only: not coded
    assert hydronephrosis[-13:-6] == ["1", "0", "0", "1", "0.000", "0.000", "0.000"]
    atelectasis = _row(out, "518.0")  # "possible" does not code; COMPANY1 codes are not gold
    assert atelectasis[-13:-6] == ["0", "0", "0", "0", "0.000", "0.000", "0.000"]
    assert _row(out, "micro")[-12:-9] == ["1", "0", "1"]
    assert "ours (rules)       analysed without error: 3/3" in out
    assert "medspaCy default   analysed without error: 3/3" in out
    assert out.count("analysed without error: 2/2") == 2  # report 5 has empty parts


def test_throughput_main(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert throughput.main([str(data_dir), "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "5 reports" in out
    assert float(_row(out, "ours")[-2]) > 0
    assert "ratio ours/medspaCy:" in out


def test_gold_peer_main(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = "IMPRESSION: No pneumothorax. Small right pleural effusion."
    spans = [{"start": text.index(t), "end": text.index(t) + len(t), "label": "FINDING",
              "assertion": a} for t, a in (("pneumothorax", "absent"),
                                           ("pleural effusion", "present"))]
    gold = tmp_path / "gold.jsonl"
    gold.write_text(json.dumps({"id": "g1", "split": "test", "text": text, "spans": spans}) + "\n"
                    + json.dumps({"id": "g2", "split": "dev", "text": "x", "spans": []}) + "\n")
    assert gold_peer.main([str(gold), "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert "reports: 1" in out
    assert _row(out, "FINDING overlap F1")[-2:] == ["1.000", "1.000"]
    assert _row(out, "assertion accuracy")[-2] == "1.000"


def test_ingest_main(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import ingest

    postgres = os.environ.get("RADNLP_TEST_POSTGRES_URL")
    args = ["--cmc", str(data_dir / "cmc2007_train.xml"), "--n", "6", "--mode", "rules",
            "--repeat", "1", *(["--postgres", postgres] if postgres else [])]
    assert ingest.main(args) == 0
    rows = {line.strip().split("  ")[0]: line.split() for line in
            capsys.readouterr().out.splitlines()}
    assert rows["radnlp analyze (pipeline alone)"][4] == "6"
    sqlite = rows["service, SQLite"]
    # 6 reports: a DiagnosticReport, an order and a Patient each, plus their findings.
    assert sqlite[2] == "6" and int(sqlite[-1]) >= 18
    assert ("service, PostgreSQL" in rows) == bool(postgres)
    steps = {name: float(rows[name][-2]) for name in
             ("intake: parse, inbox, ACK", "worker: analyse", "worker: prepare", "worker: store")}
    assert all(seconds > 0 for seconds in steps.values())


@pytest.mark.postgres
@pytest.mark.skipif(not os.environ.get("RADNLP_TEST_POSTGRES_URL"),
                    reason="benchmarks/audit.py runs on PostgreSQL")
def test_audit_main(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import audit

    url = os.environ["RADNLP_TEST_POSTGRES_URL"]
    assert audit.main(["--postgres", url, "--n", "2000", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2,000 follow-ups and 2,000 measure rows loaded")
    timings = {line.rsplit(None, 1)[0].strip(): line.rsplit(None, 1)[1]
               for line in out.splitlines()[3:]}
    assert set(timings) == {"summary (all states, rates)", "summary by month",
                            "summary by modality", "overdue worklist, first page of 50",
                            "overdue worklist, CT, page 100", "measure 364", "measure 405",
                            "measure 406"}
    assert all(value.isdigit() for value in timings.values())


def test_access_log_main(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import access_log

    postgres = os.environ.get("RADNLP_TEST_POSTGRES_URL")
    args = ["--entries", "500", "--patients", "600", "--repeat", "2"]
    assert access_log.main(args + (["--postgres", postgres] if postgres else [])) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "SQLite: loaded 500 entries in " + lines[0].split(" in ")[1]
    table = lines[lines.index("median ms of 2 runs; 500 entries over 600 patients") + 1:]
    assert table[0].split()[1:] == (["SQLite", "PostgreSQL"] if postgres else ["SQLite"])
    operations = [row.rsplit(None, 2 if postgres else 1) for row in table[2:]]
    assert [op[0].strip() for op in operations] == [
        "write, 1 patient(s)", "write, 50 patient(s)", "write, 500 patient(s)",
        "search: one patient", "search: one patient, last 30 days", "search: one key"]
    assert all(float(value) > 0 for op in operations for value in op[1:])


def test_load_main(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import load

    assert load.main(["--rate", "10", "--seconds", "4", "--interval", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("rate 10/s for 4 s, mode rules")
    rows = [line.split() for line in lines[3:-1]]
    assert rows and int(rows[-1][1]) >= 30  # messages sent
    assert all(row[2] == "0" for row in rows)  # every one acknowledged AA
    assert all(float(row[-1]) > 0 for row in rows)  # the service's memory was read
    assert any(row[-2] != "-" for row in rows)  # and the worker's store time
    summary = lines[-1]
    assert summary.startswith("summary: sent ") and ", not AA 0," in summary
    assert "backlog at end" in summary and "RSS MiB first" in summary


def test_recommendations_main(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import recommendations

    errors = tmp_path / "errors.tsv"
    assert recommendations.main(["--split", "test", "--errors", str(errors)]) == 0
    out = capsys.readouterr().out
    assert "detection (all kinds) F1" in out and "keyword" in out
    rows = errors.read_text().splitlines()
    assert rows[0].startswith("system\treport\terror")


def test_keyword_baseline_reads_a_sentence() -> None:
    from benchmarks.recommendations import keyword_baseline

    [rec] = keyword_baseline("IMPRESSION: Nodule. Recommend CT chest in 3 months.")
    assert (rec.modality, rec.body_region, rec.interval_min_days) == ("CT", "chest", 90)
    assert rec.text == "Recommend CT chest in 3 months."


@pytest.mark.slow
def test_workers_main(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import workers

    postgres = os.environ.get("RADNLP_TEST_POSTGRES_URL")
    assert workers.main(["--n", "40", "--processes", "1,2", "--batch-size", "8",
                         *(["--postgres", postgres] if postgres else [])]) == 0
    output = capsys.readouterr().out
    assert _row(output.replace("    sqlite", "sqlite"), "sqlite")[2] == "40"
    assert ("postgresql" in output) == bool(postgres)


@pytest.mark.slow
def test_backfill_main(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import backfill

    assert backfill.main([str(data_dir), "--n", "12", "--actors", "1", "--mode", "rules"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()
            if line.strip().startswith("1 ")]
    assert rows and rows[0][1] == "12" and rows[0][2] == "0"


def test_intake_fairness_main(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import intake_fairness

    # 600 groups: over the 64 KB at which a message goes to the large-message pool.
    assert intake_fairness.main(["--large", "2", "--groups", "600"]) == 0
    out = capsys.readouterr().out
    assert "2 large messages of" in out
    for name in ("configured (large messages in their own pool)",
                 "shared pool of 4 threads (before issue 17)"):
        row = next(line.split() for line in out.splitlines() if line.strip().startswith(name))
        aa, sent = row[-1].split("/")
        assert aa == sent and int(row[-5]) >= 3  # every message AA; small ones were timed
