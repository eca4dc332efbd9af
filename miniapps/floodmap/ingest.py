"""Sensors push readings: key check, per-reading checks, duplicates, storage and the alert step, in one
transaction. A batch keeps its good readings and reports each bad one; nothing accepted is lost.

Per reading, in order: an object; a datastream of this sensor; a time with a zone, not in the future nor before year 2;
a finite number that is no sentinel (-999 and the like) and within the sensor's valid range; the
datastream's unit when one is named; not already stored for that time (a *duplicate*, reported and
not stored again); no impossible jump from the nearest stored or accepted reading either side.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    DateTime,
    Float,
    Integer,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session

from miniapps.floodmap.alerts import AlertRules, AlertState, LevelChange, step
from miniapps.floodmap.models import (
    FloodDatastream,
    FloodLevelChange,
    FloodObservation,
    FloodSensor,
    FloodThing,
)
from plugins import DomainError

SENTINELS = frozenset({-9999.0, -999.9, -999.0, -99.9, -99.0, 999.0, 9999.0, 99999.0, -32768.0, 32767.0, 65535.0})
FUTURE_SKEW = timedelta(minutes=2)
# The look-back windows below (hours) are subtracted from a reading's time; a floor this far above
# datetime.min keeps that arithmetic, and the move to UTC, from overflowing.
EARLIEST = datetime(2, 1, 1, tzinfo=UTC)
MAX_BATCH = 1000
JUMP_WINDOW = timedelta(hours=6)  # neighbours further apart than this are not compared
MIN_JUMP_SPAN = timedelta(minutes=5)  # a step between close readings may be as big as 5 minutes' change
RISE_WINDOW = timedelta(hours=1)
MIN_RISE_SPAN = timedelta(minutes=15)
STORE_ATTEMPTS = 3  # a batch racing another for the same readings is judged again, at most this often


class SensorRefused(DomainError):
    """The sensor is unknown or its key is wrong (always the same answer: no enumeration)."""


class IngestRace(RuntimeError):
    """Concurrent batches kept storing the same readings first (SQLite only: PostgreSQL locks the station)."""


def new_key() -> str:
    """A fresh random sensor key (shown once, stored hashed)."""
    return "fm_" + secrets.token_urlsafe(24)


def hash_key(key: str) -> str:
    """The stored form of a sensor key (keys are long random strings, so one SHA-256 is enough)."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(slots=True)
class ReadingResult:
    """What happened to one reading of a batch."""

    index: int
    status: str  # accepted | duplicate | rejected
    reason: str | None = None
    field: str | None = None
    datastream_id: int | None = None
    time: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        """The per-reading entry of the ingest response."""
        body: dict[str, Any] = {"index": self.index, "status": self.status}
        if self.datastream_id is not None:
            body["datastream"] = self.datastream_id
        if self.time is not None:
            body["phenomenonTime"] = self.time.isoformat().replace("+00:00", "Z")
        if self.reason:
            body["reason"] = self.reason
        if self.field:
            body["field"] = self.field
        return body


@dataclass
class StationUpdate:
    """A station touched by a batch: its new state and any level change, for announcing after commit."""

    thing_id: int
    change: LevelChange | None
    came_back: bool


@dataclass
class IngestOutcome:
    """The per-reading results and the stations whose state moved."""

    results: list[ReadingResult]
    stations: list[StationUpdate] = field(default_factory=list)

    def count(self, status: str) -> int:
        """How many readings ended with ``status``."""
        return sum(1 for r in self.results if r.status == status)


@dataclass(frozen=True, slots=True)
class _Stream:
    """What the checks and the alert step need of one datastream, read as plain columns once per batch."""

    id: int
    thing_id: int
    unit_symbol: str
    valid_min: float
    valid_max: float
    max_change_per_hour: float
    drives_alert: bool
    rules: AlertRules


@dataclass(slots=True)
class _Station:
    """A station's alert state as read (and locked) at the start of a batch; written back once at the end."""

    id: int
    level: int
    stale: bool
    level_since: datetime | None
    lowering_to: int | None
    lowering_since: datetime | None
    last_value: float | None
    last_observed_at: datetime | None


@dataclass(slots=True)
class _Candidate:
    index: int
    stream: _Stream
    time: datetime
    value: float
    feature: int | None = None


