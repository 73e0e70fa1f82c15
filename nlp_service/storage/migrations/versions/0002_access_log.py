"""access log: who read, exported or changed which patients' data

Revision ID: 0002_access_log
Revises: 0001
Create Date: 2026-11-23 17:59:41.778255
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import nlp_service.storage.models

revision: str = "0002_access_log"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "access_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", nlp_service.storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=True),
        sa.Column("key_name", sa.String(length=200), nullable=True),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("query", sa.Text(), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("client", sa.String(length=100), nullable=True),
        sa.Column("patient_count", sa.Integer(), nullable=False),
        sa.Column("bulk", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("access_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_access_log_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_access_log_key_id"), ["key_id"], unique=False)
        batch_op.create_index(
            "ix_access_log_bulk",
            ["id"],
            unique=False,
            sqlite_where=sa.text("bulk = 1"),
            postgresql_where=sa.text("bulk"),
        )

    op.create_table(
        "access_log_patient",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("entry_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"],
            ["access_log.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("access_log_patient", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_access_log_patient_entry_id"), ["entry_id"], unique=False
        )
        batch_op.create_index(
            "ix_access_log_patient_patient", ["patient_id", "entry_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("access_log_patient", schema=None) as batch_op:
        batch_op.drop_index("ix_access_log_patient_patient")
        batch_op.drop_index(batch_op.f("ix_access_log_patient_entry_id"))

    op.drop_table("access_log_patient")
    with op.batch_alter_table("access_log", schema=None) as batch_op:
        batch_op.drop_index("ix_access_log_bulk")
        batch_op.drop_index(batch_op.f("ix_access_log_key_id"))
        batch_op.drop_index(batch_op.f("ix_access_log_at"))

    op.drop_table("access_log")
