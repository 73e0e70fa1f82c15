"""Database tables (SQLModel): inbox, dead letters, reports with their findings and
recommendations, and versioned FHIR resources with their search index."""

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel, col


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes stored in UTC on every backend (SQLite keeps no offset)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None,
                             dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _time(*, index: bool = False, nullable: bool = True) -> Any:
    return Field(default=None, sa_column=sa.Column(UTCDateTime(), index=index,
                                                   nullable=nullable))


def _text(*, nullable: bool = True) -> Any:
    return Field(default=None, sa_column=sa.Column(sa.Text(), nullable=nullable))


class InboxMessage(SQLModel, table=True):
    """A raw HL7 message, committed before it is acknowledged; the worker's queue."""

    __tablename__ = "inbox_message"
    # HL7 scopes MSH-10 to its sender (MSH-3 and MSH-4): two senders may use the same id.
    __table_args__ = (sa.Index("ix_inbox_claim", "status", "lease_until", "id"),
                      sa.UniqueConstraint("sending_application", "sending_facility",
                                          "control_id", name="uq_inbox_sender_control_id"))

    id: int | None = Field(default=None, primary_key=True)
    control_id: str = Field(max_length=199)
    # "" when the message names none (a NULL would never clash in the unique constraint).
    sending_application: str = Field(default="", max_length=199)
    sending_facility: str = Field(default="", max_length=199)
    sha256: str = Field(max_length=64)
    raw: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    # What the intake parsed (ParsedMessage.to_dict), so the worker need not parse again.
    parsed: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON()))
    source: str = Field(max_length=200)
    received_at: datetime = Field(default_factory=utcnow,
                                  sa_column=sa.Column(UTCDateTime(), nullable=False))
    status: str = Field(default="pending", max_length=20)  # pending, processing, done, failed
    attempts: int = 0
    lease_until: datetime | None = _time()
    claimed_by: str | None = Field(default=None, max_length=200)
    last_error: str | None = _text()
    processed_at: datetime | None = _time()


class DeadLetter(SQLModel, table=True):
    """A message that was refused (negative ACK), kept byte for byte with the reason."""

    __tablename__ = "dead_letter"

    id: int | None = Field(default=None, primary_key=True)
    control_id: str | None = Field(default=None, max_length=199, index=True)
    raw: bytes = Field(sa_column=sa.Column(sa.LargeBinary(), nullable=False))
    source: str = Field(max_length=200)
    received_at: datetime = Field(default_factory=utcnow,
                                  sa_column=sa.Column(UTCDateTime(), nullable=False, index=True))
    ack_code: str = Field(max_length=2)
    error_code: int
    reason: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))


class Report(SQLModel, table=True):
    """One version of a radiology report (one OBR group) and its analysis."""

    __tablename__ = "report"
    __table_args__ = (sa.UniqueConstraint("accession", "version"),
                      sa.Index("ix_report_patient_time", "patient_mrn", "observed_at"))

    id: int | None = Field(default=None, primary_key=True)
    accession: str = Field(max_length=199, index=True)
    version: int = 1
    is_current: bool = Field(default=True, index=True)
    superseded_by: int | None = Field(default=None, foreign_key="report.id")
    entered_in_error: bool = False
    fhir_id: str = Field(max_length=64, index=True)
    patient_mrn: str = Field(max_length=100)
    mrn_authority: str | None = Field(default=None, max_length=100)
    patient_age_years: float | None = None  # at the exam, from PID-7 (the birth date is not kept)
    placer_number: str | None = Field(default=None, max_length=199)
    procedure_code: str | None = Field(default=None, max_length=64)
    procedure_name: str | None = Field(default=None, max_length=300)
    procedure_system: str | None = Field(default=None, max_length=64)
    modality: str | None = Field(default=None, max_length=16, index=True)
    body_region: str | None = Field(default=None, max_length=64)
    observed_at: datetime | None = _time(index=True)
    result_status: str = Field(max_length=1)
    ordering_provider: str | None = Field(default=None, max_length=300)
    interpreter: str | None = Field(default=None, max_length=300)
    text: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    model_version: str = Field(max_length=100)
    analysis: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))
    inbox_id: int | None = Field(default=None, foreign_key="inbox_message.id", index=True)
    control_id: str | None = Field(default=None, max_length=199)
    created_at: datetime = Field(default_factory=utcnow,
                                 sa_column=sa.Column(UTCDateTime(), nullable=False))


