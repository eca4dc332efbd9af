"""core: commune and ward boundaries imported from GeoJSON (superapp units import-boundaries)

Revision ID: core_0007
Revises: core_0006
Create Date: 2026-12-02 07:40:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = 'core_0007'
down_revision = 'core_0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('unit_boundary',
    sa.Column('unit_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('geometry', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('south', sa.Float(), nullable=False),
    sa.Column('north', sa.Float(), nullable=False),
    sa.Column('west', sa.Float(), nullable=False),
    sa.Column('east', sa.Float(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('imported_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['unit_id'], ['org_unit.id'], ),
    sa.PrimaryKeyConstraint('unit_id')
    )
    with op.batch_alter_table('unit_boundary', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_unit_boundary_south'), ['south'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('unit_boundary', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_unit_boundary_south'))
    op.drop_table('unit_boundary')
