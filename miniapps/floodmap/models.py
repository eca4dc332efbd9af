"""Flood map tables, after the OGC SensorThings data model (Thing, Location, Sensor, ObservedProperty,
Datastream, Observation), plus the station's alert state, its level changes, warnings and residents' reports."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Enum, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from plugins import utcnow


class StationKind(StrEnum):
    """What a station (a SensorThings Thing) is."""

    river_gauge = "river_gauge"
    street_hotspot = "street_hotspot"
    rain_gauge = "rain_gauge"
    camera = "camera"


class FloodThing(SQLModel, table=True):
    """A station: a river gauge, a street hotspot, a rain gauge or a camera, and its alert state."""

    __tablename__ = "floodmap_thing"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=80, unique=True, description="Stable slug, e.g. 'kim-long-gauge'.")
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=1000)
    # Enum types carry the mini-app's prefix: PostgreSQL keeps type names in one namespace for every mini-app.
    kind: StationKind = Field(index=True, sa_type=Enum(StationKind, name="floodmap_stationkind"))
    unit_id: str = Field(foreign_key="org_unit.id", index=True, description="The unit the station stands in.")
    warn_units: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False),
                                  description="Units whose residents are warned when its level rises.")
    synthetic: bool = Field(default=False, description="A made-up sensor for the demo, not a real device.")
    camera_url: str | None = Field(default=None, max_length=500, description="Snapshot or stream address.")
    camera_image_at: datetime | None = None
    level: int = Field(default=0, description="Alert level 0 (normal), 1, 2 or 3.")
    stale: bool = Field(default=False, description="The sensor fell silent; the level is the last known one.")
    level_since: datetime | None = None
    lowering_to: int | None = Field(default=None, description="A lower level waiting out its hold time.")
    lowering_since: datetime | None = None
    last_value: float | None = None
    last_observed_at: datetime | None = Field(default=None, index=True)


class FloodLocation(SQLModel, table=True):
    """A place a station stands or stood (a SensorThings Location, GeoJSON point).

    ``thing_id`` is the station standing here now; a station moved elsewhere leaves its former places
    with none (its HistoricalLocations still name them).
    """

    __tablename__ = "floodmap_location"
    id: int | None = Field(default=None, primary_key=True)
    thing_id: int | None = Field(default=None, foreign_key="floodmap_thing.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=1000)
    lat: float
    lon: float


class FloodHistoricalLocation(SQLModel, table=True):
    """A station was placed at a Location at a time (a SensorThings HistoricalLocation)."""

    __tablename__ = "floodmap_historical_location"
    __table_args__ = (Index("ix_floodmap_historical_location_thing_time", "thing_id", "time"),)
    id: int | None = Field(default=None, primary_key=True)
    thing_id: int = Field(foreign_key="floodmap_thing.id", ondelete="CASCADE")
    location_id: int = Field(foreign_key="floodmap_location.id", index=True, ondelete="CASCADE")
    time: datetime = Field(default_factory=utcnow)


class FloodFeature(SQLModel, table=True):
    """What a reading observed (a SensorThings FeatureOfInterest): a point, most often made from the place of
    the station that read it (``location_id``, so later readings there reuse it)."""

    __tablename__ = "floodmap_feature"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=1000)
    encoding_type: str = Field(default="application/geo+json", max_length=100)
    lat: float
    lon: float
    location_id: int | None = Field(default=None, foreign_key="floodmap_location.id", index=True,
                                    ondelete="SET NULL", description="The Location it was made from, if any.")


class FloodSensor(SQLModel, table=True):
    """A device that pushes readings; it proves itself with a key kept only as a SHA-256 hash."""

    __tablename__ = "floodmap_sensor"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=80, unique=True, description="The name a device uses in the ingest URL.")
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=1000)
    encoding_type: str = Field(default="text/plain", max_length=100)
    sensor_metadata: str = Field(default="", max_length=1000)
    key_hash: str = Field(max_length=64)


class FloodObservedProperty(SQLModel, table=True):
    """What is measured: water level, water depth, rainfall."""

    __tablename__ = "floodmap_observed_property"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    definition: str = Field(max_length=500)
    description: str = Field(default="", max_length=1000)


class FloodDatastream(SQLModel, table=True):
    """A time series of one property at one station from one sensor, with its alarm levels and checks."""

    __tablename__ = "floodmap_datastream"
    id: int | None = Field(default=None, primary_key=True)
    thing_id: int = Field(foreign_key="floodmap_thing.id", index=True, ondelete="CASCADE")
    sensor_id: int = Field(foreign_key="floodmap_sensor.id", index=True)
    observed_property_id: int = Field(foreign_key="floodmap_observed_property.id")
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=1000)
    unit_name: str = Field(max_length=60)
    unit_symbol: str = Field(max_length=20)
    unit_definition: str = Field(default="", max_length=300)
    drives_alert: bool = Field(default=True, description="Its readings set the station's alert level.")
    level_1: float | None = None
    level_2: float | None = None
    level_3: float | None = None
    hysteresis: float = Field(default=0.0, ge=0, description="A level falls back only below threshold minus this.")
    hold_down_minutes: int = Field(default=30, ge=0, description="How long a lower level must last before it applies.")
    rise_per_hour: float | None = Field(default=None, description="A rise this fast near the next level raises early.")
    rise_near: float | None = Field(default=None, description="How close to the next level the rate-of-rise rule applies.")
    valid_min: float = Field(description="Readings below are impossible for this sensor.")
    valid_max: float = Field(description="Readings above are impossible for this sensor.")
    max_change_per_hour: float = Field(description="A faster change between two readings is an impossible jump.")
    stale_after_minutes: int = Field(default=30, ge=1)


class FloodMultiDatastream(SQLModel, table=True):
    """Several properties measured together by one sensor at one station (a SensorThings MultiDatastream):
    each reading is a list of values, one per component. It drives no alert level."""

    __tablename__ = "floodmap_multi_datastream"
    id: int | None = Field(default=None, primary_key=True)
    thing_id: int = Field(foreign_key="floodmap_thing.id", index=True, ondelete="CASCADE")
    sensor_id: int = Field(foreign_key="floodmap_sensor.id", index=True)
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=1000)


class FloodMultiComponent(SQLModel, table=True):
    """One component of a MultiDatastream: its property, unit and the checks its values pass at ingest."""

    __tablename__ = "floodmap_multi_component"
    multi_datastream_id: int = Field(foreign_key="floodmap_multi_datastream.id", primary_key=True, ondelete="CASCADE")
    position: int = Field(primary_key=True, ge=0)
    observed_property_id: int = Field(foreign_key="floodmap_observed_property.id", index=True)
    unit_name: str = Field(max_length=60)
    unit_symbol: str = Field(max_length=20)
    unit_definition: str = Field(default="", max_length=300)
    valid_min: float
    valid_max: float
    max_change_per_hour: float


class FloodObservation(SQLModel, table=True):
    """One reading; a datastream has at most one per phenomenon time (duplicates are reported, not stored).

    A reading of a MultiDatastream has ``multi_datastream_id`` and ``results`` (one value per component)
    instead of ``datastream_id`` and ``result``.
    """

    __tablename__ = "floodmap_observation"
    __table_args__ = (
        UniqueConstraint("datastream_id", "phenomenon_time", name="uq_floodmap_observation_time"),
        UniqueConstraint("multi_datastream_id", "phenomenon_time", name="uq_floodmap_observation_multi_time"),
    )
    id: int | None = Field(default=None, primary_key=True)
    datastream_id: int | None = Field(default=None, foreign_key="floodmap_datastream.id", ondelete="CASCADE")
    multi_datastream_id: int | None = Field(default=None, foreign_key="floodmap_multi_datastream.id",
                                            ondelete="CASCADE")
    phenomenon_time: datetime
    result_time: datetime = Field(default_factory=utcnow)
    result: float | None = None
    results: list[float] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # Indexed: a FeatureOfInterest's Observations, and whether one is still in use, are read through it.
    # Every reading stored through the ingest has one; loaders that bypass it (benchmarks' COPY) may not.
    feature_id: int | None = Field(default=None, foreign_key="floodmap_feature.id", index=True)


class FloodObservationHourly(SQLModel, table=True):
    """An hour of a datastream's readings after retention folded them: how many, lowest, mean, highest.

    Readings older than the retention setting are summarised here and deleted, so history charts keep
    years of hourly curves while the 10-minute table holds only recent weeks.
    """

    __tablename__ = "floodmap_observation_hourly"
    datastream_id: int = Field(foreign_key="floodmap_datastream.id", primary_key=True, ondelete="CASCADE")
    hour: datetime = Field(primary_key=True, description="Start of the hour (UTC).")
    count: int
    minimum: float
    mean: float
    maximum: float


class FloodLevelChange(SQLModel, table=True):
    """A station's alert level changed (or it went stale or came back): the history operators read."""

    __tablename__ = "floodmap_level_change"
    __table_args__ = (Index("ix_floodmap_level_change_thing_at", "thing_id", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    thing_id: int = Field(foreign_key="floodmap_thing.id", ondelete="CASCADE")
    at: datetime = Field(default_factory=utcnow)
    from_level: int
    to_level: int
    reason: str = Field(max_length=40, description="threshold, rate_of_rise, fell, stale or fresh.")
    value: float | None = None


class FloodWarning(SQLModel, table=True):
    """A warning to the residents of some units, automatic (a level rose) or issued by an operator."""

    __tablename__ = "floodmap_warning"
    id: int | None = Field(default=None, primary_key=True)
    identifier: str = Field(max_length=80, unique=True, description="The CAP identifier.")
    thing_id: int | None = Field(default=None, foreign_key="floodmap_thing.id", index=True, ondelete="SET NULL")
    level: int
    severity: str = Field(max_length=20, description="Notifier severity: info, warning or critical.")
    manual: bool = False
    units: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    title_vi: str = Field(max_length=200)
    title_en: str = Field(max_length=200)
    body_vi: str = Field(max_length=2000)
    body_en: str = Field(max_length=2000)
    issued_at: datetime = Field(default_factory=utcnow, index=True)
    expires_at: datetime
    issued_by: int | None = Field(default=None, foreign_key="user_account.id", ondelete="SET NULL")
    notification_id: int | None = None
    # CAP: a station's later level in the same event is an Update, its return to normal a closing Update
    # (level 0, responseType AllClear); each names every earlier message of the event ("sender,id,sent ...").
    msg_type: str = Field(default="Alert", max_length=10, description="CAP msgType: Alert or Update.")
    cap_references: str | None = Field(default=None, max_length=4000, description="CAP references.")


class FloodReport(SQLModel, table=True):
    """A resident's report of the water depth where they stand, with an optional photo."""

    __tablename__ = "floodmap_report"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    unit_id: str = Field(foreign_key="org_unit.id", index=True)
    lat: float
    lon: float
    depth_cm: int
    note: str = Field(default="", max_length=500)
    photo_key: str | None = Field(default=None, max_length=200)
    thumbnail_key: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow, index=True)


ALL_MODELS: tuple[Any, ...] = (
    FloodThing, FloodLocation, FloodHistoricalLocation, FloodFeature, FloodSensor, FloodObservedProperty,
    FloodDatastream, FloodMultiDatastream, FloodMultiComponent, FloodObservation,
    FloodObservationHourly, FloodLevelChange, FloodWarning, FloodReport,
)
