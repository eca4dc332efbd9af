"""floodmap location since: when a station was placed where it stands (SensorThings HistoricalLocations)

Revision ID: floodmap_0003
Revises: floodmap_0002
Create Date: 2026-12-02 07:40:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = 'floodmap_0003'
down_revision = 'floodmap_0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('floodmap_location') as batch:
        batch.add_column(sa.Column('since', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False,
                                   server_default=sa.func.current_timestamp()))


def downgrade() -> None:
    with op.batch_alter_table('floodmap_location') as batch:
        batch.drop_column('since')
