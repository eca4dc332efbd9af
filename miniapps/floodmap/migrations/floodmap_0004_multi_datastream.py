"""floodmap multi datastreams: several properties measured together, read as one list per reading

Revision ID: floodmap_0004
Revises: floodmap_0003
Create Date: 2026-12-02 07:45:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = 'floodmap_0004'
down_revision = 'floodmap_0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('floodmap_multi_datastream',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('thing_id', sa.Integer(), nullable=False),
    sa.Column('sensor_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.ForeignKeyConstraint(['sensor_id'], ['floodmap_sensor.id'], ),
    sa.ForeignKeyConstraint(['thing_id'], ['floodmap_thing.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('floodmap_multi_datastream', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_floodmap_multi_datastream_sensor_id'), ['sensor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_floodmap_multi_datastream_thing_id'), ['thing_id'], unique=False)
    op.create_table('floodmap_multi_component',
    sa.Column('multi_datastream_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('observed_property_id', sa.Integer(), nullable=False),
    sa.Column('unit_name', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
    sa.Column('unit_symbol', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('unit_definition', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('valid_min', sa.Float(), nullable=False),
    sa.Column('valid_max', sa.Float(), nullable=False),
    sa.Column('max_change_per_hour', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['multi_datastream_id'], ['floodmap_multi_datastream.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['observed_property_id'], ['floodmap_observed_property.id'], ),
    sa.PrimaryKeyConstraint('multi_datastream_id', 'position')
    )
    with op.batch_alter_table('floodmap_multi_component', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_floodmap_multi_component_observed_property_id'), ['observed_property_id'],
                              unique=False)
    with op.batch_alter_table('floodmap_observation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('multi_datastream_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('results', sa.JSON(), nullable=True))
        batch_op.alter_column('datastream_id', existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column('result', existing_type=sa.Float(), nullable=True)
        batch_op.create_unique_constraint('uq_floodmap_observation_multi_time', ['multi_datastream_id', 'phenomenon_time'])
        batch_op.create_foreign_key('fk_floodmap_observation_multi_datastream', 'floodmap_multi_datastream',
                                    ['multi_datastream_id'], ['id'], ondelete='CASCADE')


def downgrade() -> None:
    with op.batch_alter_table('floodmap_observation', schema=None) as batch_op:
        batch_op.drop_constraint('fk_floodmap_observation_multi_datastream', type_='foreignkey')
        batch_op.drop_constraint('uq_floodmap_observation_multi_time', type_='unique')
        batch_op.alter_column('result', existing_type=sa.Float(), nullable=False)
        batch_op.alter_column('datastream_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('results')
        batch_op.drop_column('multi_datastream_id')
    op.drop_table('floodmap_multi_component')
    op.drop_table('floodmap_multi_datastream')
