"""The flood map of the synthetic Hue: about 60 measuring stations (river gauges, street hotspots, rain
gauges) and a few cameras placed in Hue's units, with five years of 10-minute readings (~15.8 million
observations at scale 1.0), loaded with COPY.

The readings follow Hue's climate: a dry season with low rivers and little rain, a wet season
(September to December) with showers, and each year one to four storms in October and November that
raise every river together (upstream gauges first, downstream ones hours later) to alarm level II or
III at their peaks, flood the streets and pour rain on the gauges. Both the number of stations and
the number of days scale, so a small scale gives a quick, coherent city for tests.

Every sensor's key is ``city-<station code>`` (``sensor_key``): a benchmark fixture, never a real key.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlmodel import Session

from bench.city.base import SYNTHETIC, City, CityError
from core.units.models import OrgUnit
from miniapps.floodmap.alerts import AlertRules
from miniapps.floodmap.models import (
    FloodDatastream,
    FloodObservation,
    FloodThing,
    StationKind,
)
from miniapps.floodmap.service import MEASURES, StationSpec, register_station, station_features

STEP = timedelta(minutes=10)
FULL_DAYS = 1826  # five years
FULL_STATIONS = {StationKind.river_gauge: 14, StationKind.street_hotspot: 30, StationKind.rain_gauge: 16}
FULL_CAMERAS = 8
CODE_PREFIX = "city-"
MOST_OBSERVATIONS = 200_000_000  # some 25 GB with indexes: beyond any benchmark this machine can run
RIVERS = ["sông Hương", "sông Bồ", "sông Ô Lâu", "sông Truồi", "sông Tả Trạch", "sông Hữu Trạch", "sông Đại Giang"]
OBSERVATION_COLUMNS = ("datastream_id", "phenomenon_time", "result_time", "result", "feature_id")


@dataclass(frozen=True)
class Storm:
    """A wet-season storm every station feels: when the rivers start rising, how fast, how high."""

    start: datetime
    rise_hours: float
    fall_hours: float
    crest: float  # metres above the season's level at a gauge of factor 1.0


def sensor_key(code: str) -> str:
    """The key of a city sensor (benchmarks push readings with it)."""
    return f"city-{code}"


def load(city: City) -> dict[str, int]:
    """Write the stations and their readings; returns the rows written per table."""
    days = city.size(FULL_DAYS, minimum=3)
    kinds = {kind: city.size(full, minimum=2) for kind, full in FULL_STATIONS.items()}
    measuring = sum(kinds.values())
    steps = days * 24 * 6
    if measuring * steps > MOST_OBSERVATIONS:
        raise CityError(f"scale {city.scale} asks for {measuring * steps:,} flood observations; "
                        f"at most {MOST_OBSERVATIONS:,} (scale 12)")
    start = (city.now - timedelta(days=days)).replace(second=0, microsecond=0)
    times = [start + STEP * (i + 1) for i in range(steps)]
    storms = _storms(city.rng, start, city.now)
    cameras = city.size(FULL_CAMERAS, minimum=1)
    streams = _stations(city, kinds, cameras)
    calendar = Calendar.of(times)
    # Formatted once for every station: SQLite keeps SQLAlchemy's naive-UTC text form, PostgreSQL's
    # COPY parses ISO 8601 with its zone (cheaper than converting millions of datetimes).
    stamps = [t.isoformat() if city.postgres else t.strftime("%Y-%m-%d %H:%M:%S.%f") for t in times]
    written = 0
    last: dict[int, float] = {}
    features = _features(city, list(streams))
    for stream_id, (kind, profile) in streams.items():
        values = _series(kind, profile, calendar, storms)
        last[stream_id] = values[-1]
        written += city.copy(FloodObservation.__tablename__, OBSERVATION_COLUMNS,
                             _rows(stream_id, stamps, values, features[stream_id]))
    _set_last_readings(city, last, times[-1])
    things = len(streams) + cameras
    return {"floodmap_thing": things, "floodmap_location": things, "floodmap_sensor": len(streams),
            "floodmap_datastream": len(streams), "floodmap_observation": written}


def _features(city: City, stream_ids: list[int]) -> dict[int, int | None]:
    """Each datastream's FeatureOfInterest: its station's, made from the station's Location as the ingest
    makes it for a reading that names none (``service.station_features``)."""
    with city.engine.begin() as connection:
        things = dict(connection.execute(select(FloodDatastream.id, FloodDatastream.thing_id)
                                         .where(FloodDatastream.id.in_(stream_ids))).all())  # type: ignore[union-attr]
        of_thing = station_features(connection, set(things.values()))
    return {stream: of_thing[thing] for stream, thing in things.items()}


def _rows(stream_id: int, stamps: list, values: list[float], feature_id: int | None) -> Iterator[tuple]:
    for stamp, value in zip(stamps, values, strict=True):
        yield stream_id, stamp, stamp, value, feature_id


@dataclass(frozen=True)
class Profile:
    """How one station answers the city's weather: how strongly, how late, and its own noise seed."""

    factor: float
    lag_hours: float
    seed: int


