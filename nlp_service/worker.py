"""The batch worker: claims pending inbox messages, analyses their reports in one pipeline
batch, and stores reports, findings, recommendations and FHIR resources in one transaction.

What does not need the database (FHIR resources, guideline checks, measures) is prepared with
the analysis, and the store phase reads what it needs for the whole batch in a few queries,
so the write transaction (on SQLite, the database's one write lock) stays short.

Claims carry a lease: a batch whose worker died is claimed again once the lease runs out.
A message is tried ``max_attempts`` times, then set aside (status ``failed``) so it never
blocks the others. On PostgreSQL, concurrent workers claim with ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from loguru import logger
from sqlalchemy import Engine
from sqlmodel import Session, and_, col, or_, select

from nlp_service.audit.tracking import Assessment, FollowUpTracker, PatientKey, assess
from nlp_service.core.metrics import BATCH_SECONDS, WORKER_MESSAGES, WORKER_REPORTS
from nlp_service.intake.hl7 import parse_oru
from nlp_service.intake.message import ParsedMessage
from nlp_service.notify.events import EventWriter
from nlp_service.storage.db import describe_error, session_scope
from nlp_service.storage.fhir_store import FhirWriter
from nlp_service.storage.models import InboxMessage, ModelVersion, Report, utcnow
from nlp_service.storage.reports import ReportDraft, ReportWriter, prepare_report
from pipelines.pipeline import RULES_MODEL_VERSION, RadiologyPipeline, ReportInput
from pipelines.schema import AnalysisError, ReportAnalysis


@dataclass
class BatchOutcome:
    """What one ``run_once`` did."""

    claimed: int = 0
    done: int = 0
    failed: int = 0
    set_aside: int = 0
    reports: int = 0
    errors: dict[int, str] = field(default_factory=dict)


@dataclass
class _Prepared:
    row: InboxMessage
    message: ParsedMessage | None = None
    analyses: list[ReportAnalysis | None] = field(default_factory=list)
    drafts: list[tuple[ReportDraft, Assessment | None]] = field(default_factory=list)
    error: str | None = None


class Worker:
    """Processes the inbox in batches with ``pipeline``."""

    def __init__(self, engine: Engine, pipeline: RadiologyPipeline, *, batch_size: int = 32,
                 lease_seconds: float = 300.0, max_attempts: int = 3,
                 worker_id: str | None = None, pipelined: bool | None = None,
                 models_dir: Path | None = None) -> None:
        if batch_size < 1 or max_attempts < 1 or lease_seconds <= 0:
            raise ValueError("batch_size and max_attempts must be >= 1 and lease_seconds > 0")
        self.engine = engine
        self.pipeline = pipeline
        # With a models folder, the worker follows the registry's active version (full mode).
        self.models_dir = models_dir
        self.batch_size = batch_size
        self.lease = timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        # See run_forever; by default, everywhere but on SQLite.
        self.pipelined = engine.dialect.name != "sqlite" if pipelined is None else pipelined

    def follow_active_model(self) -> None:
        """Load the registry's active model version if it is not the one this worker runs:
        an activation in one process reaches the workers of every process at their next
        claim. Rules mode has no model to follow."""
        if self.models_dir is None or self.pipeline.model_version == RULES_MODEL_VERSION:
            return
        with Session(self.engine) as session:
            active = session.exec(select(ModelVersion).where(col(ModelVersion.active))).first()
        if active is None or active.version == self.pipeline.model_version:
            return
        logger.info("worker {}: active model {} -> {}", self.worker_id,
                    self.pipeline.model_version, active.version)
        self.pipeline = RadiologyPipeline.load("full", model=str(self.models_dir / active.name),
                                               max_chars=self.pipeline.max_chars)

    def claim(self, now: datetime | None = None) -> list[InboxMessage]:
        """Claim up to ``batch_size`` messages: pending ones, and claimed ones whose lease
        expired; an expired one that has used all its attempts is set aside instead. The
        active model version is checked first (``follow_active_model``)."""
        self.follow_active_model()
        now = now or utcnow()
        with session_scope(self.engine) as session:
            query = (select(InboxMessage)
                     .where(or_(col(InboxMessage.status) == "pending",
                                and_(col(InboxMessage.status) == "processing",
                                     col(InboxMessage.lease_until) < now)))
                     .order_by(col(InboxMessage.id)).limit(self.batch_size)
                     .with_for_update(skip_locked=True))
            claimed = []
            for row in session.exec(query).all():
                if row.status == "processing" and row.attempts >= self.max_attempts:
                    row.status = "failed"
                    row.last_error = (f"set aside after {row.attempts} attempts; last worker "
                                      f"{row.claimed_by} did not finish")
                    logger.warning("inbox message {} set aside: lease expired", row.id)
                else:
                    row.status, row.claimed_by = "processing", self.worker_id
                    row.lease_until = now + self.lease
                    row.attempts += 1
                    claimed.append(row)
                session.add(row)
        return claimed

    def run_once(self) -> BatchOutcome:
        """Claim one batch and process it."""
        rows = self.claim()
        if not rows:
            return BatchOutcome()
        return self._write(rows, self._analyse(rows))

    def _analyse(self, rows: list[InboxMessage]) -> list[_Prepared]:
        with BATCH_SECONDS.labels(phase="analyse").time():
            prepared = self._analyse_batch(rows)
        with BATCH_SECONDS.labels(phase="prepare").time():
            for item in prepared:
                if item.error is None:
                    self._prepare(item)
        return prepared

    def _write(self, rows: list[InboxMessage], prepared: list[_Prepared]) -> BatchOutcome:
        """Store an analysed batch in one transaction (one by one if that fails)."""
        with BATCH_SECONDS.labels(phase="store").time():
            outcome = self._write_batch(rows, prepared)
        WORKER_MESSAGES.labels(outcome="done").inc(outcome.done)
        WORKER_MESSAGES.labels(outcome="retried").inc(outcome.failed)
        WORKER_MESSAGES.labels(outcome="set_aside").inc(outcome.set_aside)
        WORKER_REPORTS.inc(outcome.reports)
        return outcome

    def _write_batch(self, rows: list[InboxMessage],
                     prepared: list[_Prepared]) -> BatchOutcome:
        outcome = BatchOutcome(claimed=len(rows))
        try:
            with session_scope(self.engine) as session:
                outcome.reports += self._store(session, [p for p in prepared if p.error is None])
                self._finish(session, prepared, outcome)
            return outcome
        except Exception as exc:
            logger.warning("batch write failed ({}); storing messages one by one",
                           type(exc).__name__)
        outcome = BatchOutcome(claimed=len(rows))
        for item in prepared:
            if item.error is None:
                try:
                    with session_scope(self.engine) as session:
                        outcome.reports += self._store(session, [item])
                except Exception as exc:
                    item.error = f"storing failed: {describe_error(exc)}"
        with session_scope(self.engine) as session:
            self._finish(session, prepared, outcome)
        return outcome

    def _analyse_batch(self, rows: list[InboxMessage]) -> list[_Prepared]:
        prepared = [_Prepared(row) for row in rows]
        inputs: list[ReportInput] = []
        slots: list[tuple[_Prepared, int]] = []
        for item in prepared:
            try:
                item.message = (ParsedMessage.from_dict(item.row.parsed) if item.row.parsed
                                else parse_oru(item.row.raw))
            except Exception as exc:
                item.error = f"parse failed: {exc}"
                continue
            item.analyses = [None] * len(item.message.reports)
            for index, report in enumerate(item.message.reports):
                if report.result_status == "X" and not report.text.strip():
                    continue
                inputs.append(ReportInput(report.accession, report.text))
                slots.append((item, index))
        try:
            results = list(self.pipeline.analyze_stream(inputs, batch_size=len(inputs) or 1))
        except Exception as exc:  # the pipeline itself broke: every message is retried
            logger.exception("pipeline failed on a batch")
            for item in prepared:
                item.error = item.error or f"pipeline failed: {type(exc).__name__}: {exc}"
            return prepared
        for (item, index), result in zip(slots, results, strict=True):
            if isinstance(result, AnalysisError):
                item.error = item.error or f"analysis failed: {result.error}"
            else:
                item.analyses[index] = result
        return prepared

    @staticmethod
    def _prepare(item: _Prepared) -> None:
        """Build the drafts (and assessments) of an analysed message's reports."""
        assert item.message is not None
        try:
            drafts = [prepare_report(item.message, report, analysis, inbox_id=item.row.id)
                      for report, analysis in zip(item.message.reports, item.analyses,
                                                  strict=True)]
        except Exception as exc:  # as storing it would have failed
            item.error = f"storing failed: {describe_error(exc)}"
            return
        item.drafts = [(draft, assess_draft(draft)) for draft in drafts]

    def _store(self, session: Session, items: list[_Prepared]) -> int:
        """Store the reports of ``items`` in the session's transaction."""
        drafts = [entry for item in items for entry in item.drafts]
        store_drafts(session, drafts)
        return len(drafts)

    def _finish(self, session: Session, prepared: list[_Prepared],
                outcome: BatchOutcome) -> None:
        now = utcnow()
        rows = {row.id: row for row in session.exec(select(InboxMessage).where(
            col(InboxMessage.id).in_([item.row.id for item in prepared])))}
        for item in prepared:
            row = rows.get(item.row.id)
            if row is None or row.claimed_by != self.worker_id or row.status != "processing":
                continue  # our lease ran out and another worker took it over
            row.lease_until, row.claimed_by = None, None
            if item.error is None:
                row.status, row.processed_at, row.last_error = "done", now, None
                outcome.done += 1
            else:
                assert row.id is not None
                outcome.errors[row.id] = item.error
                row.last_error = item.error
                if row.attempts >= self.max_attempts:
                    row.status = "failed"
                    outcome.set_aside += 1
                    logger.warning("inbox message {} set aside after {} attempts", row.id,
                                   row.attempts)
                else:
                    row.status = "pending"
                    outcome.failed += 1
            session.add(row)

    def run_until_empty(self) -> BatchOutcome:
        """Process batches until nothing is claimable; the totals of all batches."""
        total = BatchOutcome()
        while (outcome := self.run_once()).claimed:
            total.claimed += outcome.claimed
            total.done += outcome.done
            total.failed += outcome.failed
            total.set_aside += outcome.set_aside
            total.reports += outcome.reports
            total.errors.update(outcome.errors)
        return total

    def run_forever(self, stop: threading.Event, poll_seconds: float = 0.5) -> None:
        """Process batches until ``stop`` is set, waiting ``poll_seconds`` when idle.

        When ``pipelined``, a second thread stores each analysed batch while the next one is
        analysed: the model's forward pass leaves the interpreter free for the database work.
        On SQLite a batch is stored before the next is analysed: its write transaction holds
        the database's only write lock, which the listener needs for every message, and
        analysing at the same time would hold it longer (both want the interpreter).
        """
        logger.info("worker {} started", self.worker_id)
        analysed: queue.Queue[tuple[list[InboxMessage], list[_Prepared]] | None] = (
            queue.Queue(maxsize=1))
        writer = None
        if self.pipelined:
            writer = threading.Thread(target=self._write_loop,
                                      args=(analysed, stop, poll_seconds),
                                      name="worker-store", daemon=True)
            writer.start()
        try:
            while not stop.is_set():
                try:
                    rows = self.claim()
                    if not rows:
                        stop.wait(poll_seconds)
                        continue
                    batch = (rows, self._analyse(rows))
                    if writer is None:
                        self._write_until_stored(batch, stop, poll_seconds)
                    else:
                        analysed.put(batch)
                except Exception:  # e.g. the database went away: wait and try again
                    logger.exception("worker batch failed")
                    stop.wait(poll_seconds * 4)
        finally:
            if writer is not None:
                analysed.put(None)
                writer.join()
        logger.info("worker {} stopped", self.worker_id)

    def _write_loop(self, analysed: queue.Queue[tuple[list[InboxMessage], list[_Prepared]] | None],
                    stop: threading.Event, poll_seconds: float) -> None:
        while (batch := analysed.get()) is not None:
            self._write_until_stored(batch, stop, poll_seconds)

    def _write_until_stored(self, batch: tuple[list[InboxMessage], list[_Prepared]],
                            stop: threading.Event, poll_seconds: float) -> None:
        """Store ``batch``, trying again while the database is away, until ``stop``."""
        while True:
            try:
                self._write(*batch)
                return
            except Exception:  # the database went away
                if stop.is_set():  # the lease runs out and the batch is claimed again
                    logger.error("stopping with an unstored batch; it will be retried")
                    return
                logger.exception("storing a batch failed; retrying")
                stop.wait(poll_seconds * 4)


