"""Registering stations: a Thing with its Location, and for measuring stations a Sensor (with its key)
and a Datastream of a known ObservedProperty, with the alarm levels and checks of its kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, func, insert, literal, select, update
from sqlmodel import Session

from miniapps.floodmap.ingest import hash_key
from miniapps.floodmap.models import (
    FloodDatastream,
    FloodFeature,
    FloodHistoricalLocation,
    FloodLocation,
    FloodMultiComponent,
    FloodMultiDatastream,
    FloodObservedProperty,
    FloodSensor,
    FloodThing,
    StationKind,
)


@dataclass(frozen=True)
class Measure:
    """What a kind of station measures, in which unit, with the defaults of its checks."""

    property_name: str
    definition: str
    unit_name: str
    unit_symbol: str
    unit_definition: str
    valid_min: float
    valid_max: float
    max_change_per_hour: float
    levels: tuple[float | None, float | None, float | None]
    hysteresis: float
    rise_per_hour: float | None = None
    rise_near: float | None = None


MEASURES = {
    StationKind.river_gauge: Measure(
        "Water level", "http://vocab.nerc.ac.uk/collection/P07/current/CFSN0723/", "metre", "m",
        "http://www.qudt.org/qudt/owl/1.0.0/unit/Instances.html#Meter", -2.0, 12.0, 3.0, (1.0, 2.0, 3.5), 0.1,
        rise_per_hour=0.3, rise_near=0.3),
    StationKind.street_hotspot: Measure(
        "Water depth on the road", "https://hue-s.example.org/def/road-water-depth", "centimetre", "cm",
        "http://www.qudt.org/qudt/owl/1.0.0/unit/Instances.html#Centimeter", 0.0, 300.0, 100.0, (10.0, 30.0, 50.0), 3.0),
    StationKind.rain_gauge: Measure(
        "Rainfall intensity", "http://vocab.nerc.ac.uk/collection/P07/current/CFSN0282/", "millimetre per hour", "mm/h",
        "http://www.qudt.org/qudt/owl/1.0.0/unit/Instances.html#MillimeterPerHour", 0.0, 300.0, 150.0,
        (30.0, 50.0, 100.0), 5.0),
}


WATER_TEMPERATURE = Measure(
    "Water temperature", "http://vocab.nerc.ac.uk/collection/P07/current/CFSN0335/", "degree Celsius", "°C",
    "http://www.qudt.org/qudt/owl/1.0.0/unit/Instances.html#DegreeCelsius", -5.0, 45.0, 5.0, (None, None, None), 0.0)


@dataclass
class StationSpec:
    """A station to register; ``levels`` overrides the kind's alarm levels (Kim Long: 1.0 / 2.0 / 3.5 m)."""

    code: str
    name: str
    kind: StationKind
    unit_id: str
    lat: float
    lon: float
    place: str
    warn_units: list[str] = field(default_factory=list)
    synthetic: bool = False
    description: str = ""
    levels: tuple[float | None, float | None, float | None] | None = None
    stale_after_minutes: int = 60
    hold_down_minutes: int = 30
    camera_url: str | None = None
    camera_image_at: datetime | None = None


def observed_property(db: Session, measure: Measure) -> FloodObservedProperty:
    """The ObservedProperty of ``measure``, created on first use."""
    found = db.scalars(select(FloodObservedProperty).where(FloodObservedProperty.name == measure.property_name)).first()
    if found is None:
        found = FloodObservedProperty(name=measure.property_name, definition=measure.definition)
        db.add(found)
        db.flush()
    return found