_D, _T = FloodDatastream, FloodThing
# One query gives the sensor's datastreams and locks their stations (in id order, so two batches of
# different sensors on one station cannot deadlock): on PostgreSQL a second batch for the same station
# waits here, so the series read afterwards is the whole truth.
_STREAMS_AND_STATIONS = (
    select(_D.id, _D.thing_id, _D.unit_symbol, _D.valid_min, _D.valid_max, _D.max_change_per_hour, _D.drives_alert,
           _D.level_1, _D.level_2, _D.level_3, _D.hysteresis, _D.hold_down_minutes, _D.rise_per_hour, _D.rise_near,
           _T.level, _T.stale, _T.level_since, _T.lowering_to, _T.lowering_since, _T.last_value, _T.last_observed_at)
    .join(_T, _T.id == _D.thing_id).where(_D.sensor_id == bindparam("sensor"))
    .order_by(_T.id, _D.id).with_for_update(of=_T)
)
_OBSERVATIONS = FloodObservation.__table__  # type: ignore[attr-defined]
_STATIONS = FloodThing.__table__  # type: ignore[attr-defined]
_SAVE_STATION = update(_STATIONS).where(_STATIONS.c.id == bindparam("station")).values(
    level=bindparam("level"), stale=bindparam("stale"), level_since=bindparam("level_since"),
    lowering_to=bindparam("lowering_to"), lowering_since=bindparam("lowering_since"),
    last_value=bindparam("last_value"), last_observed_at=bindparam("last_observed_at"))


def _store_rows_statement() -> Any:
    """PostgreSQL: the accepted readings as four arrays unnested into one INSERT that counts what it
    stored. Five bind parameters whatever the batch's size, one round trip, no per-row SQL to parse."""
    rows = func.unnest(bindparam("streams", type_=postgresql.ARRAY(Integer)),
                       bindparam("times", type_=postgresql.ARRAY(DateTime(timezone=True))),
                       bindparam("values", type_=postgresql.ARRAY(Float)),
                       bindparam("features", type_=postgresql.ARRAY(Integer))
                       ).table_valued("datastream_id", "phenomenon_time", "result", "feature_id").render_derived()
    stored = (postgresql.insert(_OBSERVATIONS)
              .from_select(["datastream_id", "phenomenon_time", "result_time", "result", "feature_id"],
                           select(rows.c.datastream_id, rows.c.phenomenon_time,
                                  bindparam("now", type_=DateTime(timezone=True)), rows.c.result,
                                  rows.c.feature_id))
              .on_conflict_do_nothing(index_elements=["datastream_id", "phenomenon_time"])
              .returning(_OBSERVATIONS.c.id).cte("stored"))
    return select(func.count()).select_from(stored)


_STORE_ARRAYS = _store_rows_statement()
# SQLite has no arrays: one multi-row INSERT (SQLAlchemy's insertmanyvalues) whose returned ids are counted.
_STORE_ROWS = sqlite.insert(_OBSERVATIONS).on_conflict_do_nothing(
    index_elements=["datastream_id", "phenomenon_time"]).returning(_OBSERVATIONS.c.id)


def authenticate(db: Session, *, sensor_code: str, key: str | None) -> FloodSensor:
    """The sensor whose code and key match; SensorRefused otherwise."""
    sensor = db.scalars(select(FloodSensor).where(FloodSensor.code == sensor_code)).first()
    given = hash_key(key or "")
    expected = sensor.key_hash if sensor is not None else hash_key(secrets.token_hex(8))
    if not hmac.compare_digest(given, expected) or sensor is None or not key:
        raise SensorRefused(401, "unknown sensor or wrong key", field="header.x-sensor-key",
                            headers={"WWW-Authenticate": 'SensorKey realm="floodmap"'})
    return sensor