def store_drafts(session: Session, drafts: Sequence[tuple[ReportDraft, Assessment | None]],
                 ) -> None:
    """Store prepared report versions (with their assessments, where made) in the session's
    transaction: reports, findings, recommendations, FHIR resources, follow-ups and measures,
    reading what they need from the database once for the whole batch."""
    fhir = FhirWriter(session, utcnow())
    writer = ReportWriter(session, fhir)
    tracker = FollowUpTracker(session, fhir, now=fhir.now)
    events = EventWriter(session, fhir, fhir.now)  # critical findings, outbox, Tasks
    with session.no_autoflush:
        writer.preload(draft for draft, _ in drafts)
        tracker.preload(
            accessions=[draft.parsed.accession for draft, _ in drafts],
            patients=[draft.patient for draft, _ in drafts],
            exams_after=_exams_after(draft for draft, _ in drafts))
        events.preload(draft for draft, _ in drafts)
        for draft, assessment in drafts:
            stored = writer.store(draft)
            if stored.row.is_current:
                tracker.sync(stored.row, stored.analysis,
                             recommendations=stored.recommendations, assessment=assessment)
                events.record(stored, draft)
    tracker.flush()
    events.flush()
    fhir.flush()


def assess_draft(draft: ReportDraft) -> Assessment | None:
    """The draft's assessment, if it will need one; None leaves it to the store phase (which
    also raises what assessing raises, where it would always have been raised)."""
    if draft.analysis is None or draft.parsed.result_status == "X":
        return None
    try:
        return assess(Report(**draft.fields), draft.analysis)
    except Exception:
        return None


def _exams_after(drafts: Iterable[ReportDraft]) -> dict[PatientKey, datetime | None]:
    """For each patient with a recommendation in ``drafts``: exams after which time its
    follow-ups may need (None: any)."""
    after: dict[PatientKey, datetime | None] = {}
    for draft in drafts:
        if draft.parsed.result_status == "X" or (draft.analysis is not None
                                                  and not draft.analysis.recommendations):
            continue
        seen = draft.parsed.observed_at
        earlier = after.get(draft.patient, seen)
        after[draft.patient] = None if seen is None or earlier is None else min(seen, earlier)
    return after
