"""floodmap hourly summaries of old readings (retention)

Revision ID: floodmap_0002
Revises: floodmap_0001
Create Date: 2026-12-02 04:45:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = 'floodmap_0002'
down_revision = 'floodmap_0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('floodmap_observation_hourly',
    sa.Column('datastream_id', sa.Integer(), nullable=False),
    sa.Column('hour', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('minimum', sa.Float(), nullable=False),
    sa.Column('mean', sa.Float(), nullable=False),
    sa.Column('maximum', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['datastream_id'], ['floodmap_datastream.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('datastream_id', 'hour')
    )


def downgrade() -> None:
    op.drop_table('floodmap_observation_hourly')
