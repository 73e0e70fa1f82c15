"""The real gold set: real de-identified reports annotated through the project's own workflow.

Two steps (``annotations/gold/GUIDELINES.md``, "Real reports"):

``python -m annotations.real_gold prepare --out annotations/gold/_work``
    Selects 160 Open-i (openi_dev) and 50 CMC 2007 (train) reports, deterministically, creates
    one annotation task per report through the annotation API (in process, on the SQLite file
    ``_work/tasks.db``; the service pre-annotates each), reads each pre-annotation back and
    writes it to ``_work/batch_1.jsonl`` .. ``batch_4.jsonl`` for the annotators to correct.

``python -m annotations.real_gold submit --work annotations/gold/_work --annotator NAME
--out annotations/gold/real.jsonl``
    Reads the corrected batches ``_work/corrected_N.jsonl``, checks every one (offsets against
    the text, task ids, splits) before sending anything, submits each as the annotator's work
    on its task, sets it as the task's gold version, exports through the API and writes the
    export, with each report's source, sorted by id.

The report texts are built by ``pipelines.corpora`` so that they equal what the benchmarks
analyse; they are read from ``../shared/data`` by path.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from annotations.document import AnnotatedReport
from annotations.export import read_jsonl_text

SEED = 20260
OPENI_COUNT = 160
CMC_COUNT = 50
BATCH_COUNT = 4
# Each Open-i label with positives gets at least this many positive reports (or all it has).
OPENI_MIN_POSITIVES = 6
# At least this many Open-i reports with no positive label (normal or other findings).
OPENI_MIN_NEGATIVE = 40
# Each CMC code with at least CMC_CODE_MIN_REPORTS reports gets CMC_MIN_PER_CODE of them.
CMC_MIN_PER_CODE = 2
CMC_CODE_MIN_REPORTS = 10

OPENI_PREFIX = "openi-"
CMC_PREFIX = "cmc-"
CMC_TEST_PREFIX = "cmc-test-"  # reports of cmc2007_test_nocodes.xml
TASK_DB = "tasks.db"
BATCH_NAME = "batch_{}.jsonl"
CORRECTED_GLOB = "corrected_*.jsonl"
API = "/api/v1/annotations"
# Report-level fields of batch and corrected lines that are not part of the annotated document.
EXTRA_FIELDS = ("task_id", "source")


@dataclass(frozen=True)
class SelectedReport:
    """A report chosen for the gold set: its gold id, text, citation and modality."""

    id: str
    text: str
    source: str
    modality: str | None = None


def split_of(report_id: str) -> str:
    """``dev`` or ``test``, from a stable hash of the report id (about half each)."""
    digest = hashlib.sha256(report_id.encode("utf-8")).digest()
    return "test" if digest[0] % 2 == 0 else "dev"


def citation(report_id: str) -> str | None:
    """Where a real report comes from (None for ids that are not real reports)."""
    if report_id.startswith(OPENI_PREFIX):
        uid = report_id.removeprefix(OPENI_PREFIX)
        return ("Open-i Indiana University chest X-ray collection (Demner-Fushman et al., "
                f"JAMIA 2016), openi_dev uid {uid}, via ../shared/data/openi_dev")
    if report_id.startswith(CMC_TEST_PREFIX):
        doc = report_id.removeprefix(CMC_TEST_PREFIX)
        return f"CMC 2007 medical NLP challenge, cmc2007_test_nocodes.xml doc {doc}"
    if report_id.startswith(CMC_PREFIX):
        doc = report_id.removeprefix(CMC_PREFIX)
        return f"CMC 2007 medical NLP challenge, cmc2007_train.xml doc {doc}"
    return None


# --- Selection -------------------------------------------------------------------------------

def _stratified(items: Sequence[Any], keys: dict[str, frozenset[str]], count: int,
                minimum: dict[str, int], rng: random.Random) -> list[Any]:
    """Pick ``count`` of ``items`` (``keys``: item id -> its labels): for each label, rarest
    first, items carrying it until ``minimum[label]`` picked items carry it; the rest at
    random. Deterministic for a given ``rng`` state and item order."""
    pool = sorted(items, key=lambda item: item.id)
    rng.shuffle(pool)
    chosen: dict[str, Any] = {}
    have: Counter[str] = Counter()
    frequency = Counter(label for item in pool for label in keys[item.id])
    for label in sorted(minimum, key=lambda name: (frequency[name], name)):
        for item in pool:
            if have[label] >= minimum[label] or len(chosen) >= count:
                break
            if label in keys[item.id] and item.id not in chosen:
                chosen[item.id] = item
                have.update(keys[item.id])
    for item in pool:
        if len(chosen) >= count:
            break
        chosen.setdefault(item.id, item)
    return list(chosen.values())


def select_openi(folder: Path, count: int = OPENI_COUNT,
                 seed: int = SEED) -> list[SelectedReport]:
    """``count`` openi_dev reports with findings or impression: several positives of every
    label, at least ``OPENI_MIN_NEGATIVE`` without any, the rest at random."""
    from pipelines.corpora import read_openi

    reports = [r for r in read_openi(folder) if r.body_start < len(r.text)]
    keys = {r.id: r.labels or frozenset({"(none)"}) for r in reports}
    labels = Counter(label for r in reports for label in r.labels)
    minimum = {label: OPENI_MIN_POSITIVES for label in labels} | {"(none)": OPENI_MIN_NEGATIVE}
    picked = _stratified(reports, keys, count, minimum, random.Random(f"openi-{seed}"))
    return [SelectedReport(f"{OPENI_PREFIX}{r.id}", r.text, citation(f"{OPENI_PREFIX}{r.id}")
                           or "", "XR") for r in picked]


def select_cmc(path: Path, count: int = CMC_COUNT, seed: int = SEED) -> list[SelectedReport]:
    """``count`` CMC reports: ``CMC_MIN_PER_CODE`` for each frequent code, the rest random."""
    from pipelines.corpora import read_cmc

    reports = [r for r in read_cmc(path) if r.text.strip()]
    keys = {r.id: r.codes for r in reports}
    codes = Counter(code for r in reports for code in r.codes)
    minimum = {code: CMC_MIN_PER_CODE for code, n in codes.items() if n >= CMC_CODE_MIN_REPORTS}
    picked = _stratified(reports, keys, count, minimum, random.Random(f"cmc-{seed}"))
    # Modality left open: CMC mixes chest radiographs and renal ultrasound.
    return [SelectedReport(f"{CMC_PREFIX}{r.id}", r.text, citation(f"{CMC_PREFIX}{r.id}") or "")
            for r in picked]


def assign_batches(reports: Sequence[SelectedReport], batches: int = BATCH_COUNT,
                   seed: int = SEED) -> list[list[SelectedReport]]:
    """Deal each source's reports (shuffled) round the batches, so every batch mixes them."""
    rng = random.Random(f"batches-{seed}")
    out: list[list[SelectedReport]] = [[] for _ in range(batches)]
    by_source: dict[str, list[SelectedReport]] = {}
    for report in reports:
        by_source.setdefault(report.id.split("-", 1)[0], []).append(report)
    turn = 0
    for source in sorted(by_source):
        group = sorted(by_source[source], key=lambda r: r.id)
        rng.shuffle(group)
        for report in group:
            out[turn % batches].append(report)
            turn += 1
    return out


