"""model registry: model versions and the active one, in the database

Revision ID: 0006_model_registry
Revises: 0005_recommendation_kinds
Create Date: 2026-12-05 19:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from nlp_service.storage.models import UTCDateTime

revision: str = "0006_model_registry"
down_revision: str | None = "0005_recommendation_kinds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_version",
        sa.Column("version", sa.String(length=100), primary_key=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("parent", sa.String(length=100), nullable=True),
        sa.Column("data_snapshot", sa.JSON(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=True),
        sa.Column("created", sa.String(length=40), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("registered_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("activated_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("activated_by", sa.String(length=200), nullable=True),
    )
    op.create_index("ix_model_version_active", "model_version", ["active"])


def downgrade() -> None:
    op.drop_index("ix_model_version_active", table_name="model_version")
    op.drop_table("model_version")