def ingest(engine: Engine, *, sensor: FloodSensor, readings: list[Any], now: datetime | None = None,
           replacing: int | None = None, features: list[int | None] | None = None) -> IngestOutcome:
    """Check, store and apply ``readings`` of ``sensor`` in one transaction. ``replacing``: the id of a
    stored reading of the sensor that the batch replaces (a correction through SensorThings PATCH); it is
    deleted in the same transaction, and kept when no new reading is accepted. ``features``: the
    FeatureOfInterest of each reading (by index, checked by the caller); a reading without one gets its
    station's (``service.station_features``)."""
    now = now or datetime.now(UTC)
    for _ in range(STORE_ATTEMPTS):
        outcome = _ingest_once(engine, sensor.id, readings, now, replacing, features)
        if outcome is not None:
            return outcome
    raise IngestRace(f"sensor {sensor.code!r}: readings kept arriving for the same times; nothing was stored")


def _ingest_once(engine: Engine, sensor_id: int, readings: list[Any], now: datetime,
                 replacing: int | None = None, features: list[int | None] | None = None) -> IngestOutcome | None:
    """One attempt; None (rolled back) when another request stored some of the same readings meanwhile."""
    with engine.connect() as connection:
        streams, stations = _streams_and_stations(connection, sensor_id)
        if replacing is not None:
            connection.execute(_OBSERVATIONS.delete().where(_OBSERVATIONS.c.id == replacing,
                                                            _OBSERVATIONS.c.datastream_id.in_(list(streams))))
        results: list[ReadingResult | None] = [None] * len(readings)
        candidates: list[_Candidate] = []
        for index, raw in enumerate(readings):
            checked = _check(index, raw, streams, now)
            if type(checked) is _Candidate:
                if features is not None and index < len(features):
                    checked.feature = features[index]
                candidates.append(checked)
            else:
                results[index] = checked
        by_stream: dict[int, list[_Candidate]] = {}
        for c in candidates:
            by_stream.setdefault(c.stream.id, []).append(c)
        accepted: list[_Candidate] = []
        series: dict[int, list[tuple[datetime, float]]] = {}
        for stream_id, mine in sorted(by_stream.items()):
            mine.sort(key=lambda c: (c.time, c.index))
            series[stream_id] = _series_around(connection, mine)
            accepted.extend(_against_series(mine, series[stream_id], results))
        if replacing is not None and not accepted:
            connection.rollback()  # the old reading stays when its replacement is refused
            return IngestOutcome(results=[r for r in results if r is not None])
        _give_features(connection, accepted)
        if _store(connection, accepted, now) != len(accepted):
            connection.rollback()  # SQLite does not lock rows: judge the batch again against what is stored now
            return None
        if replacing is not None:
            _keep_id(connection, replacing, _OBSERVATIONS.c.datastream_id, accepted[0].stream.id, accepted[0].time)
        for c in accepted:
            results[c.index] = ReadingResult(c.index, "accepted", datastream_id=c.stream.id, time=c.time)
        updates = _apply_alerts(connection, stations, accepted, series, now)
        connection.commit()
    return IngestOutcome(results=[r for r in results if r is not None], stations=updates)


def _streams_and_stations(connection: Connection, sensor_id: int) -> tuple[dict[int, _Stream], dict[int, _Station]]:
    """The sensor's datastreams and their stations' state, the stations locked until the batch commits."""
    streams: dict[int, _Stream] = {}
    stations: dict[int, _Station] = {}
    for row in connection.execute(_STREAMS_AND_STATIONS, {"sensor": sensor_id}):
        rules = AlertRules(thresholds=(row.level_1, row.level_2, row.level_3), hysteresis=row.hysteresis,
                           hold_down=timedelta(minutes=row.hold_down_minutes), rise_per_hour=row.rise_per_hour,
                           rise_near=row.rise_near)
        streams[row.id] = _Stream(row.id, row.thing_id, row.unit_symbol, row.valid_min, row.valid_max,
                                  row.max_change_per_hour, row.drives_alert, rules)
        stations[row.thing_id] = _Station(row.thing_id, row.level, row.stale, row.level_since, row.lowering_to,
                                          row.lowering_since, row.last_value, row.last_observed_at)
    return streams, stations