# --- The annotation API, in process ------------------------------------------------------------

@contextmanager
def annotation_client(db_path: Path, pipeline: Any = None,
                      mode: str = "rules") -> Iterator[Any]:
    """A ``TestClient`` on the service app over the SQLite file ``db_path`` (created and
    migrated when new), without API keys; ``pipeline`` defaults to one loaded in ``mode``."""
    from fastapi.testclient import TestClient

    from nlp_service.api.main import create_app
    from nlp_service.core.config import Settings
    from nlp_service.storage.db import make_engine

    url = f"sqlite:///{db_path}"
    settings = Settings(database_url=url, pipeline_mode=mode, auth_required=False)
    engine = make_engine(url)
    try:
        app = create_app(settings, engine=engine, pipeline=pipeline)
        with TestClient(app) as client:
            yield client
    finally:
        engine.dispose()


def _ok(response: Any, what: str) -> Any:
    if response.status_code >= 300:
        raise RuntimeError(f"{what}: HTTP {response.status_code}: {response.text[:500]}")
    return response.json()


def _batch_span(span: dict[str, Any]) -> dict[str, Any]:
    keys = ("start", "end", "label", "text", "assertion", "concept")
    return {key: span[key] for key in keys if span.get(key) is not None}


def _batch_recommendation(rec: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in rec.items() if key not in ("source", "status")}


