"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 16:25:21.666729
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import nlp_service.storage.models

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column(
            "created_at", nlp_service.storage.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "revoked_at", nlp_service.storage.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "last_used_at", nlp_service.storage.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_key_key_id"), ["key_id"], unique=True)

    op.create_table(
        "dead_letter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("control_id", sa.String(length=199), nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column(
            "received_at", nlp_service.storage.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("ack_code", sa.String(length=2), nullable=False),
        sa.Column("error_code", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("dead_letter", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dead_letter_control_id"), ["control_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_dead_letter_received_at"), ["received_at"], unique=False
        )

    op.create_table(
        "fhir_resource",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.Column(
            "last_updated", nlp_service.storage.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("resource", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("resource_type", "resource_id", "version_id"),
    )
    with op.batch_alter_table("fhir_resource", schema=None) as batch_op:
        batch_op.create_index(
            "ix_fhir_current", ["resource_type", "is_current", "last_updated"], unique=False
        )

    op.create_table(
        "fhir_search_date",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.Column("low", nlp_service.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("high", nlp_service.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("fhir_search_date", schema=None) as batch_op:
        batch_op.create_index(
            "ix_fhir_date_lookup", ["resource_type", "param", "low", "high"], unique=False
        )
        batch_op.create_index("ix_fhir_date_owner", ["resource_type", "resource_id"], unique=False)

    op.create_table(
        "fhir_search_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("resource_id", sa.String(length=64), nullable=False),
        sa.Column("param", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=300), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("fhir_search_token", schema=None) as batch_op:
        batch_op.create_index(
            "ix_fhir_token_lookup", ["resource_type", "param", "value"], unique=False
        )
        batch_op.create_index("ix_fhir_token_owner", ["resource_type", "resource_id"], unique=False)

    op.create_table(
        "inbox_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("control_id", sa.String(length=199), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("parsed", sa.JSON(), nullable=True),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column(
            "received_at", nlp_service.storage.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "lease_until", nlp_service.storage.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("claimed_by", sa.String(length=200), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "processed_at", nlp_service.storage.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("control_id"),
    )
    with op.batch_alter_table("inbox_message", schema=None) as batch_op:
        batch_op.create_index("ix_inbox_claim", ["status", "lease_until", "id"], unique=False)

    op.create_table(
        "report",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("accession", sa.String(length=199), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.Column("superseded_by", sa.Integer(), nullable=True),
        sa.Column("entered_in_error", sa.Boolean(), nullable=False),
        sa.Column("fhir_id", sa.String(length=64), nullable=False),
        sa.Column("patient_mrn", sa.String(length=100), nullable=False),
        sa.Column("mrn_authority", sa.String(length=100), nullable=True),
        sa.Column("patient_age_years", sa.Float(), nullable=True),
        sa.Column("placer_number", sa.String(length=199), nullable=True),
        sa.Column("procedure_code", sa.String(length=64), nullable=True),
        sa.Column("procedure_name", sa.String(length=300), nullable=True),
        sa.Column("procedure_system", sa.String(length=64), nullable=True),
        sa.Column("modality", sa.String(length=16), nullable=True),
        sa.Column("body_region", sa.String(length=64), nullable=True),
        sa.Column(
            "observed_at", nlp_service.storage.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("result_status", sa.String(length=1), nullable=False),
        sa.Column("ordering_provider", sa.String(length=300), nullable=True),
        sa.Column("interpreter", sa.String(length=300), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("analysis", sa.JSON(), nullable=False),
        sa.Column("inbox_id", sa.Integer(), nullable=True),
        sa.Column("control_id", sa.String(length=199), nullable=True),
        sa.Column(
            "created_at", nlp_service.storage.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["inbox_id"],
            ["inbox_message.id"],
        ),
        sa.ForeignKeyConstraint(
            ["superseded_by"],
            ["report.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("accession", "version"),
    )
    with op.batch_alter_table("report", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_report_accession"), ["accession"], unique=False)
        batch_op.create_index(batch_op.f("ix_report_fhir_id"), ["fhir_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_report_inbox_id"), ["inbox_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_report_is_current"), ["is_current"], unique=False)
        batch_op.create_index(batch_op.f("ix_report_modality"), ["modality"], unique=False)
        batch_op.create_index(batch_op.f("ix_report_observed_at"), ["observed_at"], unique=False)
        batch_op.create_index(
            "ix_report_patient_time", ["patient_mrn", "observed_at"], unique=False
        )

    op.create_table(
        "annotation_task",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("pre_annotation", sa.JSON(), nullable=False),
        sa.Column("model_version", sa.String(length=100), nullable=False),
        sa.Column("uncertainty", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("gold", sa.JSON(), nullable=True),
        sa.Column("adjudicated_by", sa.String(length=200), nullable=True),
        sa.Column(
            "created_at", nlp_service.storage.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["report.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("annotation_task", schema=None) as batch_op:
        batch_op.create_index("ix_annotation_queue", ["status", "uncertainty"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_annotation_task_external_id"), ["external_id"], unique=False
        )

    op.create_table(
        "finding",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("end", sa.Integer(), nullable=False),
        sa.Column("section", sa.String(length=64), nullable=True),
        sa.Column("concept", sa.String(length=200), nullable=True),
        sa.Column("radlex", sa.String(length=20), nullable=True),
        sa.Column("snomed", sa.String(length=20), nullable=True),
        sa.Column("assertion", sa.String(length=10), nullable=False),
        sa.Column("historical", sa.Boolean(), nullable=False),
        sa.Column("hypothetical", sa.Boolean(), nullable=False),
        sa.Column("change", sa.String(length=20), nullable=True),
        sa.Column("anatomy", sa.String(length=200), nullable=True),
        sa.Column("laterality", sa.String(length=10), nullable=True),
        sa.Column("size_mm", sa.Float(), nullable=True),
        sa.Column("in_indication", sa.Boolean(), nullable=False),
        sa.Column("fhir_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["report.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("finding", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_finding_concept"), ["concept"], unique=False)
        batch_op.create_index(batch_op.f("ix_finding_report_id"), ["report_id"], unique=False)

    op.create_table(
        "measure_result",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("accession", sa.String(length=199), nullable=False),
        sa.Column("measure", sa.String(length=8), nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.Column(
            "report_time", nlp_service.storage.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("in_denominator", sa.Boolean(), nullable=False),
        sa.Column("in_numerator", sa.Boolean(), nullable=False),
        sa.Column("excluded", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["report.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("measure_result", schema=None) as batch_op:
        batch_op.create_index(
            "ix_measure_lookup", ["measure", "is_current", "report_time"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_measure_result_report_id"), ["report_id"], unique=False
        )

    op.create_table(
        "recommendation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("end", sa.Integer(), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=True),
        sa.Column("body_region", sa.String(length=64), nullable=True),
        sa.Column("interval_min_days", sa.Integer(), nullable=True),
        sa.Column("interval_max_days", sa.Integer(), nullable=True),
        sa.Column(
            "due_start", nlp_service.storage.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("due_end", nlp_service.storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("conditional", sa.Boolean(), nullable=False),
        sa.Column("guideline", sa.String(length=64), nullable=True),
        sa.Column("finding_index", sa.Integer(), nullable=True),
        sa.Column("fhir_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["report.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("recommendation", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recommendation_due_end"), ["due_end"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_recommendation_report_id"), ["report_id"], unique=False
        )

    op.create_table(
        "follow_up",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("accession", sa.String(length=199), nullable=False),
        sa.Column("rec_index", sa.Integer(), nullable=False),
        sa.Column("recommendation_id", sa.Integer(), nullable=False),
        sa.Column("source_report_id", sa.Integer(), nullable=False),
        sa.Column("patient_mrn", sa.String(length=100), nullable=False),
        sa.Column("mrn_authority", sa.String(length=100), nullable=True),
        sa.Column(
            "report_time", nlp_service.storage.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("modality", sa.String(length=16), nullable=True),
        sa.Column("body_region", sa.String(length=64), nullable=True),
        sa.Column("finding", sa.String(length=200), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("end", sa.Integer(), nullable=False),
        sa.Column("conditional", sa.Boolean(), nullable=False),
        sa.Column(
            "due_start", nlp_service.storage.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("due_end", nlp_service.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "late_after", nlp_service.storage.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("default_window", sa.Boolean(), nullable=False),
        sa.Column("ordering_provider", sa.String(length=300), nullable=True),
        sa.Column("radiologist", sa.String(length=300), nullable=True),
        sa.Column("guideline", sa.String(length=100), nullable=True),
        sa.Column("guideline_verdict", sa.String(length=32), nullable=True),
        sa.Column("guideline_reason", sa.Text(), nullable=True),
        sa.Column("completed_by_report_id", sa.Integer(), nullable=True),
        sa.Column(
            "completed_at", nlp_service.storage.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("manual_status", sa.String(length=32), nullable=True),
        sa.Column(
            "manual_at", nlp_service.storage.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "withdrawn_at", nlp_service.storage.models.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("fhir_id", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at", nlp_service.storage.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["completed_by_report_id"],
            ["report.id"],
        ),
        sa.ForeignKeyConstraint(
            ["recommendation_id"],
            ["recommendation.id"],
        ),
        sa.ForeignKeyConstraint(
            ["source_report_id"],
            ["report.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("accession", "rec_index"),
    )
    with op.batch_alter_table("follow_up", schema=None) as batch_op:
        batch_op.create_index("ix_follow_up_due", ["due_end", "completed_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_follow_up_finding"), ["finding"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_follow_up_guideline_verdict"), ["guideline_verdict"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_follow_up_modality"), ["modality"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_follow_up_ordering_provider"), ["ordering_provider"], unique=False
        )
        batch_op.create_index("ix_follow_up_patient", ["patient_mrn", "report_time"], unique=False)
        batch_op.create_index(batch_op.f("ix_follow_up_radiologist"), ["radiologist"], unique=False)
        batch_op.create_index(batch_op.f("ix_follow_up_report_time"), ["report_time"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_follow_up_source_report_id"), ["source_report_id"], unique=False
        )

    op.create_table(
        "task_annotation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("annotator", sa.String(length=200), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column(
            "updated_at", nlp_service.storage.models.UTCDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["annotation_task.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("task_id", "annotator"),
    )
    with op.batch_alter_table("task_annotation", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_annotation_task_id"), ["task_id"], unique=False)

    op.create_table(
        "follow_up_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("follow_up_id", sa.Integer(), nullable=False),
        sa.Column("at", nlp_service.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["follow_up_id"],
            ["follow_up.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("follow_up_event", schema=None) as batch_op:
        batch_op.create_index("ix_follow_up_event_owner", ["follow_up_id", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("follow_up_event", schema=None) as batch_op:
        batch_op.drop_index("ix_follow_up_event_owner")

    op.drop_table("follow_up_event")
    with op.batch_alter_table("task_annotation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_annotation_task_id"))

    op.drop_table("task_annotation")
    with op.batch_alter_table("follow_up", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_follow_up_source_report_id"))
        batch_op.drop_index(batch_op.f("ix_follow_up_report_time"))
        batch_op.drop_index(batch_op.f("ix_follow_up_radiologist"))
        batch_op.drop_index("ix_follow_up_patient")
        batch_op.drop_index(batch_op.f("ix_follow_up_ordering_provider"))
        batch_op.drop_index(batch_op.f("ix_follow_up_modality"))
        batch_op.drop_index(batch_op.f("ix_follow_up_guideline_verdict"))
        batch_op.drop_index(batch_op.f("ix_follow_up_finding"))
        batch_op.drop_index("ix_follow_up_due")

    op.drop_table("follow_up")
    with op.batch_alter_table("recommendation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recommendation_report_id"))
        batch_op.drop_index(batch_op.f("ix_recommendation_due_end"))

    op.drop_table("recommendation")
    with op.batch_alter_table("measure_result", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_measure_result_report_id"))
        batch_op.drop_index("ix_measure_lookup")

    op.drop_table("measure_result")
    with op.batch_alter_table("finding", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_finding_report_id"))
        batch_op.drop_index(batch_op.f("ix_finding_concept"))

    op.drop_table("finding")
    with op.batch_alter_table("annotation_task", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_annotation_task_external_id"))
        batch_op.drop_index("ix_annotation_queue")

    op.drop_table("annotation_task")
    with op.batch_alter_table("report", schema=None) as batch_op:
        batch_op.drop_index("ix_report_patient_time")
        batch_op.drop_index(batch_op.f("ix_report_observed_at"))
        batch_op.drop_index(batch_op.f("ix_report_modality"))
        batch_op.drop_index(batch_op.f("ix_report_is_current"))
        batch_op.drop_index(batch_op.f("ix_report_inbox_id"))
        batch_op.drop_index(batch_op.f("ix_report_fhir_id"))
        batch_op.drop_index(batch_op.f("ix_report_accession"))

    op.drop_table("report")
    with op.batch_alter_table("inbox_message", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_claim")

    op.drop_table("inbox_message")
    with op.batch_alter_table("fhir_search_token", schema=None) as batch_op:
        batch_op.drop_index("ix_fhir_token_owner")
        batch_op.drop_index("ix_fhir_token_lookup")

    op.drop_table("fhir_search_token")
    with op.batch_alter_table("fhir_search_date", schema=None) as batch_op:
        batch_op.drop_index("ix_fhir_date_owner")
        batch_op.drop_index("ix_fhir_date_lookup")

    op.drop_table("fhir_search_date")
    with op.batch_alter_table("fhir_resource", schema=None) as batch_op:
        batch_op.drop_index("ix_fhir_current")

    op.drop_table("fhir_resource")
    with op.batch_alter_table("dead_letter", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dead_letter_received_at"))
        batch_op.drop_index(batch_op.f("ix_dead_letter_control_id"))

    op.drop_table("dead_letter")
    with op.batch_alter_table("api_key", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_key_key_id"))

    op.drop_table("api_key")
