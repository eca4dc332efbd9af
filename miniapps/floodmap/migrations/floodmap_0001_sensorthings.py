"""floodmap sensorthings, alerts, warnings, reports

Revision ID: floodmap_0001
Revises:
Create Date: 2026-11-25 20:18:45.118934
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = 'floodmap_0001'
down_revision = None
branch_labels = ('floodmap',)
depends_on = 'core_0002'


def upgrade() -> None:
    op.create_table('floodmap_observed_property',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('definition', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('floodmap_sensor',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('encoding_type', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('sensor_metadata', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('key_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    op.create_table('floodmap_thing',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('kind', sa.Enum('river_gauge', 'street_hotspot', 'rain_gauge', 'camera', name='stationkind'), nullable=False),
    sa.Column('unit_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('warn_units', sa.JSON(), nullable=False),
    sa.Column('synthetic', sa.Boolean(), nullable=False),
    sa.Column('camera_url', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('camera_image_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('stale', sa.Boolean(), nullable=False),
    sa.Column('level_since', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('lowering_to', sa.Integer(), nullable=True),
    sa.Column('lowering_since', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('last_value', sa.Float(), nullable=True),
    sa.Column('last_observed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['unit_id'], ['org_unit.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    with op.batch_alter_table('floodmap_thing', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_floodmap_thing_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_floodmap_thing_last_observed_at'), ['last_observed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_floodmap_thing_unit_id'), ['unit_id'], unique=False)

    op.create_table('floodmap_datastream',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('thing_id', sa.Integer(), nullable=False),
    sa.Column('sensor_id', sa.Integer(), nullable=False),
    sa.Column('observed_property_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('unit_name', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
    sa.Column('unit_symbol', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('unit_definition', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('drives_alert', sa.Boolean(), nullable=False),
    sa.Column('level_1', sa.Float(), nullable=True),
    sa.Column('level_2', sa.Float(), nullable=True),
    sa.Column('level_3', sa.Float(), nullable=True),
    sa.Column('hysteresis', sa.Float(), nullable=False),
    sa.Column('hold_down_minutes', sa.Integer(), nullable=False),
    sa.Column('rise_per_hour', sa.Float(), nullable=True),
    sa.Column('rise_near', sa.Float(), nullable=True),
    sa.Column('valid_min', sa.Float(), nullable=False),
    sa.Column('valid_max', sa.Float(), nullable=False),
    sa.Column('max_change_per_hour', sa.Float(), nullable=False),
    sa.Column('stale_after_minutes', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['observed_property_id'], ['floodmap_observed_property.id'], ),
    sa.ForeignKeyConstraint(['sensor_id'], ['floodmap_sensor.id'], ),
    sa.ForeignKeyConstraint(['thing_id'], ['floodmap_thing.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('floodmap_datastream', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_floodmap_datastream_sensor_id'), ['sensor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_floodmap_datastream_thing_id'), ['thing_id'], unique=False)

    op.create_table('floodmap_level_change',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('thing_id', sa.Integer(), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('from_level', sa.Integer(), nullable=False),
    sa.Column('to_level', sa.Integer(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['thing_id'], ['floodmap_thing.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('floodmap_level_change', schema=None) as batch_op:
        batch_op.create_index('ix_floodmap_level_change_thing_at', ['thing_id', 'at'], unique=False)

    op.create_table('floodmap_location',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('thing_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['thing_id'], ['floodmap_thing.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('floodmap_location', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_floodmap_location_thing_id'), ['thing_id'], unique=False)

    op.create_table('floodmap_report',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('depth_cm', sa.Integer(), nullable=False),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('photo_key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('thumbnail_key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['unit_id'], ['org_unit.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('floodmap_report', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_floodmap_report_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_floodmap_report_unit_id'), ['unit_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_floodmap_report_user_id'), ['user_id'], unique=False)

    op.create_table('floodmap_warning',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('identifier', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('thing_id', sa.Integer(), nullable=True),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('severity', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('manual', sa.Boolean(), nullable=False),
    sa.Column('units', sa.JSON(), nullable=False),
    sa.Column('title_vi', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('title_en', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('body_vi', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('body_en', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('issued_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('issued_by', sa.Integer(), nullable=True),
    sa.Column('notification_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['issued_by'], ['user_account.id'], ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['thing_id'], ['floodmap_thing.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('identifier')
    )
    with op.batch_alter_table('floodmap_warning', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_floodmap_warning_issued_at'), ['issued_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_floodmap_warning_thing_id'), ['thing_id'], unique=False)

    op.create_table('floodmap_observation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('datastream_id', sa.Integer(), nullable=False),
    sa.Column('phenomenon_time', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('result_time', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('result', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['datastream_id'], ['floodmap_datastream.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('datastream_id', 'phenomenon_time', name='uq_floodmap_observation_time')
    )


def downgrade() -> None:
    op.drop_table('floodmap_observation')
    with op.batch_alter_table('floodmap_warning', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_floodmap_warning_thing_id'))
        batch_op.drop_index(batch_op.f('ix_floodmap_warning_issued_at'))

    op.drop_table('floodmap_warning')
    with op.batch_alter_table('floodmap_report', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_floodmap_report_user_id'))
        batch_op.drop_index(batch_op.f('ix_floodmap_report_unit_id'))
        batch_op.drop_index(batch_op.f('ix_floodmap_report_created_at'))

    op.drop_table('floodmap_report')
    with op.batch_alter_table('floodmap_location', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_floodmap_location_thing_id'))

    op.drop_table('floodmap_location')
    with op.batch_alter_table('floodmap_level_change', schema=None) as batch_op:
        batch_op.drop_index('ix_floodmap_level_change_thing_at')

    op.drop_table('floodmap_level_change')
    with op.batch_alter_table('floodmap_datastream', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_floodmap_datastream_thing_id'))
        batch_op.drop_index(batch_op.f('ix_floodmap_datastream_sensor_id'))

    op.drop_table('floodmap_datastream')
    with op.batch_alter_table('floodmap_thing', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_floodmap_thing_unit_id'))
        batch_op.drop_index(batch_op.f('ix_floodmap_thing_last_observed_at'))
        batch_op.drop_index(batch_op.f('ix_floodmap_thing_kind'))

    op.drop_table('floodmap_thing')
    op.drop_table('floodmap_sensor')
    op.drop_table('floodmap_observed_property')