def register_station(db: Session, spec: StationSpec, *, sensor_key: str | None) -> FloodThing:
    """Add a station (not committed); measuring kinds need ``sensor_key``, which is stored hashed; a camera
    given one may push its images."""
    thing = FloodThing(code=spec.code, name=spec.name, description=spec.description, kind=spec.kind,
                       unit_id=spec.unit_id, warn_units=spec.warn_units or [spec.unit_id], synthetic=spec.synthetic,
                       camera_url=spec.camera_url, camera_image_at=spec.camera_image_at)
    db.add(thing)
    db.flush()
    place = FloodLocation(name=spec.place, lat=spec.lat, lon=spec.lon)
    db.add(place)
    db.flush()
    place_station(db, thing.id, place.id)
    measure = MEASURES.get(spec.kind)
    if measure is None and not sensor_key:
        return thing  # a camera whose images are linked from elsewhere
    if not sensor_key:
        raise ValueError(f"station {spec.code!r} measures {measure.property_name}: give its sensor a key")
    # A camera's sensor pushes images (cameras.py) and has no datastream; it shares the station's code.
    sensor = FloodSensor(code=spec.code, name=f"{spec.name} sensor", key_hash=hash_key(sensor_key),
                         description=("Synthetic sensor for the demo" if spec.synthetic else "Sensor") + f" at {spec.place}")
    db.add(sensor)
    db.flush()
    if measure is None:
        return thing
    levels = spec.levels or measure.levels
    db.add(FloodDatastream(
        thing_id=thing.id, sensor_id=sensor.id, observed_property_id=observed_property(db, measure).id,
        name=f"{measure.property_name} at {spec.name}", unit_name=measure.unit_name, unit_symbol=measure.unit_symbol,
        unit_definition=measure.unit_definition, level_1=levels[0], level_2=levels[1], level_3=levels[2],
        hysteresis=measure.hysteresis, hold_down_minutes=spec.hold_down_minutes, rise_per_hour=measure.rise_per_hour,
        rise_near=measure.rise_near, valid_min=measure.valid_min, valid_max=measure.valid_max,
        max_change_per_hour=measure.max_change_per_hour, stale_after_minutes=spec.stale_after_minutes))
    db.flush()
    return thing


def place_station(db: Session, thing_id: int, location_id: int, at: datetime | None = None) -> FloodHistoricalLocation:
    """Stand station ``thing_id`` at Location ``location_id`` (not committed): it replaces the station's current
    Location, which stays as a former place, and a HistoricalLocation records when (SensorThings: linking a
    Thing to a Location replaces its Locations and the service adds a HistoricalLocation)."""
    db.execute(update(FloodLocation).where(FloodLocation.thing_id == thing_id, FloodLocation.id != location_id)
               .values(thing_id=None))
    db.execute(update(FloodLocation).where(FloodLocation.id == location_id).values(thing_id=thing_id))
    history = FloodHistoricalLocation(thing_id=thing_id, location_id=location_id, time=at or datetime.now(UTC))
    db.add(history)
    db.flush()
    return history


_PLACES = FloodLocation.__table__  # type: ignore[attr-defined]
_FEATURES = FloodFeature.__table__  # type: ignore[attr-defined]
GEOJSON = "application/geo+json"


def station_features(connection: Connection, thing_ids: set[int]) -> dict[int, int | None]:
    """The FeatureOfInterest of each station's readings that name none (as SensorThings asks: made from its
    Location, reused for every later reading there): the one made from the place it stands now (its
    lowest-numbered current Location), made on first use; None for a station without a Location."""
    if not thing_ids:
        return {}
    places, features = _PLACES, _FEATURES
    place = (select(places.c.thing_id, func.min(places.c.id).label("place"))
             .where(places.c.thing_id.in_(sorted(thing_ids))).group_by(places.c.thing_id).subquery())
    rows = connection.execute(
        select(place.c.thing_id, place.c.place, func.min(features.c.id))
        .select_from(place.outerjoin(features, features.c.location_id == place.c.place))
        .group_by(place.c.thing_id, place.c.place)).all()
    found: dict[int, int | None] = dict.fromkeys(thing_ids)
    for thing, location, feature in rows:
        if feature is None:  # the station's first reading at this place
            feature = connection.execute(
                insert(features).from_select(
                    ["name", "description", "encoding_type", "lat", "lon", "location_id"],
                    select(places.c.name, places.c.description, literal(GEOJSON), places.c.lat, places.c.lon,
                           places.c.id).where(places.c.id == location))
                .returning(features.c.id)).scalar_one()
        found[thing] = feature
    return found


def register_multi_datastream(db: Session, *, thing_id: int, sensor_id: int, name: str, measures: list[Measure],
                              description: str = "") -> FloodMultiDatastream:
    """A MultiDatastream of ``measures`` (in that component order) read by one sensor at one station
    (not committed); each component keeps its measure's unit and ingest checks."""
    multi = FloodMultiDatastream(thing_id=thing_id, sensor_id=sensor_id, name=name, description=description)
    db.add(multi)
    db.flush()
    for position, measure in enumerate(measures):
        db.add(FloodMultiComponent(
            multi_datastream_id=multi.id, position=position, observed_property_id=observed_property(db, measure).id,
            unit_name=measure.unit_name, unit_symbol=measure.unit_symbol, unit_definition=measure.unit_definition,
            valid_min=measure.valid_min, valid_max=measure.valid_max, max_change_per_hour=measure.max_change_per_hour))
    db.flush()
    return multi