def _stations(city: City, kinds: dict[StationKind, int], cameras: int) -> dict[int, tuple[StationKind, Profile]]:
    """Register the stations in Hue's units; returns each datastream's kind and profile by its id."""
    with Session(city.engine) as db:
        if db.scalar(select(func.count()).select_from(FloodThing).where(FloodThing.code.startswith(CODE_PREFIX))):
            raise CityError("the city's flood stations are already loaded in this database")
        units = list(db.execute(select(OrgUnit.id, OrgUnit.lat, OrgUnit.lon).where(
            OrgUnit.kind.in_(["ward", "commune"]), OrgUnit.lat.is_not(None)).order_by(OrgUnit.id)))
        if not units:
            raise CityError("no wards or communes with coordinates: run 'superapp seed demo' first")
        rng = city.rng
        planned: list[tuple[StationSpec, Profile]] = []
        number = 0
        for kind, count in [*kinds.items(), (StationKind.camera, cameras)]:
            for index in range(count):
                number += 1
                unit_id, lat, lon = units[number % len(units)]
                code = f"{CODE_PREFIX}{kind.value.replace('_', '-')}-{index + 1:02d}"
                river = RIVERS[index % len(RIVERS)]
                name = {StationKind.river_gauge: f"Trạm thủy văn {river} số {index + 1}",
                        StationKind.street_hotspot: f"Điểm ngập số {index + 1}",
                        StationKind.rain_gauge: f"Trạm đo mưa số {index + 1}",
                        StationKind.camera: f"Camera giám sát ngập số {index + 1}"}[kind]
                spec = StationSpec(
                    code, f"{SYNTHETIC} {name}", kind, unit_id, round(lat + rng.uniform(-0.01, 0.01), 5),
                    round(lon + rng.uniform(-0.01, 0.01), 5), f"{SYNTHETIC} {unit_id}", synthetic=True,
                    warn_units=[unit_id], description=f"{SYNTHETIC} station of the city benchmark",
                    camera_url=f"https://camera.example.org/city/{code}.jpg" if kind is StationKind.camera else None)
                # downstream gauges crest later and higher than upstream ones
                planned.append((spec, Profile(factor=rng.uniform(0.6, 1.3), lag_hours=rng.uniform(0, 12),
                                              seed=rng.randrange(2**32))))
        streams: dict[int, tuple[StationKind, Profile]] = {}
        for spec, profile in planned:
            measuring = spec.kind is not StationKind.camera
            thing = register_station(db, spec, sensor_key=sensor_key(spec.code) if measuring else None)
            if measuring:
                stream_id = db.scalar(select(FloodDatastream.id).where(FloodDatastream.thing_id == thing.id))
                streams[stream_id] = (spec.kind, profile)
        db.commit()
    return streams


def _storms(rng: random.Random, start: datetime, end: datetime) -> list[Storm]:
    """One to four storms each October-November between ``start`` and ``end``."""
    storms = []
    for year in range(start.year, end.year + 1):
        for _ in range(rng.randint(1, 4)):
            begins = datetime(year, 10, 1, tzinfo=start.tzinfo) + timedelta(hours=rng.uniform(0, 61 * 24))
            if start <= begins <= end:
                # most storms bring the Huong to level I or II; about one in four reaches level III
                crest = rng.uniform(0.8, 2.2) if rng.random() < 0.75 else rng.uniform(2.6, 4.0)
                storms.append(Storm(begins, rng.uniform(18, 36), rng.uniform(48, 96), crest))
    return sorted(storms, key=lambda s: s.start)


def _wetness(at: datetime) -> float:
    """0 in the dry season, up to 1 around the start of November (Hue's wet season peaks Oct-Nov)."""
    day = at.timetuple().tm_yday
    distance = min(abs(day - 305), 365 - abs(day - 305))
    return math.exp(-((distance / 45) ** 2))