def create_task_lines(client: Any, reports: Sequence[SelectedReport]) -> list[dict[str, Any]]:
    """Create one task per report through the API and return each task's pre-annotation as a
    batch line (gold form plus ``source`` and ``task_id``), in the order given."""
    if len({r.id for r in reports}) != len(reports):
        raise ValueError("report ids are not unique")
    created = _ok(client.post(f"{API}/tasks", json={"documents": [
        {"id": r.id, "text": r.text} for r in reports]}), "creating tasks")["created"]
    task_ids = {task["external_id"]: task["id"] for task in created}
    lines = []
    for report in reports:
        task_id = task_ids[report.id]
        task = _ok(client.get(f"{API}/tasks/{task_id}"), f"reading task {task_id}")
        pre = task["pre_annotation"]
        if task["text"] != report.text or pre["text"] != report.text:
            raise RuntimeError(f"task {task_id} ({report.id}): the stored text is not the "
                               "report's")
        lines.append({
            "id": report.id, "split": split_of(report.id), "source": report.source,
            "modality": report.modality, "text": report.text,
            "spans": [_batch_span(s) for s in pre["spans"]],
            "recommendations": [_batch_recommendation(r) for r in pre["recommendations"]],
            "task_id": task_id})
    return lines


def _write_lines(lines: Iterable[dict[str, Any]], path: Path) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for line in lines:
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
            count += 1
    return count


def prepare(out: Path, data_dir: Path | None = None, *, seed: int = SEED, force: bool = False,
            mode: str = "rules", pipeline: Any = None) -> dict[str, Any]:
    """Select the reports, create their tasks in ``out/tasks.db`` and write the batches."""
    from pipelines.corpora import CMC_TRAIN_FILE, DEFAULT_DATA_DIR, OPENI_DIR

    data_dir = data_dir or DEFAULT_DATA_DIR
    out.mkdir(parents=True, exist_ok=True)
    db = out / TASK_DB
    if db.exists():
        if not force:
            raise FileExistsError(f"{db} exists: its tasks may already be under correction "
                                  "(give --force to start again and lose them)")
        db.unlink()
    reports = select_openi(data_dir / OPENI_DIR, seed=seed) + select_cmc(
        data_dir / CMC_TRAIN_FILE, seed=seed)
    batches = assign_batches(reports, seed=seed)
    with annotation_client(db, pipeline, mode) as client:
        lines = {line["id"]: line for line in create_task_lines(client, reports)}
    summary: dict[str, Any] = {"database": str(db), "batches": {}}
    for number, batch in enumerate(batches, 1):
        path = out / BATCH_NAME.format(number)
        _write_lines((lines[r.id] for r in batch), path)
        summary["batches"][path.name] = dict(sorted(Counter(
            f"{r.id.split('-', 1)[0]}/{split_of(r.id)}" for r in batch).items()))
    summary["total"] = dict(sorted(Counter(
        f"{r.id.split('-', 1)[0]}/{split_of(r.id)}" for r in reports).items()))
    return summary


# --- Submission ---------------------------------------------------------------------------------