def _check(index: int, raw: Any, streams: dict[int, _Stream], now: datetime) -> _Candidate | ReadingResult:
    where = f"readings[{index}]"
    if not isinstance(raw, dict):
        return ReadingResult(index, "rejected", "a reading is an object with time and value", where)
    stream_ref = raw.get("datastream", raw.get("Datastream"))
    if isinstance(stream_ref, dict):
        stream_ref = stream_ref.get("@iot.id")
    if stream_ref is None:
        if len(streams) != 1:
            return ReadingResult(index, "rejected", f"name the datastream: one of {sorted(streams)}",
                                 f"{where}.datastream")
        stream = next(iter(streams.values()))
    else:
        stream = streams.get(stream_ref) if isinstance(stream_ref, int) and not isinstance(stream_ref, bool) else None
        if stream is None:
            return ReadingResult(index, "rejected", f"not a datastream of this sensor; use one of {sorted(streams)}",
                                 f"{where}.datastream")
    when_raw = raw.get("time", raw.get("phenomenonTime"))
    when = _parse_time(when_raw)
    if when is None:
        return ReadingResult(index, "rejected", "time must be an ISO 8601 date-time with a zone, "
                                                "e.g. 2026-11-25T21:00:00+07:00", f"{where}.time", stream.id)
    # compared before the move to UTC, which overflows at the ends of datetime's range
    if when < EARLIEST:
        return ReadingResult(index, "rejected", "reading is from before year 2 (check the sensor's clock)",
                             f"{where}.time", stream.id)
    if when > now + FUTURE_SKEW:
        return ReadingResult(index, "rejected", "reading is from the future (check the sensor's clock)",
                             f"{where}.time", stream.id, _in_utc(when))
    when = when.astimezone(UTC)
    value = raw.get("value", raw.get("result"))
    if isinstance(value, bool) or not isinstance(value, int | float) or not _finite(value):
        return ReadingResult(index, "rejected", "value must be a finite number", f"{where}.value", stream.id, when)
    value = float(value)
    if value in SENTINELS:
        return ReadingResult(index, "rejected", f"{value:g} is a sensor's 'no data' sentinel, not a reading",
                             f"{where}.value", stream.id, when)
    unit = raw.get("unit")
    if unit is not None and unit != stream.unit_symbol:
        return ReadingResult(index, "rejected", f"wrong unit {unit!r}: this datastream reports {stream.unit_symbol!r}",
                             f"{where}.unit", stream.id, when)
    if not stream.valid_min <= value <= stream.valid_max:
        return ReadingResult(index, "rejected", f"{value:g} {stream.unit_symbol} is outside this sensor's possible "
                                                f"range {stream.valid_min:g}..{stream.valid_max:g}",
                             f"{where}.value", stream.id, when)
    return _Candidate(index, stream, when, value)


def _in_utc(when: datetime) -> datetime | None:
    try:
        return when.astimezone(UTC)
    except OverflowError:  # late on 9999-12-31 west of UTC: the time is reported without an echo
        return None


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # JSON integers have no size limit; one too big for a float is no reading
        return False


def _parse_time(raw: Any) -> datetime | None:
    """An aware datetime in the reading's own zone (the caller range-checks it before moving it to UTC)."""
    if not isinstance(raw, str) or len(raw) > 40:
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00") if raw.endswith("Z") else raw)
    except ValueError:
        return None
    if parsed.utcoffset() is None:
        return None
    return parsed


def _series_around(connection: Connection, candidates: list[_Candidate]) -> list[tuple[datetime, float]]:
    """The stored readings of the candidates' datastream from a window before the first to after the last."""
    rows = connection.execute(select(FloodObservation.phenomenon_time, FloodObservation.result).where(
        FloodObservation.datastream_id == candidates[0].stream.id,
        FloodObservation.phenomenon_time >= candidates[0].time - JUMP_WINDOW,
        FloodObservation.phenomenon_time <= candidates[-1].time + JUMP_WINDOW,
    ).order_by(FloodObservation.phenomenon_time)).all()
    return [(t, v) for t, v in rows]  # UTC-aware already (UTCDateTime), in time order from the unique index


