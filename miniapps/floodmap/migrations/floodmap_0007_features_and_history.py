"""floodmap features of interest and historical locations stored on their own, so SensorThings clients can
write them; every reading names its feature (indexed)

Before, the three sets were one table read three ways (a station's Location was also its one
HistoricalLocation and its readings' FeatureOfInterest). Each existing Location becomes a
HistoricalLocation and a FeatureOfInterest with the same id and values, so every address a client has
keeps answering what it answered; each existing reading gets the feature of its station's Location.

Revision ID: floodmap_0007
Revises: floodmap_0006
Create Date: 2026-12-03 08:10:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = 'floodmap_0007'
down_revision = 'floodmap_0006'
branch_labels = None
depends_on = None

GEOJSON = "application/geo+json"


def upgrade() -> None:
    op.create_table('floodmap_historical_location',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('thing_id', sa.Integer(), nullable=False),
    sa.Column('location_id', sa.Integer(), nullable=False),
    sa.Column('time', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['location_id'], ['floodmap_location.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['thing_id'], ['floodmap_thing.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('floodmap_historical_location', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_floodmap_historical_location_location_id'), ['location_id'], unique=False)
        batch_op.create_index('ix_floodmap_historical_location_thing_time', ['thing_id', 'time'], unique=False)
    op.create_table('floodmap_feature',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
    sa.Column('encoding_type', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('location_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['location_id'], ['floodmap_location.id'], ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('floodmap_feature', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_floodmap_feature_location_id'), ['location_id'], unique=False)

    bind = op.get_bind()
    # the derived views' rows, stored with the same ids: HistoricalLocations(n) and FeaturesOfInterest(n)
    # answer as before
    bind.execute(sa.text(
        "INSERT INTO floodmap_historical_location (id, thing_id, location_id, time) "
        "SELECT id, thing_id, id, since FROM floodmap_location"))
    bind.execute(sa.text(
        "INSERT INTO floodmap_feature (id, name, description, encoding_type, lat, lon, location_id) "
        "SELECT id, name, description, :geojson, lat, lon, id FROM floodmap_location"), {"geojson": GEOJSON})
    if bind.dialect.name == "postgresql":
        # rows inserted with explicit ids: the sequences continue after them
        for table in ('floodmap_historical_location', 'floodmap_feature'):
            bind.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                 f"COALESCE((SELECT max(id) FROM {table}), 0) + 1, false)"))

    with op.batch_alter_table('floodmap_location', schema=None) as batch_op:
        batch_op.alter_column('thing_id', existing_type=sa.Integer(), nullable=True)
        batch_op.drop_column('since')
    with op.batch_alter_table('floodmap_observation', schema=None) as batch_op:
        batch_op.add_column(sa.Column('feature_id', sa.Integer(), nullable=True))

    # each reading gets the feature of its station's place (the lowest-numbered Location, as the derived
    # view answered): one UPDATE per (Multi)Datastream, each read through its (stream, time) index, rather
    # than one correlated lookup per reading
    place = {thing: feature for thing, feature in bind.execute(sa.text(
        "SELECT thing_id, min(id) FROM floodmap_location GROUP BY thing_id"))}
    for column, table in (('datastream_id', 'floodmap_datastream'), ('multi_datastream_id', 'floodmap_multi_datastream')):
        for stream, thing in bind.execute(sa.text(f"SELECT id, thing_id FROM {table}")).all():
            if place.get(thing) is not None:
                bind.execute(sa.text(f"UPDATE floodmap_observation SET feature_id = :feature WHERE {column} = :stream"),
                             {"feature": place[thing], "stream": stream})

    with op.batch_alter_table('floodmap_observation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_floodmap_observation_feature_id'), ['feature_id'], unique=False)
        batch_op.create_foreign_key('fk_floodmap_observation_feature', 'floodmap_feature', ['feature_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('floodmap_observation', schema=None) as batch_op:
        batch_op.drop_constraint('fk_floodmap_observation_feature', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_floodmap_observation_feature_id'))
        batch_op.drop_column('feature_id')
    with op.batch_alter_table('floodmap_location', schema=None) as batch_op:
        batch_op.add_column(sa.Column('since', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False,
                                      server_default=sa.func.current_timestamp()))
    # a Location's time is its latest placing; Locations no station stands at any more cannot be kept
    op.execute("UPDATE floodmap_location SET since = COALESCE((SELECT max(h.time) FROM floodmap_historical_location h "
               "WHERE h.location_id = floodmap_location.id), since)")
    op.execute("DELETE FROM floodmap_location WHERE thing_id IS NULL")
    with op.batch_alter_table('floodmap_location', schema=None) as batch_op:
        batch_op.alter_column('thing_id', existing_type=sa.Integer(), nullable=False)
    op.drop_table('floodmap_feature')
    op.drop_table('floodmap_historical_location')