class Finding(SQLModel, table=True):
    """A finding of one report version, as the analysis gave it."""

    __tablename__ = "finding"

    id: int | None = Field(default=None, primary_key=True)
    report_id: int = Field(foreign_key="report.id", index=True)
    index: int
    text: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    start: int
    end: int
    section: str | None = Field(default=None, max_length=64)
    concept: str | None = Field(default=None, max_length=200, index=True)
    radlex: str | None = Field(default=None, max_length=20)
    snomed: str | None = Field(default=None, max_length=20)
    assertion: str = Field(max_length=10)
    historical: bool = False
    hypothetical: bool = False
    change: str | None = Field(default=None, max_length=20)
    anatomy: str | None = Field(default=None, max_length=200)
    laterality: str | None = Field(default=None, max_length=10)
    size_mm: float | None = None
    in_indication: bool = False
    fhir_id: str | None = Field(default=None, max_length=64)


class Recommendation(SQLModel, table=True):
    """A follow-up recommendation of one report version, with its due window."""

    __tablename__ = "recommendation"

    id: int | None = Field(default=None, primary_key=True)
    report_id: int = Field(foreign_key="report.id", index=True)
    index: int
    text: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    start: int
    end: int
    kind: str = Field(default="imaging", max_length=32)
    modality: str | None = Field(default=None, max_length=16)
    modalities: list[str] = Field(default_factory=list,
                                  sa_column=sa.Column(sa.JSON(), nullable=False))
    body_region: str | None = Field(default=None, max_length=64)
    interval_min_days: int | None = None
    interval_max_days: int | None = None
    short_interval: bool = False
    due_start: datetime | None = _time()
    due_end: datetime | None = _time(index=True)
    conditional: bool = False
    next_step: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON()))
    guideline: str | None = Field(default=None, max_length=64)
    finding_index: int | None = None
    fhir_id: str = Field(max_length=64)


class FhirResource(SQLModel, table=True):
    """One version of a FHIR resource; the current version has ``is_current``."""

    __tablename__ = "fhir_resource"
    __table_args__ = (sa.UniqueConstraint("resource_type", "resource_id", "version_id"),
                      sa.Index("ix_fhir_current", "resource_type", "is_current", "last_updated"))

    id: int | None = Field(default=None, primary_key=True)
    resource_type: str = Field(max_length=64)
    resource_id: str = Field(max_length=64)
    version_id: int
    is_current: bool = True
    last_updated: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    resource: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))


class FhirSearchToken(SQLModel, table=True):
    """A token or reference search value of a current FHIR resource."""

    __tablename__ = "fhir_search_token"
    __table_args__ = (sa.Index("ix_fhir_token_lookup", "resource_type", "param", "value"),
                      sa.Index("ix_fhir_token_owner", "resource_type", "resource_id"))

    id: int | None = Field(default=None, primary_key=True)
    resource_type: str = Field(max_length=64)
    resource_id: str = Field(max_length=64)
    param: str = Field(max_length=64)
    value: str = Field(max_length=300)


class FhirSearchDate(SQLModel, table=True):
    """A date search value (the instant range it covers) of a current FHIR resource."""

    __tablename__ = "fhir_search_date"
    __table_args__ = (sa.Index("ix_fhir_date_lookup", "resource_type", "param", "low", "high"),
                      sa.Index("ix_fhir_date_owner", "resource_type", "resource_id"))

    id: int | None = Field(default=None, primary_key=True)
    resource_type: str = Field(max_length=64)
    resource_id: str = Field(max_length=64)
    param: str = Field(max_length=64)
    low: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    high: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))


