"""festival: events table

Revision ID: festival_0001
Revises:
Create Date: 2026-11-25
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "festival_0001"
down_revision = None
branch_labels = ("festival",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table(
        "festival_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title_vi", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("title_en", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("venue", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("starts_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("festival_event")
