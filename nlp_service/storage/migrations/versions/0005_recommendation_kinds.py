"""recommendation kinds: kind, acceptable modalities, short interval and next step of a
recommendation; the acceptable modalities of a follow-up

Revision ID: 0005_recommendation_kinds
Revises: 0004_worklist_actions
Create Date: 2026-12-05 13:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_recommendation_kinds"
down_revision: str | None = "0004_worklist_actions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("recommendation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=32), nullable=False,
                                      server_default="imaging"))
        batch_op.add_column(sa.Column("modalities", sa.JSON(), nullable=False,
                                      server_default="[]"))
        batch_op.add_column(sa.Column("short_interval", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column("next_step", sa.JSON(), nullable=True))
    with op.batch_alter_table("follow_up", schema=None) as batch_op:
        batch_op.add_column(sa.Column("modalities", sa.JSON(), nullable=False,
                                      server_default="[]"))
    # Rows written before: the one modality they had is their only alternative.
    for table in ("recommendation", "follow_up"):
        op.execute(sa.text(f"UPDATE {table} SET modalities = "
                           + ("json_build_array(modality)" if _postgres()
                              else "json_array(modality)")
                           + " WHERE modality IS NOT NULL"))


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def downgrade() -> None:
    with op.batch_alter_table("follow_up", schema=None) as batch_op:
        batch_op.drop_column("modalities")
    with op.batch_alter_table("recommendation", schema=None) as batch_op:
        batch_op.drop_column("next_step")
        batch_op.drop_column("short_interval")
        batch_op.drop_column("modalities")
        batch_op.drop_column("kind")