def _against_series(candidates: list[_Candidate], series: list[tuple[datetime, float]],
                    results: list[ReadingResult | None]) -> list[_Candidate]:
    """Duplicates and impossible jumps, judged against the stored series and the batch's accepted readings;
    the accepted ones join ``series``."""
    stream = candidates[0].stream
    times = [t for t, _ in series]
    accepted = []
    for c in candidates:
        at = bisect.bisect_left(times, c.time)
        if at < len(times) and times[at] == c.time:
            results[c.index] = ReadingResult(c.index, "duplicate", "already stored for this time",
                                             datastream_id=stream.id, time=c.time)
            continue
        jump = _jump(stream, c, series[at - 1] if at > 0 else None) or _jump(
            stream, c, series[at] if at < len(series) else None)
        if jump:
            results[c.index] = ReadingResult(c.index, "rejected", jump, f"readings[{c.index}].value", stream.id, c.time)
            continue
        series.insert(at, (c.time, c.value))
        times.insert(at, c.time)
        accepted.append(c)
    return accepted


def _jump(stream: _Stream, c: _Candidate, neighbour: tuple[datetime, float] | None) -> str | None:
    if neighbour is None:
        return None
    apart = abs(neighbour[0] - c.time)
    if apart > JUMP_WINDOW:
        return None
    allowed = stream.max_change_per_hour * max(apart, MIN_JUMP_SPAN).total_seconds() / 3600
    if abs(c.value - neighbour[1]) > allowed + 1e-9:
        return (f"impossible jump: {c.value:g} {stream.unit_symbol} against {neighbour[1]:g} at "
                f"{neighbour[0].isoformat()} (at most {stream.max_change_per_hour:g} {stream.unit_symbol} an hour)")
    return None


def _keep_id(connection: Connection, replaced: int, stream_column: Any, stream_id: int, when: datetime) -> None:
    """The reading that replaced ``replaced`` takes its id: a corrected Observation keeps its address."""
    connection.execute(update(_OBSERVATIONS).where(stream_column == stream_id, _OBSERVATIONS.c.phenomenon_time == when)
                       .values(id=replaced))


def _store(connection: Connection, accepted: list[_Candidate], now: datetime) -> int:
    """Insert the accepted readings, skipping any another request stored meanwhile; returns how many were stored."""
    if not accepted:
        return 0
    if connection.dialect.name == "postgresql":
        return connection.execute(_STORE_ARRAYS, {
            "streams": [c.stream.id for c in accepted], "times": [c.time for c in accepted],
            "values": [c.value for c in accepted], "features": [c.feature for c in accepted], "now": now}).scalar_one()
    # Only the ids come back: their number says whether every reading was stored, which is all we need.
    return len(connection.execute(_STORE_ROWS, [
        {"datastream_id": c.stream.id, "phenomenon_time": c.time, "result_time": now, "result": c.value,
         "feature_id": c.feature} for c in accepted]).all())


def _give_features(connection: Connection, accepted: list[_Candidate]) -> None:
    """Readings that name no FeatureOfInterest get their station's: one query for the batch."""
    from miniapps.floodmap.service import station_features  # service imports this module (hash_key)

    plain = [c for c in accepted if c.feature is None]
    if plain:
        found = station_features(connection, {c.stream.thing_id for c in plain})
        for c in plain:
            c.feature = found.get(c.stream.thing_id)


