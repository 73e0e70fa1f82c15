"""load indexes: the worker's per-batch lookups of measure results and completed follow-ups

Revision ID: 0003_load_indexes
Revises: 0002_access_log
Create Date: 2026-11-23 19:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003_load_indexes"
down_revision: str | None = "0002_access_log"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("measure_result", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_measure_result_accession"), ["accession"],
                              unique=False)
    with op.batch_alter_table("follow_up", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_follow_up_completed_by_report_id"),
                              ["completed_by_report_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("follow_up", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_follow_up_completed_by_report_id"))
    with op.batch_alter_table("measure_result", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_measure_result_accession"))
