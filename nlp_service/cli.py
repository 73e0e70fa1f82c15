"""The ``radnlp`` command line: analyse and evaluate reports, run and feed the service."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from nlp_service.core.config import settings
from nlp_service.notify.commands import notify_app
from nlp_service.security import ROLES
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
    annotations: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False, help="Accepted annotations (gold JSON Lines export): "
                                          "train on them plus the gold dev split.")] = None,
    parent: Annotated[str | None, typer.Option(help="Parent version recorded with "
                                                    "--annotations (default: the active one).")]
    = None,
    real_gold: Annotated[Path | None, typer.Option(
        dir_okay=False, help="Real gold set: its dev split is trained on, its test split "
                             "evaluated (skipped if absent).")]
    = Path("annotations/gold/real.jsonl"),
) -> None:
    """Fine-tune the NER and assertion models (seeded) and write a versioned model folder."""
    from pipelines.models import DEFAULT_FILE, MODELS_DIR
    from pipelines.training import TrainConfig, model_card_markdown, train_model_version

    folder = out or MODELS_DIR / version
    if annotations is not None:
        _train_from_annotations(annotations=annotations, parent=parent, gold=gold,
                                data_dir=data_dir, folder=folder, version=version,
                                config=TrainConfig(epochs=epochs, seed=seed),
                                set_default=set_default)
        return
    card = train_model_version(gold_path=gold, data_dir=data_dir, out_dir=folder,
                               version=version, config=TrainConfig(epochs=epochs, seed=seed),
                               real_gold_path=real_gold if real_gold and real_gold.is_file()
                               else None)
    typer.echo(model_card_markdown(card))
    if set_default:
        DEFAULT_FILE.write_text(f"{folder.name if folder.parent == MODELS_DIR else folder}\n")
        typer.echo(f"default model: {version}")


HostOption = Annotated[str | None, typer.Option("--host", help="MLLP host (default "
                                                "RADNLP_MLLP_HOST).")]
PortOption = Annotated[int | None, typer.Option("--port", help="MLLP port (default "
                                                "RADNLP_MLLP_PORT).")]


@app.command()
def serve(
    ingest_samples: Annotated[bool, typer.Option(
        "--ingest-samples", help="Once listening, send the bundled HL7 samples over MLLP and "
                                 "say where to look (on a first run, with a new admin key).")]
    = False,
) -> None:
    """Run the HTTP API, the MLLP listener and the worker in one process."""
    import functools

    from nlp_service.core.config import Settings
    from nlp_service.server import run_service

    current = Settings()
    admin_key = _first_key(current, create=ingest_samples) if current.auth_required else None
    run_service(current, on_ready=functools.partial(_ingest_samples_and_report,
                                                    admin_key=admin_key)
                if ingest_samples else None)


def _first_key(current: Any, *, create: bool) -> str | None:
    """With no key at all and ``create``, a new admin key; with no live key, say how to make
    one (every request but /healthz and /readyz is refused until then)."""
    from nlp_service.security import count_live_keys, create_key, list_keys
    from nlp_service.storage.db import make_engine, migrate, session_scope

    engine = make_engine(current.database_url)
    migrate(engine)
    try:
        with session_scope(engine) as session:
            if create and not list_keys(session):
                key, _ = create_key(session, name="first-look admin", roles=["admin"])
                return key
            if count_live_keys(session):
                return None
    finally:
        engine.dispose()
    typer.echo("No API key exists yet: the HTTP API refuses every request but /healthz and "
               "/readyz.\nCreate one (it is printed once) with:\n"
               "  radnlp keys create --name NAME --role admin\n"
               f"roles: {', '.join(ROLES)}; then sign in at /login or send "
               "'Authorization: Bearer <key>'.", err=True)
    return None


@app.command()
def worker(
    once: Annotated[bool, typer.Option("--once", help="Process the inbox until it is empty, "
                                                      "then exit.")] = False,
    processes: Annotated[int, typer.Option(
        "--processes", min=1, max=64, help="Worker processes to run under one supervisor "
                                           "(several only help on PostgreSQL).")] = 1,
) -> None:
    """Run the batch worker alone (as many as you like, on PostgreSQL)."""
    from nlp_service.core.config import Settings
    from nlp_service.core.logging import configure_logging
    from nlp_service.server import make_worker, run_service
    from nlp_service.storage.db import make_engine, migrate

    current = Settings()
    if processes > 1 and not once:
        from nlp_service.worker_pool import run_worker_processes

        configure_logging(current.log_level)
        migrate(make_engine(current.database_url))
        run_worker_processes(current, processes)
        return
    if once:
        configure_logging(current.log_level)
        engine = make_engine(current.database_url)
        migrate(engine)
        outcome = make_worker(current, engine).run_until_empty()
        typer.echo(f"messages done {outcome.done}, reports stored {outcome.reports}, "
                   f"retried {outcome.failed}, set aside {outcome.set_aside}")
        return
    run_service(current, api=False, mllp=False, worker=True)


@app.command()
def backfill(
    source: Annotated[str, typer.Argument(
        help="The corpus: a JSON Lines file, a folder of .txt files, a Parquet file or folder; "
             "'stored' for the current reports of the database.")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl, text, parquet or stored (default: "
                                                      "from SOURCE).")] = "",
    out: Annotated[Path | None, typer.Option(
        "--out", help="Folder of Parquet parts for the analyses (not for 'stored').")] = None,
    mode: ModeOption = "full",
    model: ModelOption = "default",
    actors: Annotated[int, typer.Option("--actors", min=1, help="Ray actors, each with the "
                                                                 "pipeline loaded once.")] = 1,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 64,
    address: Annotated[str | None, typer.Option(
        "--address", help="An existing Ray cluster (default: a local Ray started here).")]
    = None,
    include_same_model: Annotated[bool, typer.Option(
        "--include-same-model", help="'stored': also reports this model already made.")]
    = False,
) -> None:
    """Analyse a corpus on Ray (pip install radnlp[scale]); a rerun skips what is done."""
    from nlp_service.backfill import backfill as run_backfill

    engine = None
    if source == "stored":
        from nlp_service.core.config import Settings
        from nlp_service.storage.db import make_engine, migrate

        engine = make_engine(Settings().database_url)
        migrate(engine)
    chosen = fmt or ("stored" if source == "stored" else "text" if Path(source).is_dir()
                     and not any(Path(source).glob("*.parquet")) else "parquet"
                     if source.endswith(".parquet") or Path(source).is_dir() else "jsonl")
    try:
        counts = run_backfill(source, chosen, out=out, engine=engine, mode=mode, model=model,
                              actors=actors, batch_size=batch_size, address=address,
                              include_same_model=include_same_model)
    except (ValueError, FileNotFoundError) as exc:
        typer.echo(f"radnlp backfill: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"analysed {counts['analysed']}, failed {counts['failed']}, skipped (done "
               f"before) {counts['skipped']}")
    if counts["failed"]:
        raise typer.Exit(1)


@app.command()
def mllp() -> None:
    """Run the MLLP listener alone."""
    from nlp_service.core.config import Settings
    from nlp_service.server import run_service

    run_service(Settings(), api=False, mllp=True, worker=False)


@app.command()
def ingest(
    paths: Annotated[list[Path] | None, typer.Argument(
        help="HL7 files (one or more ORU^R01 messages each).")] = None,
    samples: Annotated[bool, typer.Option("--samples", help="Send the bundled HL7 samples.")]
    = False,
    host: HostOption = None,
    port: PortOption = None,
) -> None:
    """Send HL7 files over MLLP and print each ACK; exit code 1 if any was not AA."""
    from nlp_service.core.config import Settings
    from nlp_service.intake.client import SAMPLES_DIR, read_messages, send_messages

    current = Settings()
    files = sorted(SAMPLES_DIR.glob("*.hl7")) if samples else list(paths or [])
    if not files:
        typer.echo("error: give HL7 files or --samples", err=True)
        raise typer.Exit(code=2)
    refused = 0
    try:
        for sent in send_messages(read_messages(files), host or current.mllp_host,
                                  port or current.mllp_port):
            typer.echo(f"{sent.source}\t{sent.control_id}\t{sent.ack_code or '?'}")
            refused += sent.ack_code != "AA"
    except OSError as exc:
        typer.echo(f"error: cannot reach the MLLP listener: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    if refused:
        typer.echo(f"{refused} message(s) not accepted", err=True)
        raise typer.Exit(code=1)


def _ingest_samples_and_report(current: object, http_port: int, mllp_port: int, *,
                               admin_key: str | None = None) -> None:
    """Send the samples to this service, wait for the worker, and print where to look."""
    import time

    from sqlmodel import Session, col, func, select

    from nlp_service.core.config import Settings
    from nlp_service.intake.client import SAMPLES_DIR, read_messages, send_messages
    from nlp_service.storage.db import make_engine, read_only
    from nlp_service.storage.models import InboxMessage, Report

    assert isinstance(current, Settings)
    sent = list(send_messages(read_messages(sorted(SAMPLES_DIR.glob("*.hl7"))),
                              current.mllp_host, mllp_port))
    accepted = sum(s.ack_code == "AA" for s in sent)
    engine = read_only(make_engine(current.database_url))
    waiting = select(func.count()).select_from(InboxMessage).where(
        col(InboxMessage.status).in_(["pending", "processing"]))
    while True:
        with Session(engine) as session:
            if not session.exec(waiting).one():
                reports = session.exec(select(Report).where(col(Report.is_current))
                                       .order_by(col(Report.id))).all()
                failed = session.exec(select(func.count()).select_from(InboxMessage).where(
                    InboxMessage.status == "failed")).one()
                break
        time.sleep(0.5)
    engine.dispose()
    base = f"http://{current.http_host}:{http_port}"
    typer.echo(f"\nsent {len(sent)} sample messages over MLLP port {mllp_port}: {accepted} AA; "
               f"{len(reports)} current reports stored, {failed} messages set aside")
    if reports:
        example = reports[0]
        typer.echo(f"  reports:  {base}/api/v1/reports")
        typer.echo(f"  FHIR:     {base}/fhir/DiagnosticReport?identifier={example.accession}"
                   f"&_include=DiagnosticReport:result")
        typer.echo(f"  follow-up requests: {base}/fhir/ServiceRequest?intent=proposal")
        typer.echo(f"  audit dashboard: {base}/audit   annotation: {base}/annotate")
    typer.echo(f"  API docs: {base}/docs   (Ctrl-C stops the service)")
    if admin_key:
        typer.echo(f"admin key (shown once, keep it): {admin_key}")
        typer.echo(f"  sign in at {base}/login with it, or send 'Authorization: Bearer <key>'; "
                   "make narrower keys with: radnlp keys create --name NAME --role ROLE")


@app.command()
def reanalyze(
    accessions: Annotated[list[str] | None, typer.Argument(
        help="Accessions to re-analyse (default: every current report).")] = None,
    include_same_model: Annotated[bool, typer.Option(
        "--include-same-model", help="Also reports the active model already made.")] = False,
) -> None:
    """Re-analyse stored reports with the active model (each gets a new version)."""
    from nlp_service.core.config import Settings
    from nlp_service.core.logging import configure_logging
    from nlp_service.reanalysis import reanalyze as run
    from nlp_service.server import load_pipeline
    from nlp_service.storage.db import make_engine, migrate

    current = Settings()
    configure_logging(current.log_level)
    engine = make_engine(current.database_url)
    migrate(engine)
    pipeline = load_pipeline(current, engine)
    counts = run(engine, pipeline, accessions or None,
                 only_other_models=not include_same_model)
    typer.echo(f"model {pipeline.model_version}: {counts['reanalysed']} report(s) re-analysed, "
               f"{counts['failed']} failed")
    if counts["failed"]:
        raise typer.Exit(code=1)


audit_app = typer.Typer(help="Follow-up audit: worklist, compliance summary, QPP measures "
                             "(JSON, or CSV with --csv), on RADNLP_DATABASE_URL.",
                        no_args_is_help=True)
app.add_typer(audit_app, name="audit")
AsOfOption = Annotated[str | None, typer.Option("--as-of", help="Evaluate on this date "
                                                "(ISO 8601; default now).")]
CsvOption = Annotated[bool, typer.Option("--csv", help="CSV instead of JSON.")]


def _audit_session() -> Any:
    from sqlmodel import Session

    from nlp_service.core.config import Settings
    from nlp_service.storage.db import make_engine, migrate, read_only

    engine = make_engine(Settings().database_url)
    migrate(engine)
    return Session(read_only(engine))


def _when(value: str | None) -> Any:
    from datetime import UTC, datetime

    if value is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO 8601 date: {value!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _emit(data: Any) -> None:
    from datetime import datetime

    typer.echo(json.dumps(data, indent=2, default=lambda v: v.isoformat()
                          if isinstance(v, datetime) else str(v)))


@audit_app.command("recommendations")
def audit_recommendations(
    status: Annotated[list[str] | None, typer.Option(help="State(s) to list.")] = None,
    modality: Annotated[str | None, typer.Option()] = None,
    finding: Annotated[str | None, typer.Option()] = None,
    patient: Annotated[str | None, typer.Option(help="Patient MRN.")] = None,
    sort: Annotated[str, typer.Option(help="due_end, report_time or id; -key descending.")]
    = "due_end",
    limit: Annotated[int, typer.Option(min=1)] = 1000,
    as_of: AsOfOption = None,
    as_csv: CsvOption = False,
) -> None:
    """The follow-up worklist with each follow-up's state."""
    from nlp_service.audit.queries import (
        FOLLOW_UP_COLUMNS,
        AuditFilters,
        follow_up_row,
        list_follow_ups,
        to_csv,
    )

    when = _when(as_of)
    try:
        filters = AuditFilters(status=tuple(status) if status else None, modality=modality,
                               finding=finding, patient=patient)
        with _audit_session() as session:
            total, rows = list_follow_ups(session, filters, as_of=when, limit=limit, sort=sort)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    items = [follow_up_row(follow_up, state) for follow_up, state in rows]
    if as_csv:
        typer.echo(to_csv(items, FOLLOW_UP_COLUMNS), nl=False)
    else:
        _emit({"as_of": when, "total": total, "items": items})