class FollowUp(SQLModel, table=True):
    """The tracking of one recommendation (report accession and its index in the report)
    across the versions of its report: due window, the exam that completed it, guideline
    verdict, and the latest decision someone made about it. Its state at a given date is
    derived from these (``nlp_service.audit.tracking.status_at``)."""

    __tablename__ = "follow_up"
    __table_args__ = (sa.UniqueConstraint("accession", "rec_index"),
                      sa.Index("ix_follow_up_patient", "patient_mrn", "report_time"),
                      sa.Index("ix_follow_up_due", "due_end", "completed_at"))

    id: int | None = Field(default=None, primary_key=True)
    accession: str = Field(max_length=199)
    rec_index: int
    recommendation_id: int = Field(foreign_key="recommendation.id")
    source_report_id: int = Field(foreign_key="report.id", index=True)
    patient_mrn: str = Field(max_length=100)
    mrn_authority: str | None = Field(default=None, max_length=100)
    report_time: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False,
                                                      index=True))
    kind: str = Field(default="imaging", max_length=32, index=True,
                      description="The recommendation's kind (imaging, consultation, ...).")
    modality: str | None = Field(default=None, max_length=16, index=True)
    modalities: list[str] = Field(default_factory=list,
                                  sa_column=sa.Column(sa.JSON(), nullable=False),
                                  description="Acceptable modalities; an exam of any closes it.")
    body_region: str | None = Field(default=None, max_length=64)
    finding: str | None = Field(default=None, max_length=200, index=True)
    text: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    start: int
    end: int
    conditional: bool = False
    due_start: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    due_end: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    late_after: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False),
                                 description="due_end plus the grace period")
    default_window: bool = Field(default=False, description="No interval was stated.")
    ordering_provider: str | None = Field(default=None, max_length=300, index=True)
    radiologist: str | None = Field(default=None, max_length=300, index=True)
    guideline: str | None = Field(default=None, max_length=100)
    guideline_verdict: str | None = Field(default=None, max_length=32, index=True)
    guideline_reason: str | None = _text()
    completed_by_report_id: int | None = Field(default=None, foreign_key="report.id",
                                               index=True)
    completed_at: datetime | None = _time()
    manual_status: str | None = Field(default=None, max_length=32)
    manual_at: datetime | None = _time()
    assignee: str | None = Field(default=None, max_length=200,
                                 description="Who on the quality team works on it.")
    withdrawn_at: datetime | None = _time()
    fhir_id: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow,
                                 sa_column=sa.Column(UTCDateTime(), nullable=False))


class FollowUpEvent(SQLModel, table=True):
    """A change to a follow-up: who (a user, or "system"), when, what and why.

    ``actor`` is the name of the API key that acted (``actor_key_id`` its key id), a name
    given on the command line, or "system". Kinds: created, rederived, completed, unlinked,
    withdrawn (the tracking's own), manual (a decision: ``status``), assigned (``assignee``;
    none: unassigned) and note."""

    __tablename__ = "follow_up_event"
    __table_args__ = (sa.Index("ix_follow_up_event_owner", "follow_up_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    follow_up_id: int = Field(foreign_key="follow_up.id")
    at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    actor: str = Field(max_length=200)
    actor_key_id: str | None = Field(default=None, max_length=32)
    kind: str = Field(max_length=32)
    status: str | None = Field(default=None, max_length=32)
    assignee: str | None = Field(default=None, max_length=200)
    reason: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    # The annotation task a "not a recommendation" decision opened for the report.
    annotation_task_id: int | None = Field(default=None, foreign_key="annotation_task.id")


class MeasureResult(SQLModel, table=True):
    """Where one report version stands in one QPP measure."""

    __tablename__ = "measure_result"
    __table_args__ = (sa.Index("ix_measure_lookup", "measure", "is_current", "report_time"),)

    id: int | None = Field(default=None, primary_key=True)
    report_id: int = Field(foreign_key="report.id", index=True)
    accession: str = Field(max_length=199, index=True)
    measure: str = Field(max_length=8)
    is_current: bool = True
    report_time: datetime | None = _time()
    in_denominator: bool
    in_numerator: bool
    excluded: bool
    reason: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))


class AnnotationTask(SQLModel, table=True):
    """A report to annotate, pre-annotated by the model of ``model_version``; ``gold`` holds
    the adjudicated version once several annotators' work is reconciled."""

    __tablename__ = "annotation_task"
    __table_args__ = (sa.Index("ix_annotation_queue", "status", "uncertainty"),)

    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(max_length=200, index=True)
    report_id: int | None = Field(default=None, foreign_key="report.id")
    source: str = Field(max_length=20)  # report, file, query, import, follow_up
    # Why the task was made, when a person asked for it (a follow-up marked "not a
    # recommendation", with who, which follow-up and the reason).
    note: str | None = _text()
    text: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    pre_annotation: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))
    model_version: str = Field(max_length=100)
    uncertainty: float | None = None
    status: str = Field(default="open", max_length=20)  # open, adjudicated
    gold: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON()))
    adjudicated_by: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow,
                                 sa_column=sa.Column(UTCDateTime(), nullable=False))


