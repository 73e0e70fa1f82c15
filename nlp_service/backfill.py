"""Backfill on Ray: analyse a corpus (years of reports) with an actor pool, write as it goes.

The corpus is a Ray Dataset: JSON Lines ``{"id", "text"}``, a folder of ``.txt`` files (the file
name is the id), Parquet with ``id`` and ``text`` columns, or the current reports of the
database. ``map_batches`` runs the pipeline's batch engine in a pool of actors, each loading the
model once (``num_gpus`` per actor when Ray sees GPUs). The driver writes each batch as it
arrives: stored reports through the worker's batch store path (a new version per report, as
``radnlp reanalyze`` does), other corpora as Parquet parts. A rerun skips what is done (the
report's current version already made by this model version; ids already in the output's
parts for this model version), so a crash costs at most the batches in flight.

``pip install radnlp[scale]`` brings Ray. ``radnlp backfill`` starts a local Ray itself, or
joins a cluster with ``--address``.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from sqlalchemy import Engine

if TYPE_CHECKING:
    import pandas as pd
    from ray.data import Dataset

FORMATS = ("jsonl", "text", "parquet", "stored")
ANALYSIS_COLUMNS = ("id", "model_version", "analysis", "error")


@dataclass
class Progress:
    """Rows done, rows per second and the time left, printed as batches arrive."""

    total: int
    out: TextIO = field(default_factory=lambda: sys.stderr)
    done: int = 0
    failed: int = 0
    started: float = field(default_factory=time.monotonic)

    def add(self, rows: int, failed: int) -> None:
        self.done += rows
        self.failed += failed
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate and self.total else 0.0
        print(f"backfill: {self.done}/{self.total} rows, {self.failed} failed, "
              f"{rate:.1f} rows/s, ETA {left:.0f} s", file=self.out, flush=True)


class AnalyzeBatch:
    """A Ray actor: loads the pipeline once, analyses batches of ``id``/``text`` rows.

    A report that cannot be analysed comes back with its ``error``; it never fails the batch."""

    def __init__(self, mode: str = "full", model: str = "default",
                 config: dict[str, dict[str, Any]] | None = None) -> None:
        from pipelines.pipeline import RadiologyPipeline

        self.pipeline = RadiologyPipeline.load(mode, model=model, config=config)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        import pandas as pd

        from pipelines.pipeline import ReportInput
        from pipelines.schema import AnalysisError, ReportAnalysis

        problems = batch["problem"] if "problem" in batch else [None] * len(batch)
        inputs = [ReportInput(str(report_id), str(text) if isinstance(text, str) else "")
                  for report_id, text in zip(batch["id"], batch["text"], strict=True)]
        readable = [r for r, problem in zip(inputs, problems, strict=True) if not problem]
        results = dict(zip((r.id for r in readable),
                           self.pipeline.analyze_stream(readable), strict=True))
        rows = []
        for report, problem in zip(inputs, problems, strict=True):
            result = results.get(report.id) if not problem else None
            error = (str(problem) if problem else result.error
                     if isinstance(result, AnalysisError) else None)
            rows.append({"id": report.id, "model_version": self.pipeline.model_version,
                         "analysis": result.model_dump_json()
                         if isinstance(result, ReportAnalysis) else None,
                         "error": error})
        return pd.DataFrame(rows, columns=list(ANALYSIS_COLUMNS))


def read_corpus(source: str, fmt: str, *, engine: Engine | None = None,
                model_version: str | None = None, include_same_model: bool = False
                ) -> tuple[Dataset, int]:
    """The corpus as a Dataset of ``id``/``text`` rows, and its row count."""
    import ray.data

    if fmt not in FORMATS:
        raise ValueError(f"unknown corpus format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt == "stored":
        from nlp_service.reanalysis import report_texts, reports_to_reanalyze

        if engine is None or model_version is None:
            raise ValueError("the stored corpus needs a database and a model version")
        ids = reports_to_reanalyze(engine, model_version,
                                   only_other_models=not include_same_model)
        rows = [{"id": str(report_id), "text": text}
                for report_id, (_, text) in report_texts(engine, ids).items()]
        return ray.data.from_items(rows) if rows else ray.data.from_items([]), len(rows)
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"no such corpus: {source}")
    if fmt == "jsonl":
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                rows.append({"id": str(item["id"]), "text": str(item.get("text") or ""),
                             "problem": ""})
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                # A bad line is a report that cannot be analysed, not the end of the run.
                rows.append({"id": f"{path.name}#{number}", "text": "",
                             "problem": f"line {number} is not a JSON report with an id: {exc}"})
        return ray.data.from_items(rows), len(rows)
    if fmt == "text":
        files = sorted(p for p in path.iterdir() if p.suffix == ".txt")
        rows = [{"id": p.stem, "text": p.read_text(encoding="utf-8", errors="replace")}
                for p in files]
        return ray.data.from_items(rows), len(rows)
    dataset = ray.data.read_parquet(str(path), columns=["id", "text"])
    return dataset, dataset.count()


def done_ids(out: Path, model_version: str) -> set[str]:
    """Ids the output's Parquet parts already hold for ``model_version``."""
    import pyarrow.parquet as pq

    done: set[str] = set()
    for part in sorted(out.glob("part-*.parquet")):
        table = pq.read_table(part, columns=["id", "model_version"])
        done.update(i for i, v in zip(table.column("id").to_pylist(),
                                      table.column("model_version").to_pylist(), strict=True)
                    if v == model_version)
    return done