@audit_app.command("summary")
def audit_summary(
    group_by: Annotated[str | None, typer.Option(help="month, modality, finding, "
                                                      "ordering_provider or radiologist.")]
    = None,
    as_of: AsOfOption = None,
    as_csv: CsvOption = False,
) -> None:
    """Counts by state and completion / on-time rates."""
    from nlp_service.audit.queries import GROUPS, AuditFilters, summary, to_csv

    if group_by is not None and group_by not in GROUPS:
        typer.echo(f"error: --group-by must be one of {', '.join(GROUPS)}", err=True)
        raise typer.Exit(code=2)
    when = _when(as_of)
    with _audit_session() as session:
        overall, groups = summary(session, AuditFilters(include_conditional=False), as_of=when,
                                  group_by=group_by)
    if as_csv:
        rows = [g.as_dict() for g in groups] or [overall.as_dict()]
        typer.echo(to_csv(rows, list(overall.as_dict())), nl=False)
    else:
        _emit({"as_of": when, "overall": overall.as_dict(),
               "groups": [g.as_dict() for g in groups]})


@audit_app.command("measure")
def audit_measure(
    number: Annotated[str, typer.Argument(help="364, 405 or 406.")],
    as_of: AsOfOption = None,
    as_csv: CsvOption = False,
) -> None:
    """A QPP measure's numerator, denominator, exclusions and rate, with the accessions."""
    from nlp_service.audit.queries import MEASURES, measure, to_csv

    if number not in MEASURES:
        typer.echo(f"error: measure must be one of {', '.join(MEASURES)}", err=True)
        raise typer.Exit(code=2)
    with _audit_session() as session:
        figures = measure(session, number, as_of=_when(as_of))
    if as_csv:
        rows = ([{"accession": a, "group": "numerator"} for a in figures.numerator_reports]
                + [{"accession": a, "group": "denominator"} for a in figures.denominator_reports]
                + [{"accession": a, "group": "exclusion"} for a in figures.excluded_reports])
        typer.echo(to_csv(rows, ["accession", "group"]), nl=False)
    else:
        _emit(figures.as_dict())


