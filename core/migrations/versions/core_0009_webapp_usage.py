"""core: web mini-apps' daily usage (opens, unique residents, errors) for their analytics

Revision ID: core_0009
Revises: core_0008
Create Date: 2026-12-02 09:25:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = 'core_0009'
down_revision = 'core_0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('webapp_usage',
    sa.Column('webapp_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('pairwise_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('opens', sa.Integer(), nullable=False),
    sa.Column('errors', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('webapp_id', 'day', 'pairwise_id')
    )


def downgrade() -> None:
    op.drop_table('webapp_usage')