def analyses(dataset: Dataset, *, actors: int, batch_size: int, mode: str, model: str,
             config: dict[str, dict[str, Any]] | None = None) -> Iterator[pd.DataFrame]:
    """Batches of analyses from an actor pool over ``dataset``, as they complete."""
    import ray

    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= actors else 0
    results = dataset.map_batches(
        AnalyzeBatch, fn_constructor_kwargs={"mode": mode, "model": model, "config": config},
        batch_size=batch_size, batch_format="pandas", num_gpus=gpus,
        compute=ray.data.ActorPoolStrategy(size=actors))
    yield from results.iter_batches(batch_size=batch_size, batch_format="pandas")


def backfill(source: str, fmt: str, *, out: Path | None = None, engine: Engine | None = None,
             mode: str = "full", model: str = "default", actors: int = 1,
             batch_size: int = 64, address: str | None = None,
             include_same_model: bool = False,
             config: dict[str, dict[str, Any]] | None = None,
             progress_out: TextIO | None = None) -> dict[str, int]:
    """Analyse a corpus on Ray and write each batch as it arrives: to ``out`` (Parquet parts)
    or, for ``fmt == "stored"``, to the database through the worker's batch store path.

    Returns counts: ``analysed`` (written), ``failed``, ``skipped`` (done before)."""
    import ray
    import ray.data

    from pipelines.models import model_dir
    from pipelines.models import model_version as version_of
    from pipelines.pipeline import MODES, RULES_MODEL_VERSION

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
    if (out is None) == (fmt != "stored"):
        raise ValueError("write stored reports back to the database, and other corpora to "
                         "--out (a folder of Parquet parts)")
    if actors < 1 or batch_size < 1:
        raise ValueError("--actors and --batch-size must be at least 1")
    if fmt != "stored" and not Path(source).exists():
        raise FileNotFoundError(f"no such corpus: {source}")
    version = version_of(model_dir(model)) if mode == "full" else RULES_MODEL_VERSION
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False, ignore_reinit_error=True)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        dataset, total = read_corpus(source, fmt, engine=engine, model_version=version,
                                     include_same_model=include_same_model)
        skipped = 0
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            done = done_ids(out, version)
            if done:
                before = total
                dataset = dataset.map_batches(lambda rows: rows[~rows["id"].isin(done)],
                                              batch_format="pandas")
                total = dataset.count()
                skipped = before - total
        counts = {"analysed": 0, "failed": 0, "skipped": skipped}
        progress = Progress(total, out=progress_out or sys.stderr)
        write = _parquet_writer(out) if out is not None else _store_writer(engine)
        if total:
            for batch in analyses(dataset, actors=actors, batch_size=batch_size, mode=mode,
                                  model=model, config=config):
                written, failed = write(batch)
                counts["analysed"] += written
                counts["failed"] += failed
                progress.add(len(batch), failed)
        return counts
    finally:
        if started_here:
            ray.shutdown()


def _parquet_writer(out: Path) -> Callable[[pd.DataFrame], tuple[int, int]]:
    run = uuid.uuid4().hex[:8]
    parts = iter(range(1_000_000_000))

    def write(batch: pd.DataFrame) -> tuple[int, int]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(batch[list(ANALYSIS_COLUMNS)], preserve_index=False)
        # Written whole then renamed: a crash leaves no half part that a rerun would trust.
        final = out / f"part-{run}-{next(parts):06d}.parquet"
        partial = final.with_suffix(".tmp")
        pq.write_table(table, partial)
        partial.rename(final)
        failed = int(batch["error"].notna().sum())
        return len(batch) - failed, failed

    return write


def _store_writer(engine: Engine | None) -> Callable[[pd.DataFrame], tuple[int, int]]:
    from nlp_service.reanalysis import store_analyses
    from pipelines.schema import AnalysisError, ReportAnalysis

    if engine is None:
        raise ValueError("the stored corpus needs a database")

    def write(batch: pd.DataFrame) -> tuple[int, int]:
        results: dict[int, ReportAnalysis | AnalysisError] = {}
        for report_id, analysis, error in zip(batch["id"], batch["analysis"], batch["error"],
                                              strict=True):
            results[int(report_id)] = (ReportAnalysis.model_validate_json(analysis)
                                       if isinstance(analysis, str)
                                       else AnalysisError(id=str(report_id), error=str(error)))
        counts = store_analyses(engine, results)
        return counts["reanalysed"], counts["failed"]

    return write