# --- Model registry: retraining from annotations, listing and activating versions. ----------

model_app = typer.Typer(help="Model versions under pipelines/models: list them, activate one.",
                        no_args_is_help=True)
app.add_typer(model_app, name="model")


def _train_from_annotations(*, annotations: Path, parent: str | None, gold: Path,
                            data_dir: Path | None, folder: Path, version: str, config: Any,
                            set_default: bool) -> None:
    from annotations.registry import activate, active_version
    from annotations.training import train_from_annotations
    from pipelines.models import MODELS_DIR
    from pipelines.training import model_card_markdown

    if parent is None:
        try:
            parent = active_version()
        except FileNotFoundError:
            parent = None
    try:
        card = train_from_annotations(annotations_path=annotations, gold_path=gold,
                                      out_dir=folder, version=version, parent=parent,
                                      config=config, data_dir=data_dir)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    typer.echo(model_card_markdown(card))
    if set_default:
        if folder.parent.resolve() != MODELS_DIR.resolve():
            typer.echo(f"error: --set-default needs the model under {MODELS_DIR}", err=True)
            raise typer.Exit(code=2)
        activate(folder.name)
        typer.echo(f"default model: {folder.name}")


@model_app.command("list")
def model_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print the versions as JSON.")] = False,
) -> None:
    """The model versions with parent, date and gold test metrics; * marks the active one
    (the registry of RADNLP_DATABASE_URL; the models folder's DEFAULT when there is no
    database yet)."""
    from annotations.registry import list_versions
    from nlp_service.core.config import Settings
    from nlp_service.model_registry import describe, models_folder, sync_registry
    from nlp_service.storage.db import make_engine, migrate, session_scope

    current = Settings()
    folder = models_folder(current)
    url = current.database_url
    sqlite_file = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else None
    if sqlite_file is not None and not Path(sqlite_file).is_file():
        versions = list_versions(folder)  # no database to read: do not create one
    else:
        engine = make_engine(url)
        migrate(engine)
        try:
            with session_scope(engine) as session:
                versions = [describe(row) for row in sync_registry(session, folder)]
        finally:
            engine.dispose()
    if as_json:
        typer.echo(json.dumps(versions, indent=2))
        return

    def number(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, float) else "-"

    typer.echo(f"  {'version':<24} {'parent':<24} {'created':<26} {'FINDING F1':>10} "
               f"{'assert acc':>10}")
    for item in versions:
        metrics = item["metrics"]
        typer.echo(f"{'*' if item['active'] else ' '} {item['name']:<24} "
                   f"{item['parent'] or '-':<24} {item['created'] or '-':<26} "
                   f"{number(metrics.get('finding_f1_overlap')):>10} "
                   f"{number(metrics.get('assertion_accuracy')):>10}")