def _apply_alerts(connection: Connection, stations: dict[int, _Station], kept: list[_Candidate],
                  series: dict[int, list[tuple[datetime, float]]], now: datetime) -> list[StationUpdate]:
    """Move each touched station's level through the new readings, oldest first (``stations`` are locked),
    then write the stations' state and their level changes, one statement each."""
    updates = []
    changes: list[dict[str, Any]] = []
    by_thing: dict[int, list[_Candidate]] = {}
    for c in kept:
        if c.stream.drives_alert:
            by_thing.setdefault(c.stream.thing_id, []).append(c)
    for thing_id, readings in sorted(by_thing.items()):
        station = stations[thing_id]
        stream = readings[0].stream
        rules = stream.rules
        state = AlertState(level=station.level, last_at=station.last_observed_at, lowering_to=station.lowering_to,
                           lowering_since=station.lowering_since)
        change: LevelChange | None = None
        readings.sort(key=lambda r: r.time)
        newest = readings[-1]
        band_of = {level: rules.quiet_band(level) for level in range(4)}
        last_at = state.last_at
        for c in readings:
            band = band_of[state.level]
            if state.lowering_since is None and band is not None and band[0] <= c.value < band[1]:
                # most readings: nothing can move, so the alert step is skipped (only the time advances)
                if last_at is None or c.time > last_at:
                    last_at = c.time
                continue
            previous = _rise_base(series[stream.id], c.time)
            state, moved = step(rules, replace(state, last_at=last_at), value=c.value, at=c.time, previous=previous)
            last_at = state.last_at
            if moved is not None:
                changes.append({"thing_id": thing_id, "at": moved.at, "from_level": moved.from_level,
                                "to_level": moved.to_level, "reason": moved.reason, "value": moved.value})
                change = moved if change is None else LevelChange(change.from_level, moved.to_level, moved.reason,
                                                                  moved.value, moved.at)
        came_back = False
        if station.last_observed_at is None or newest.time > station.last_observed_at:
            station.last_value, station.last_observed_at = newest.value, newest.time
            if station.stale:
                came_back = True
                changes.append({"thing_id": thing_id, "at": now, "from_level": station.level,
                                "to_level": state.level, "reason": "fresh", "value": newest.value})
            station.stale = False
        if change is not None and change.from_level == change.to_level:
            change = None  # up and back down within one batch
        if state.level != station.level:
            station.level_since = last_at
        station.level, station.lowering_to, station.lowering_since = state.level, state.lowering_to, state.lowering_since
        updates.append(StationUpdate(thing_id=thing_id, change=change, came_back=came_back))
    if updates:
        connection.execute(_SAVE_STATION, [
            {"station": s.id, "level": s.level, "stale": s.stale, "level_since": s.level_since,
             "lowering_to": s.lowering_to, "lowering_since": s.lowering_since, "last_value": s.last_value,
             "last_observed_at": s.last_observed_at} for s in (stations[u.thing_id] for u in updates)])
    if changes:
        connection.execute(insert(FloodLevelChange.__table__), changes)  # type: ignore[attr-defined]
    return updates


def _rise_base(series: list[tuple[datetime, float]], at: datetime) -> tuple[datetime, float] | None:
    """The oldest reading of the hour before ``at``, if it is old enough to give a rate.

    ``series`` (stored readings around the batch, plus the batch's accepted ones) reaches back
    JUMP_WINDOW before the batch's first reading, so it covers that hour.
    """
    first = bisect.bisect_left(series, (at - RISE_WINDOW,))
    if first >= len(series) or series[first][0] >= at:
        return None
    when, value = series[first]
    if at - when < MIN_RISE_SPAN:
        return None
    return when, value


def mark_stale(engine: Engine, *, now: datetime | None = None) -> list[int]:
    """Mark stations whose alert datastream has been silent past its limit as stale; returns their ids."""
    now = now or datetime.now(UTC)
    went: list[int] = []
    with Session(engine, expire_on_commit=False) as db:
        rows = db.execute(select(FloodThing.id, FloodThing.last_observed_at, FloodDatastream.stale_after_minutes)
                          .join(FloodDatastream, FloodDatastream.thing_id == FloodThing.id)
                          .where(FloodDatastream.drives_alert, FloodThing.stale.is_(False))).all()
        for thing_id, last_at, minutes in rows:
            if last_at is not None and now - last_at.astimezone(UTC) < timedelta(minutes=minutes):
                continue
            done = db.execute(update(FloodThing).where(FloodThing.id == thing_id, FloodThing.stale.is_(False))
                              .values(stale=True))
            if done.rowcount:
                level = db.get(FloodThing, thing_id).level
                db.add(FloodLevelChange(thing_id=thing_id, at=now, from_level=level, to_level=level, reason="stale"))
                went.append(thing_id)
        db.commit()
    return sorted(set(went))


# --- MultiDatastreams ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Component:
    """What the checks need of one component of a MultiDatastream."""

    unit_symbol: str
    valid_min: float
    valid_max: float
    max_change_per_hour: float