@dataclass(frozen=True)
class Calendar:
    """What every station shares at each reading time, computed once: wetness of the season, tide."""

    times: list[datetime]
    wetness: list[float]
    tide: list[float]

    @classmethod
    def of(cls, times: list[datetime]) -> Calendar:
        """The calendar of ``times`` (the season changes by the day, so it is computed per day)."""
        by_day: dict[tuple[int, int], float] = {}
        wetness = []
        for at in times:
            day = (at.year, at.timetuple().tm_yday)
            if day not in by_day:
                by_day[day] = _wetness(at)
            wetness.append(by_day[day])
        tide = [0.04 * math.sin((at.hour + at.minute / 60) / 12.4 * 2 * math.pi) for at in times]
        return cls(times, wetness, tide)


def _flood(calendar: Calendar, storms: list[Storm], profile: Profile) -> list[float]:
    """Each reading time's storm water at this station (metres at a river gauge of factor 1)."""
    times = calendar.times
    water = [0.0] * len(times)
    if not times:
        return water
    first, per_hour = times[0], timedelta(hours=1) / STEP
    for storm in storms:
        crest_at = storm.start + timedelta(hours=storm.rise_hours + profile.lag_hours)
        crest_index = (crest_at - first) / STEP
        low = max(0, math.ceil(crest_index - storm.rise_hours * per_hour))
        high = min(len(times), int(crest_index + storm.fall_hours * 3 * per_hour) + 1)  # the recession tails off
        crest = storm.crest * profile.factor
        for i in range(low, high):
            hours = (i - crest_index) / per_hour
            if hours <= 0:
                water[i] += crest * (1 + hours / storm.rise_hours) ** 2
            else:
                water[i] += crest * math.exp(-hours / (storm.fall_hours / 2))
    return water


def _series(kind: StationKind, profile: Profile, calendar: Calendar, storms: list[Storm]) -> list[float]:
    """The station's readings at the calendar's times, within its sensor's valid range."""
    rng = random.Random(profile.seed)
    flood = _flood(calendar, storms, profile)
    measure = MEASURES[kind]
    values = []
    if kind is StationKind.river_gauge:
        gauss = rng.gauss
        values = [round(0.35 + 0.45 * wet + tide + water + gauss(0, 0.008), 3)
                  for wet, tide, water in zip(calendar.wetness, calendar.tide, flood, strict=True)]
    elif kind is StationKind.street_hotspot:
        for water in flood:
            # the street floods once the river is well above its banks
            depth = max(0.0, (water - 0.9) * 28.0)
            values.append(round(depth + abs(rng.gauss(0, 0.4)), 1) if depth else 0.0)
    else:
        shower_left, shower_rate = 0, 0.0
        for index, (wet, water) in enumerate(zip(calendar.wetness, flood, strict=True)):
            if shower_left == 0 and rng.random() < 0.0015 * (0.15 + wet):
                shower_left, shower_rate = rng.randint(6, 24), rng.uniform(2.0, 25.0)
            rain = shower_rate if shower_left else 0.0
            shower_left = max(0, shower_left - 1)
            if index + 1 < len(flood) and flood[index + 1] > water:  # the storm's rain falls while rivers rise
                rain += min(80.0, water * 25.0)
            values.append(round(rain * (0.85 + 0.3 * rng.random()), 1) if rain else 0.0)
    return [min(measure.valid_max, max(measure.valid_min, v)) for v in values]


def _set_last_readings(city: City, last: dict[int, float], at: datetime) -> None:
    """Each station shows its last reading and the level it gives, as ingest would have left it."""
    with Session(city.engine) as db:
        for stream in db.scalars(select(FloodDatastream).where(FloodDatastream.id.in_(list(last)))):
            thing = db.get(FloodThing, stream.thing_id)
            value = last[stream.id]
            thing.last_value, thing.last_observed_at, thing.level_since = value, at, at
            thing.level = AlertRules((stream.level_1, stream.level_2, stream.level_3)).raw_level(value)
            db.add(thing)
        db.commit()
    if not city.postgres:
        return
    # Statistics for the planner, and the visibility map that lets a count read the index alone (1.2 s
    # -> 0.11 s for a datastream's 263,000 readings); autovacuum would get there later on its own.
    with city.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f"VACUUM (ANALYZE) {FloodObservation.__tablename__}")