@model_app.command("activate")
def model_activate(
    version: Annotated[str, typer.Argument(help="A version folder under pipelines/models.")],
) -> None:
    """Make a version the active one (after checking that it loads): in the registry of
    RADNLP_DATABASE_URL, which every worker of the service follows at its next claim, and as
    the models folder's DEFAULT for `radnlp analyze` when that folder is writable."""
    from annotations.registry import activate as activate_folder
    from nlp_service.core.config import Settings
    from nlp_service.model_registry import activate, models_folder, version_folder
    from nlp_service.storage.db import make_engine, migrate, session_scope

    current = Settings()
    folder = models_folder(current)
    if version_folder(folder, version) is None:  # before any database is opened
        typer.echo(f"error: Model version {version!r} not found under {folder}.", err=True)
        raise typer.Exit(code=2)
    engine = make_engine(current.database_url)
    migrate(engine)
    try:
        with session_scope(engine) as session:
            row = activate(session, version, folder, actor="radnlp model activate")
            name = row.name
    except (FileNotFoundError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    finally:
        engine.dispose()
    try:
        activate_folder(name, models_dir=folder)
        where = f"and {folder / 'DEFAULT'}"
    except OSError:
        where = f"({folder} is read-only: `radnlp analyze` keeps its DEFAULT)"
    typer.echo(f"active model: {version}, in the registry of {current.database_url} {where}; "
               "running workers load it at their next claim")


# --- API keys: only their hash is stored; a new key is printed once. -----------------------

keys_app = typer.Typer(help=f"API keys for the HTTP API (roles: {', '.join(ROLES)}), on "
                            "RADNLP_DATABASE_URL.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _keys_engine() -> Any:
    from nlp_service.core.config import Settings
    from nlp_service.storage.db import make_engine, migrate

    engine = make_engine(Settings().database_url)
    migrate(engine)
    return engine


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="Who or what uses the key.")],
    role: Annotated[list[str], typer.Option("--role", help="A role; repeat for several.")],
) -> None:
    """Create a key; the key alone goes to standard output, this once."""
    from nlp_service.security import create_key
    from nlp_service.storage.db import session_scope

    engine = _keys_engine()
    try:
        with session_scope(engine) as session:
            key, record = create_key(session, name=name, roles=role)
            key_id, roles = record.key_id, record.roles
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    finally:
        engine.dispose()
    typer.echo(f"created key {key_id} ({name}; {', '.join(roles)}); it is shown once, store it "
               "now:", err=True)
    typer.echo(key)