class TaskAnnotation(SQLModel, table=True):
    """One annotator's version of a task (a draft until submitted)."""

    __tablename__ = "task_annotation"
    __table_args__ = (sa.UniqueConstraint("task_id", "annotator"),)

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="annotation_task.id", index=True)
    annotator: str = Field(max_length=200)
    document: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))
    state: str = Field(default="draft", max_length=20)  # draft, submitted
    updated_at: datetime = Field(default_factory=utcnow,
                                 sa_column=sa.Column(UTCDateTime(), nullable=False))


class ApiKey(SQLModel, table=True):
    """An API key: only its SHA-256 is kept; ``key_id`` is the public part, shown in lists."""

    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    key_id: str = Field(max_length=32, unique=True, index=True)
    key_hash: str = Field(max_length=64)
    name: str = Field(max_length=200)
    roles: list[str] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))
    created_at: datetime = Field(default_factory=utcnow,
                                 sa_column=sa.Column(UTCDateTime(), nullable=False))
    revoked_at: datetime | None = _time()
    last_used_at: datetime | None = _time()


class AccessLogEntry(SQLModel, table=True):
    """One request for patient data: who (API key), when, what (method, path, query), the
    answer's status, and what it was: read, export, change or refused."""

    __tablename__ = "access_log"
    # SQLite matches a partial index only on the very expression its queries use ("bulk = 1").
    __table_args__ = (sa.Index("ix_access_log_bulk", "id", sqlite_where=sa.text("bulk = 1"),
                               postgresql_where=sa.text("bulk")),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow,
                         sa_column=sa.Column(UTCDateTime(), nullable=False, index=True))
    key_id: str | None = Field(default=None, max_length=32, index=True)
    key_name: str | None = Field(default=None, max_length=200)
    method: str = Field(max_length=8)
    path: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    query: str | None = _text()
    status: int
    action: str = Field(max_length=16)  # read, export, change, refused
    client: str | None = Field(default=None, max_length=100)
    patient_count: int = 0  # for a bulk entry: how many reports the answer covered
    # A bulk answer (a measure's hundreds of thousands of reports) lists no patients: its
    # path and query reproduce it, and every search by patient returns it.
    bulk: bool = False


class AccessLogPatient(SQLModel, table=True):
    """A patient (FHIR Patient id, the hash of the MRN) whose data a logged request reached."""

    __tablename__ = "access_log_patient"
    __table_args__ = (sa.Index("ix_access_log_patient_patient", "patient_id", "entry_id"),)

    id: int | None = Field(default=None, primary_key=True)
    entry_id: int = Field(foreign_key="access_log.id", index=True)
    patient_id: str = Field(max_length=64)


class ModelVersion(SQLModel, table=True):
    """A model version in the registry: its artefacts are the folder ``name`` under the
    models folder (``RADNLP_MODELS_DIR``); exactly one row is active once any is. Every worker
    reads the active version when it claims a batch, so one activation reaches them all."""

    __tablename__ = "model_version"

    version: str = Field(primary_key=True, max_length=100)
    name: str = Field(max_length=200)
    parent: str | None = Field(default=None, max_length=100)
    data_snapshot: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON()))
    metrics: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON()))
    created: str | None = Field(default=None, max_length=40)
    active: bool = Field(default=False, index=True)
    registered_at: datetime = Field(default_factory=utcnow,
                                    sa_column=sa.Column(UTCDateTime(), nullable=False))
    activated_at: datetime | None = Field(default=None,
                                          sa_column=sa.Column(UTCDateTime(), nullable=True))
    activated_by: str | None = Field(default=None, max_length=200)


def column_length(attribute: Any) -> int:
    """The length limit of a string column (``Report.accession`` -> 199)."""
    length = attribute.property.columns[0].type.length
    assert isinstance(length, int), f"{attribute} has no length limit"
    return length


def is_current(model: type[Report] | type[FhirResource]) -> Any:
    """SQL: the row is the current version of its report or resource."""
    # Not "is_current = true": as an equality it draws the planners (SQLite's, and
    # PostgreSQL's without statistics) to the is_current index, which walks every current
    # row, instead of the accession or (type, id, version) key the rest of the query gives.
    return col(model.is_current).is_not(False)


# --- Closing the loop: critical findings, turnaround times, events and their delivery. -----