def ingest_multi(engine: Engine, *, sensor_id: int, readings: list[Any], now: datetime | None = None,
                 replacing: int | None = None, features: list[int | None] | None = None) -> IngestOutcome:
    """Check and store readings of ``sensor_id``'s MultiDatastreams: each a list of values, one per component,
    judged as single readings are (time, finite, no sentinel, each component in its range, duplicates by
    time, no impossible jump of any component). ``replacing``: an observation this batch's one reading
    replaces (deleted only if the new reading is accepted); ``features`` as for ``ingest``. MultiDatastreams
    drive no alert level."""
    from miniapps.floodmap.models import FloodMultiComponent, FloodMultiDatastream
    from miniapps.floodmap.service import station_features  # service imports this module (hash_key)

    now = now or datetime.now(UTC)
    for _ in range(STORE_ATTEMPTS):
        with engine.connect() as connection:
            components: dict[int, list[_Component]] = {}
            things: dict[int, int] = dict(connection.execute(select(FloodMultiDatastream.id, FloodMultiDatastream.thing_id)
                                             .where(FloodMultiDatastream.sensor_id == sensor_id)).all())
            for row in connection.execute(
                    select(FloodMultiComponent.multi_datastream_id, FloodMultiComponent.unit_symbol,
                           FloodMultiComponent.valid_min, FloodMultiComponent.valid_max,
                           FloodMultiComponent.max_change_per_hour)
                    .join(FloodMultiDatastream, FloodMultiDatastream.id == FloodMultiComponent.multi_datastream_id)
                    .where(FloodMultiDatastream.sensor_id == sensor_id)
                    .order_by(FloodMultiComponent.multi_datastream_id, FloodMultiComponent.position)):
                components.setdefault(row[0], []).append(_Component(*row[1:]))
            if replacing is not None:
                connection.execute(_OBSERVATIONS.delete().where(
                    _OBSERVATIONS.c.id == replacing, _OBSERVATIONS.c.multi_datastream_id.in_(list(components))))
            results: list[ReadingResult] = []
            checked: list[tuple[int, int, datetime, list[float]]] = []
            for index, raw in enumerate(readings):
                outcome = _check_multi(index, raw, components, now)
                if isinstance(outcome, ReadingResult):
                    results.append(outcome)
                else:
                    checked.append((index, *outcome))
            checked.sort(key=lambda c: (c[1], c[2], c[0]))
            accepted: list[tuple[int, int, datetime, list[float]]] = []
            for stream_id in sorted({c[1] for c in checked}):
                mine = [c for c in checked if c[1] == stream_id]
                # the stored readings from a jump window before the first to after the last, as single ingest reads
                known = [(t, list(v)) for t, v in connection.execute(
                    select(_OBSERVATIONS.c.phenomenon_time, _OBSERVATIONS.c.results).where(
                        _OBSERVATIONS.c.multi_datastream_id == stream_id,
                        _OBSERVATIONS.c.phenomenon_time >= mine[0][2] - JUMP_WINDOW,
                        _OBSERVATIONS.c.phenomenon_time <= mine[-1][2] + JUMP_WINDOW)
                    .order_by(_OBSERVATIONS.c.phenomenon_time))]
                times = [t for t, _ in known]
                for index, _, when, values in mine:
                    at = bisect.bisect_left(times, when)
                    if at < len(times) and times[at] == when:
                        results.append(ReadingResult(index, "duplicate", "already stored for this time",
                                                     datastream_id=stream_id, time=when))
                        continue
                    jump = None
                    for neighbour in (known[at - 1] if at > 0 else None, known[at] if at < len(known) else None):
                        jump = jump or _multi_jump(components[stream_id], when, values, neighbour)
                    if jump:
                        results.append(ReadingResult(index, "rejected", jump, f"readings[{index}].result", stream_id,
                                                     when))
                        continue
                    known.insert(at, (when, values))
                    times.insert(at, when)
                    accepted.append((index, stream_id, when, values))
                    results.append(ReadingResult(index, "accepted", datastream_id=stream_id, time=when))
            if replacing is not None and not accepted:
                connection.rollback()  # the old reading stays when its replacement is refused
                return IngestOutcome(results=results)
            stored = 0
            # each reading's FeatureOfInterest: the one given, else its station's
            given = {i: f for i, f in enumerate(features or []) if f is not None}
            if any(index not in given for index, *_ in accepted):
                station = station_features(connection, {things[s] for i, s, _, _ in accepted if i not in given})
                given = {i: given.get(i, station.get(things[s])) for i, s, _, _ in accepted}
            if accepted:
                insert_of = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
                stored = len(connection.execute(
                    insert_of(_OBSERVATIONS).on_conflict_do_nothing(
                        index_elements=["multi_datastream_id", "phenomenon_time"]).returning(_OBSERVATIONS.c.id),
                    [{"multi_datastream_id": s, "phenomenon_time": t, "result_time": now, "results": v, "result": None,
                      "datastream_id": None, "feature_id": given.get(i)} for i, s, t, v in accepted]).all())
            if stored != len(accepted):
                connection.rollback()  # raced another batch for the same readings: judge again
                continue
            if replacing is not None:
                _keep_id(connection, replacing, _OBSERVATIONS.c.multi_datastream_id, accepted[0][1], accepted[0][2])
            connection.commit()
            return IngestOutcome(results=sorted(results, key=lambda r: r.index))
    raise IngestRace("multi datastream readings kept arriving for the same times; nothing was stored")


