"""inbox control ids unique per sender: MSH-3 and MSH-4 kept with MSH-10

Revision ID: 0007_inbox_sender_control_id
Revises: 0006_model_registry
Create Date: 2026-12-05 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_inbox_sender_control_id"
down_revision: str | None = "0006_model_registry"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 0001 left the control id's unique constraint unnamed: PostgreSQL named it itself, and on
# SQLite the batch copy finds it by this convention.
_NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _old_constraint() -> str:
    if op.get_bind().dialect.name == "postgresql":
        return "inbox_message_control_id_key"
    return "uq_inbox_message_control_id"


def upgrade() -> None:
    with op.batch_alter_table("inbox_message", schema=None,
                              naming_convention=_NAMING) as batch_op:
        batch_op.add_column(sa.Column("sending_application", sa.String(length=199),
                                      nullable=False, server_default=""))
        batch_op.add_column(sa.Column("sending_facility", sa.String(length=199),
                                      nullable=False, server_default=""))
        batch_op.drop_constraint(_old_constraint(), type_="unique")
        batch_op.create_unique_constraint(
            "uq_inbox_sender_control_id",
            ["sending_application", "sending_facility", "control_id"])
    # Rows received before: their sender is in what the intake parsed.
    for column, key in (("sending_application", "sending_application"),
                        ("sending_facility", "sending_facility")):
        extract = (f"parsed ->> '{key}'" if op.get_bind().dialect.name == "postgresql"
                   else f"json_extract(parsed, '$.{key}')")
        op.execute(sa.text(f"UPDATE inbox_message SET {column} = {extract} "
                           f"WHERE parsed IS NOT NULL AND {extract} IS NOT NULL"))


def downgrade() -> None:
    # Fails when two senders used the same control id: the old schema cannot hold both.
    with op.batch_alter_table("inbox_message", schema=None,
                              naming_convention=_NAMING) as batch_op:
        batch_op.drop_constraint("uq_inbox_sender_control_id", type_="unique")
        batch_op.create_unique_constraint(_old_constraint(), ["control_id"])
        batch_op.drop_column("sending_facility")
        batch_op.drop_column("sending_application")
