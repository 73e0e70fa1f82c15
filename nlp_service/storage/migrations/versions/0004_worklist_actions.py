"""worklist actions: a follow-up's kind and assignee, who acted on it (key id), the person it
was assigned to and the annotation task an extraction error opened, and why a task was made

Revision ID: 0004_worklist_actions
Revises: 0003_load_indexes
Create Date: 2026-12-05 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_worklist_actions"
down_revision: str | None = "0003_load_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("follow_up", schema=None) as batch_op:
        # Follow-ups tracked before kinds existed were imaging follow-ups.
        batch_op.add_column(sa.Column("kind", sa.String(length=32), nullable=False,
                                      server_default="imaging"))
        batch_op.add_column(sa.Column("assignee", sa.String(length=200), nullable=True))
        batch_op.create_index(batch_op.f("ix_follow_up_kind"), ["kind"], unique=False)
    with op.batch_alter_table("annotation_task", schema=None) as batch_op:
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))
    with op.batch_alter_table("follow_up_event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("actor_key_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("assignee", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("annotation_task_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_follow_up_event_annotation_task_id", "annotation_task",
                                    ["annotation_task_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("follow_up_event", schema=None) as batch_op:
        batch_op.drop_constraint("fk_follow_up_event_annotation_task_id", type_="foreignkey")
        batch_op.drop_column("annotation_task_id")
        batch_op.drop_column("assignee")
        batch_op.drop_column("actor_key_id")
    with op.batch_alter_table("annotation_task", schema=None) as batch_op:
        batch_op.drop_column("note")
    with op.batch_alter_table("follow_up", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_follow_up_kind"))
        batch_op.drop_column("assignee")
        batch_op.drop_column("kind")