@keys_app.command("list")
def keys_list() -> None:
    """The keys (id, name, roles, dates); never the keys themselves."""
    from sqlmodel import Session

    from nlp_service.security import list_keys

    engine = _keys_engine()
    with Session(engine) as session:
        records = list_keys(session)
    engine.dispose()

    def day(value: Any) -> str:
        return value.isoformat(timespec="seconds") if value else "-"

    typer.echo(f"{'key id':<14} {'name':<24} {'roles':<28} {'created':<26} {'last used':<26} "
               "revoked")
    for r in records:
        typer.echo(f"{r.key_id:<14} {r.name:<24} {','.join(r.roles):<28} {day(r.created_at):<26} "
                   f"{day(r.last_used_at):<26} {day(r.revoked_at)}")


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (see radnlp keys list).")],
) -> None:
    """Revoke a key at once (its browser sessions end too)."""
    from nlp_service.security import revoke_key
    from nlp_service.storage.db import session_scope

    engine = _keys_engine()
    try:
        with session_scope(engine) as session:
            found = revoke_key(session, key_id) is not None
    finally:
        engine.dispose()
    if not found:
        typer.echo(f"error: no key {key_id}", err=True)
        raise typer.Exit(code=1)
    typer.echo(f"revoked key {key_id}")


@app.command("access-log")
def access_log(
    mrn: Annotated[str | None, typer.Option(help="Patient MRN (every authority seen).")] = None,
    key_id: Annotated[str | None, typer.Option("--key", help="API key id.")] = None,
    action: Annotated[str | None, typer.Option(help="read, export, change or refused.")]
    = None,
    since: Annotated[str | None, typer.Option(help="ISO 8601 date.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 100,
) -> None:
    """Who read, exported or changed which patients' data (as GET /api/v1/access-log), as
    JSON, newest first."""
    from nlp_service.storage.access_log import (
        ACTIONS,
        AccessQuery,
        patient_ids_for_mrn,
        search_access_log,
    )

    if action is not None and action not in ACTIONS:
        raise typer.BadParameter(f"action must be one of {', '.join(ACTIONS)}")
    with _audit_session() as session:
        patients = patient_ids_for_mrn(session, mrn) if mrn else []
        query = AccessQuery(patient_ids=tuple(patients), key_id=key_id, action=action,
                            since=_when(since) if since else None)
        total, records = search_access_log(session, query, limit=limit)
        _emit({"total": total, "patients": patients,
               "items": [record.as_dict() for record in records]})


db_app = typer.Typer(help="The database: migrations and backups.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(notify_app, name="notify")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the schema migrations to RADNLP_DATABASE_URL (the service also does at start)."""
    from nlp_service.core.config import Settings
    from nlp_service.storage.db import make_engine, migrate

    engine = make_engine(Settings().database_url)
    migrate(engine)
    engine.dispose()
    typer.echo("schema up to date")


@db_app.command("backup")
def db_backup(target: Annotated[Path, typer.Argument(help="New file to write.")]) -> None:
    """Back up the SQLite database while the service runs (PostgreSQL: pg_dump)."""
    from nlp_service.core.config import Settings
    from nlp_service.storage.backup import backup_sqlite

    try:
        pages = backup_sqlite(Settings().database_url, target)
    except (ValueError, FileExistsError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from exc
    typer.echo(f"backed up {pages} pages to {target}")


if __name__ == "__main__":
    app()