class CriticalFinding(SQLModel, table=True):
    """A critical or actionable finding of one report version (ACR category, target time) and
    the communication its report documents; the rows of the current version are ``is_current``."""

    __tablename__ = "critical_finding"
    __table_args__ = (sa.Index("ix_critical_finding_lookup", "is_current", "report_time"),)

    id: int | None = Field(default=None, primary_key=True)
    report_id: int = Field(foreign_key="report.id", index=True)
    accession: str = Field(max_length=199, index=True)
    finding_index: int
    is_current: bool = True
    patient_mrn: str = Field(max_length=100)
    mrn_authority: str | None = Field(default=None, max_length=100)
    concept: str = Field(max_length=200)
    rule: str = Field(max_length=64)
    category: int
    target_minutes: int
    modality: str | None = Field(default=None, max_length=16)
    radiologist: str | None = Field(default=None, max_length=300)
    ordering_provider: str | None = Field(default=None, max_length=300)
    report_time: datetime | None = _time()
    reported_at: datetime | None = _time()
    communicated_at: datetime | None = _time()
    # "stated": the report gives the time; "report_issued": it documents the communication but
    # not its time, so the time the report was issued (MSH-7) bounds it.
    communication_time_source: str | None = Field(default=None, max_length=16)
    communication: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON()))
    observation_id: str | None = Field(default=None, max_length=64)


class ReportTiming(SQLModel, table=True):
    """The HL7 times of one exam (accession) for turnaround: the exam (OBR-7), the first
    preliminary and the first final result (MSH-7 of their messages), and the first documented
    communication of a critical finding."""

    __tablename__ = "report_timing"

    id: int | None = Field(default=None, primary_key=True)
    accession: str = Field(max_length=199, unique=True)
    patient_mrn: str = Field(max_length=100)
    modality: str | None = Field(default=None, max_length=16, index=True)
    radiologist: str | None = Field(default=None, max_length=300)
    exam_at: datetime | None = _time(index=True)
    preliminary_at: datetime | None = _time()
    final_at: datetime | None = _time()
    communicated_at: datetime | None = _time()
    critical_category: int | None = None


class OutboxEvent(SQLModel, table=True):
    """A fact to tell the world about (a new recommendation, a critical finding, ...), written
    in the transaction that made it true; ``event_id`` is every delivery's idempotency key."""

    __tablename__ = "outbox_event"

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(max_length=64, unique=True)
    kind: str = Field(max_length=64, index=True)
    patient_key: str = Field(max_length=64)
    accession: str | None = Field(default=None, max_length=199, index=True)
    # The FHIR resource the event is about ("Observation/abc"), for subscriptions.
    focus: str | None = Field(default=None, max_length=200)
    payload: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON(), nullable=False))
    created_at: datetime = Field(default_factory=utcnow,
                                 sa_column=sa.Column(UTCDateTime(), nullable=False, index=True))


class NotificationTarget(SQLModel, table=True):
    """Where events go: a webhook (HMAC-signed JSON) or a FHIR Subscription (rest-hook)."""

    __tablename__ = "notification_target"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # webhook, subscription
    name: str | None = Field(default=None, max_length=200)
    url: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    secret: str | None = Field(default=None, max_length=200)
    headers: list[str] = Field(default_factory=list,
                               sa_column=sa.Column(sa.JSON(), nullable=False))
    event_kinds: list[str] = Field(default_factory=list,
                                   sa_column=sa.Column(sa.JSON(), nullable=False))
    criteria: str | None = _text()
    payload: str | None = Field(default=None, max_length=100)
    status: str = Field(default="active", max_length=16)  # requested, active, error, off
    error: str | None = _text()
    fhir_id: str | None = Field(default=None, max_length=64, index=True)
    created_at: datetime = Field(default_factory=utcnow,
                                 sa_column=sa.Column(UTCDateTime(), nullable=False))


class Delivery(SQLModel, table=True):
    """One event to one target: pending until delivered; retried with backoff; ``dead`` after
    the attempts run out (an admin can send it again)."""

    __tablename__ = "delivery"
    __table_args__ = (sa.Index("ix_delivery_claim", "status", "next_attempt_at", "id"),
                      sa.Index("ix_delivery_order", "target_id", "patient_key", "id"))

    id: int | None = Field(default=None, primary_key=True)
    event_id: int = Field(foreign_key="outbox_event.id", index=True)
    target_id: int = Field(foreign_key="notification_target.id")
    patient_key: str = Field(max_length=64)
    status: str = Field(default="pending", max_length=16)  # pending, delivering, delivered, dead
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow,
                                      sa_column=sa.Column(UTCDateTime(), nullable=False))
    lease_until: datetime | None = _time()
    claimed_by: str | None = Field(default=None, max_length=200)
    last_error: str | None = _text()
    delivered_at: datetime | None = _time()