def _check_multi(index: int, raw: Any, components: dict[int, list[_Component]], now: datetime
                 ) -> tuple[int, datetime, list[float]] | ReadingResult:
    where = f"readings[{index}]"
    if not isinstance(raw, dict):
        return ReadingResult(index, "rejected", "a reading is an object with time and result", where)
    ref = raw.get("multiDatastream", raw.get("MultiDatastream"))
    if isinstance(ref, dict):
        ref = ref.get("@iot.id")
    if ref is None:
        if len(components) != 1:
            return ReadingResult(index, "rejected", f"name the MultiDatastream: one of {sorted(components)}",
                                 f"{where}.MultiDatastream")
        ref = next(iter(components))
    parts = components.get(ref) if isinstance(ref, int) and not isinstance(ref, bool) else None
    if parts is None:
        return ReadingResult(index, "rejected", f"not a MultiDatastream of this sensor; use one of {sorted(components)}",
                             f"{where}.MultiDatastream")
    when = _parse_time(raw.get("time", raw.get("phenomenonTime")))
    if when is None:
        return ReadingResult(index, "rejected", "time must be an ISO 8601 date-time with a zone, "
                                                "e.g. 2026-11-25T21:00:00+07:00", f"{where}.time", ref)
    if when < EARLIEST:
        return ReadingResult(index, "rejected", "reading is from before year 2 (check the sensor's clock)",
                             f"{where}.time", ref)
    if when > now + FUTURE_SKEW:
        return ReadingResult(index, "rejected", "reading is from the future (check the sensor's clock)",
                             f"{where}.time", ref, _in_utc(when))
    when = when.astimezone(UTC)
    values = raw.get("result", raw.get("values"))
    if not isinstance(values, list) or len(values) != len(parts):
        return ReadingResult(index, "rejected", f"result must be a list of {len(parts)} values, one per component",
                             f"{where}.result", ref, when)
    checked = []
    for position, (value, part) in enumerate(zip(values, parts, strict=True)):
        field = f"{where}.result[{position}]"
        if isinstance(value, bool) or not isinstance(value, int | float) or not _finite(value):
            return ReadingResult(index, "rejected", "each value must be a finite number", field, ref, when)
        value = float(value)
        if value in SENTINELS:
            return ReadingResult(index, "rejected", f"{value:g} is a sensor's 'no data' sentinel, not a reading",
                                 field, ref, when)
        if not part.valid_min <= value <= part.valid_max:
            return ReadingResult(index, "rejected", f"{value:g} {part.unit_symbol} is outside this sensor's possible "
                                                    f"range {part.valid_min:g}..{part.valid_max:g}", field, ref, when)
        checked.append(value)
    return ref, when, checked


def _multi_jump(parts: list[_Component], when: datetime, values: list[float],
                neighbour: tuple[datetime, list[float]] | None) -> str | None:
    if neighbour is None or abs(neighbour[0] - when) > JUMP_WINDOW:
        return None
    hours = max(abs(neighbour[0] - when), MIN_JUMP_SPAN).total_seconds() / 3600
    for position, (part, value, other) in enumerate(zip(parts, values, neighbour[1], strict=False)):
        if abs(value - other) > part.max_change_per_hour * hours + 1e-9:
            return (f"impossible jump of component {position}: {value:g} {part.unit_symbol} against {other:g} at "
                    f"{neighbour[0].isoformat()} (at most {part.max_change_per_hour:g} {part.unit_symbol} an hour)")
    return None