def check_line(data: Any, where: str) -> AnnotatedReport:
    """The annotated report of one corrected line; ``ValueError`` naming ``where`` if its
    offsets do not match its text, it still has pending items, or fields are missing."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a JSON object")
    for key in ("id", "task_id", "text"):
        if key not in data:
            raise ValueError(f"{where}: no {key!r}")
    if not isinstance(data["task_id"], int):
        raise ValueError(f"{where}: task_id must be an integer")
    expected = split_of(str(data["id"]))
    if data.get("split", expected) != expected:
        raise ValueError(f"{where}: {data['id']!r} belongs to split {expected!r}, "
                         f"not {data.get('split')!r}")
    document = {key: value for key, value in data.items() if key not in EXTRA_FIELDS}
    try:
        report = AnnotatedReport.from_gold_dict({**document, "split": expected})
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'report'}: "
            f"{item['msg'].removeprefix('Value error, ')}" for item in error.errors())
        raise ValueError(f"{where}: {problems}") from error
    if report.pending:
        raise ValueError(f"{where}: {report.id!r} still has {report.pending} pending span(s) or "
                         "recommendation(s): accept or delete them")
    return report


def read_corrected(paths: Iterable[Path]) -> list[tuple[dict[str, Any], AnnotatedReport]]:
    """Every line of the corrected files, checked (all of them, before anything is sent)."""
    out: list[tuple[dict[str, Any], AnnotatedReport]] = []
    seen: dict[str, str] = {}
    tasks: dict[int, str] = {}
    for path in paths:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{where}: not valid JSON: {error}") from error
                report = check_line(data, where)
                if report.id in seen:
                    raise ValueError(f"{where}: {report.id!r} is also at {seen[report.id]}")
                if data["task_id"] in tasks:
                    raise ValueError(f"{where}: task {data['task_id']} is also at "
                                     f"{tasks[data['task_id']]}")
                seen[report.id], tasks[data["task_id"]] = where, where
                out.append((data, report))
    return out


def submit_lines(client: Any, checked: Sequence[tuple[dict[str, Any], AnnotatedReport]],
                 annotator: str, adjudicator: str | None = None) -> list[dict[str, Any]]:
    """Submit each report as ``annotator``'s work on its task, set it as the task's gold
    version, export the accepted annotations (JSON Lines) and return them in the real gold form
    (with ``source``), sorted by id."""
    sources = {report.id: data.get("source") for data, report in checked}
    for data, report in checked:
        task_id = data["task_id"]
        task = _ok(client.get(f"{API}/tasks/{task_id}"), f"{report.id}: reading task {task_id}")
        if task["external_id"] != report.id or task["text"] != report.text:
            raise ValueError(f"{report.id}: task {task_id} is report {task['external_id']!r} "
                             "with another text: wrong task_id")
    for data, report in checked:
        task_id = data["task_id"]
        document = report.to_gold_dict()
        _ok(client.put(f"{API}/tasks/{task_id}/annotations/{annotator}",
                       json={"document": document, "state": "submitted"}),
            f"{report.id}: submitting task {task_id}")
        _ok(client.put(f"{API}/tasks/{task_id}/gold",
                       json={"document": document, "adjudicator": adjudicator or annotator}),
            f"{report.id}: setting the gold version of task {task_id}")
    response = client.get(f"{API}/export", params={"format": "jsonl"})
    if response.status_code != 200:
        raise RuntimeError(f"export: HTTP {response.status_code}: {response.text[:500]}")
    out = []
    for exported in read_jsonl_text(response.text):
        gold = exported.to_gold_dict()
        source = citation(exported.id) or sources.get(exported.id)
        if not source:
            raise ValueError(f"{exported.id}: no source for this report")
        out.append({"id": gold["id"], "split": gold["split"], "source": source,
                    "modality": gold["modality"], "text": gold["text"], "spans": gold["spans"],
                    "recommendations": gold["recommendations"],
                    "annotator": gold.get("annotator")})
    return sorted(out, key=lambda line: line["id"])


def corrected_files(work: Path) -> list[Path]:
    """``work/corrected_N.jsonl`` in batch order."""
    def number(path: Path) -> tuple[int, str]:
        suffix = path.stem.removeprefix("corrected_")
        return (int(suffix) if suffix.isdigit() else sys.maxsize, path.name)

    return sorted(work.glob(CORRECTED_GLOB), key=number)


def submit(work: Path, annotator: str, out: Path, *, adjudicator: str | None = None,
           mode: str = "rules", pipeline: Any = None) -> dict[str, Any]:
    """Check and submit every corrected batch of ``work``, export, write ``out``."""
    db = work / TASK_DB
    if not db.exists():
        raise FileNotFoundError(f"{db} does not exist: run prepare first")
    paths = corrected_files(work)
    if not paths:
        raise FileNotFoundError(f"no {CORRECTED_GLOB} in {work}")
    checked = read_corrected(paths)
    with annotation_client(db, pipeline, mode) as client:
        lines = submit_lines(client, checked, annotator, adjudicator)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_lines(lines, out)
    return {"files": [p.name for p in paths], "submitted": len(checked), "exported": len(lines),
            "by_split": dict(sorted(Counter(line["split"] for line in lines).items())),
            "out": str(out)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m annotations.real_gold",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare", help="select reports, create tasks, write batches")
    prep.add_argument("--out", type=Path, default=Path("annotations/gold/_work"))
    prep.add_argument("--data", type=Path, default=None, help="../shared/data by default")
    prep.add_argument("--seed", type=int, default=SEED)
    prep.add_argument("--force", action="store_true",
                      help="delete an existing tasks.db (and its annotations) first")
    prep.add_argument("--mode", default="rules", help="pipeline mode for pre-annotation")
    sub = commands.add_parser("submit", help="submit corrected batches, export real.jsonl")
    sub.add_argument("--work", type=Path, default=Path("annotations/gold/_work"))
    sub.add_argument("--annotator", required=True)
    sub.add_argument("--adjudicator", default=None, help="the annotator by default")
    sub.add_argument("--out", type=Path, default=Path("annotations/gold/real.jsonl"))
    sub.add_argument("--mode", default="rules")
    args = parser.parse_args(argv)
    try:
        if args.command == "prepare":
            result = prepare(args.out, args.data, seed=args.seed, force=args.force,
                             mode=args.mode)
        else:
            result = submit(args.work, args.annotator, args.out, adjudicator=args.adjudicator,
                            mode=args.mode)
    except (ValueError, FileExistsError, FileNotFoundError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
