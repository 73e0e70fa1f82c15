"""The ``radnlp`` command line: analyze and evaluate reports."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from nlp_service.core.config import settings
from pipelines.errors import Errors
from pipelines.pipeline import MODES, RadiologyPipeline, ReportInput
from pipelines.schema import AnalysisError

SAMPLES_DIR = Path(__file__).resolve().parent.parent / "pipelines" / "resources" / "samples"
JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}

app = typer.Typer(help="Radiology report NLP: findings, assertions and follow-up recommendations.",
                  no_args_is_help=True, add_completion=False)

ModeOption = Annotated[str, typer.Option("--mode", help=f"Pipeline mode: {', '.join(MODES)}.")]
ModelOption = Annotated[str, typer.Option(
    "--model", help="Model version (a name under pipelines/models, or a folder) for --mode "
                    "full; 'default' is the one named in pipelines/models/DEFAULT.")]


def _read_jsonl(lines: Iterator[str], source: str) -> Iterator[ReportInput | AnalysisError]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            yield AnalysisError(id=None, error=f"{source}: {Errors.E005.format(detail=exc.msg)}",
                                line=number)
            continue
        report_id = str(data.get("id", f"{source}:{number}")) if isinstance(data, dict) else None
        text = data.get("text") if isinstance(data, dict) else None
        if not isinstance(text, str) or not text.strip():
            yield AnalysisError(id=report_id, error=f"{source}: {Errors.E006}", line=number)
            continue
        yield ReportInput(report_id or f"{source}:{number}", text)


def _read_inputs(paths: list[Path]) -> Iterator[ReportInput | AnalysisError]:
    if not paths or paths == [Path("-")]:
        yield from _read_jsonl(sys.stdin, "<stdin>")
        return
    for path in paths:
        try:
            if path.suffix.lower() in JSONL_SUFFIXES:
                with path.open(encoding="utf-8", errors="replace") as handle:
                    yield from _read_jsonl(handle, str(path))
            else:
                yield ReportInput(path.stem, path.read_bytes().decode("utf-8", errors="replace"))
        except OSError as exc:
            yield AnalysisError(id=path.stem, error=Errors.E007.format(path=path,
                                                                       detail=exc.strerror))


@app.command()
def analyze(
    paths: Annotated[list[Path] | None, typer.Argument(
        help="Text files (one report each) or JSON Lines files of {\"id\", \"text\"}; "
             "none or '-' reads JSON Lines from standard input.")] = None,
    mode: ModeOption = settings.pipeline_mode,
    model: ModelOption = "default",
    samples: Annotated[bool, typer.Option("--samples", help="Analyse the bundled sample reports.")]
    = False,
) -> None:
    """Analyse reports and print one JSON object per report (JSON Lines) on standard output."""
    if samples:
        paths = sorted(SAMPLES_DIR.glob("*.txt"))
    pipeline = RadiologyPipeline.load(mode, model=model, max_chars=settings.max_report_chars)
    failed = 0

    def valid_inputs() -> Iterator[ReportInput]:
        nonlocal failed
        for item in _read_inputs(paths or []):
            if isinstance(item, AnalysisError):
                failed += 1
                where = f"line {item.line}: " if item.line else ""
                typer.echo(f"error: {where}{item.error}", err=True)
            else:
                yield item

    for result in pipeline.analyze_stream(valid_inputs(), batch_size=settings.batch_size):
        if isinstance(result, AnalysisError):
            failed += 1
            typer.echo(f"error: report {result.id}: {result.error}", err=True)
        else:
            sys.stdout.write(result.model_dump_json() + "\n")
    sys.stdout.flush()
    if failed:
        typer.echo(f"{failed} report(s) failed", err=True)
        raise typer.Exit(code=1)


@app.command()
def evaluate(
    gold: Annotated[Path, typer.Option("--gold", exists=True, dir_okay=False,
                                       help="Gold JSON Lines file (annotations/gold/*.jsonl).")],
    mode: ModeOption = settings.pipeline_mode,
    model: ModelOption = "default",
    split: Annotated[str | None, typer.Option(help="Only reports of this split (dev, test).")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
) -> None:
    """Score the pipeline against a gold set: entities, assertions, recommendations."""
    from pipelines.evaluation import evaluate as score
    from pipelines.evaluation import format_report, load_gold

    reports = load_gold(gold, split=split)
    if not reports:
        typer.echo(f"error: no gold reports in {gold}" + (f" for split {split!r}" if split else ""),
                   err=True)
        raise typer.Exit(code=2)
    pipeline = RadiologyPipeline.load(mode, model=model)
    predictions = {}
    for result in pipeline.analyze_stream(ReportInput(r.id, r.text) for r in reports):
        if isinstance(result, AnalysisError):
            typer.echo(f"error: report {result.id}: {result.error}", err=True)
        else:
            predictions[result.id] = result
    scores = score(reports, predictions)
    if as_json:
        typer.echo(json.dumps({"mode": mode, "model_version": pipeline.model_version,
                               **scores.as_dict()}, indent=2))
    else:
        typer.echo(format_report(scores, f"{gold} mode={mode} model={pipeline.model_version}"))


@app.command()
def train(
    version: Annotated[str, typer.Option(help="Version name of the new model, e.g. "
                                              "ner-2026.11-1.")],
    gold: Annotated[Path, typer.Option(exists=True, dir_okay=False,
                                       help="Gold JSON Lines (its dev split is trained on, its "
                                            "test split evaluated).")]
    = Path("annotations/gold/gold.jsonl"),
    data_dir: Annotated[Path | None, typer.Option(
        help="Folder with the CMC 2007 XML files for silver labels (skipped if absent).")]
    = Path("../shared/data"),
    out: Annotated[Path | None, typer.Option(help="Output folder (default: "
                                                  "pipelines/models/VERSION).")] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 2,
    seed: Annotated[int, typer.Option()] = 13,
    set_default: Annotated[bool, typer.Option("--set-default", help="Make it the default "
                                              "model of --mode full.")] = False,
) -> None:
    """Fine-tune the NER and assertion models (seeded) and write a versioned model folder."""
    from pipelines.models import DEFAULT_FILE, MODELS_DIR
    from pipelines.training import TrainConfig, model_card_markdown, train_model_version

    folder = out or MODELS_DIR / version
    card = train_model_version(gold_path=gold, data_dir=data_dir, out_dir=folder,
                               version=version, config=TrainConfig(epochs=epochs, seed=seed))
    typer.echo(model_card_markdown(card))
    if set_default:
        DEFAULT_FILE.write_text(f"{folder.name if folder.parent == MODELS_DIR else folder}\n")
        typer.echo(f"default model: {version}")


if __name__ == "__main__":
    app()
