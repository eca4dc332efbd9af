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

from sqlalchemy import select, update
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


class SensorRefused(Exception):
    """The sensor is unknown or its key is wrong (always the same answer: no enumeration)."""


class IngestRace(RuntimeError):
    """Concurrent batches kept storing the same readings first (SQLite only: PostgreSQL locks the station)."""


def new_key() -> str:
    """A fresh random sensor key (shown once, stored hashed)."""
    return "fm_" + secrets.token_urlsafe(24)


def hash_key(key: str) -> str:
    """The stored form of a sensor key (keys are long random strings, so one SHA-256 is enough)."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
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


@dataclass(slots=True)
class _Candidate:
    index: int
    datastream: FloodDatastream
    time: datetime
    value: float
    stream_id: int = 0

    def __post_init__(self) -> None:
        self.stream_id = self.datastream.id


def rules_of(stream: FloodDatastream) -> AlertRules:
    """The alert rules a datastream carries."""
    return AlertRules(thresholds=(stream.level_1, stream.level_2, stream.level_3), hysteresis=stream.hysteresis,
                      hold_down=timedelta(minutes=stream.hold_down_minutes), rise_per_hour=stream.rise_per_hour,
                      rise_near=stream.rise_near)


def authenticate(db: Session, *, sensor_code: str, key: str | None) -> FloodSensor:
    """The sensor whose code and key match; SensorRefused otherwise."""
    sensor = db.scalars(select(FloodSensor).where(FloodSensor.code == sensor_code)).first()
    given = hash_key(key or "")
    expected = sensor.key_hash if sensor is not None else hash_key(secrets.token_hex(8))
    if not hmac.compare_digest(given, expected) or sensor is None or not key:
        raise SensorRefused()
    return sensor


def ingest(engine: Engine, *, sensor: FloodSensor, readings: list[Any], now: datetime | None = None) -> IngestOutcome:
    """Check, store and apply ``readings`` of ``sensor`` in one transaction."""
    now = now or datetime.now(UTC)
    for _ in range(STORE_ATTEMPTS):
        outcome = _ingest_once(engine, sensor, readings, now)
        if outcome is not None:
            return outcome
    raise IngestRace(f"sensor {sensor.code!r}: readings kept arriving for the same times; nothing was stored")


def _ingest_once(engine: Engine, sensor: FloodSensor, readings: list[Any], now: datetime) -> IngestOutcome | None:
    """One attempt; None (rolled back) when another request stored some of the same readings meanwhile."""
    with Session(engine, expire_on_commit=False) as db:
        streams = {s.id: s for s in db.scalars(select(FloodDatastream).where(FloodDatastream.sensor_id == sensor.id))}
        results: list[ReadingResult | None] = [None] * len(readings)
        candidates: list[_Candidate] = []
        for index, raw in enumerate(readings):
            checked = _check(index, raw, streams, now)
            if isinstance(checked, ReadingResult):
                results[index] = checked
            else:
                candidates.append(checked)
        # Lock the stations first: on PostgreSQL a second batch for the same station waits here, so the
        # series read below is the whole truth and the insert needs no per-row conflict report.
        touched = sorted({c.datastream.thing_id for c in candidates})
        things = {t.id: t for t in db.scalars(select(FloodThing).where(FloodThing.id.in_(touched))
                                               .order_by(FloodThing.id).with_for_update())} if touched else {}
        accepted: list[_Candidate] = []
        series: dict[int, list[tuple[datetime, float]]] = {}
        for stream_id in sorted({c.stream_id for c in candidates}):
            mine = sorted((c for c in candidates if c.stream_id == stream_id), key=lambda c: (c.time, c.index))
            series[stream_id] = _series_around(db, mine)
            accepted.extend(_against_series(mine, series[stream_id], results))
        if _store(db, accepted, now) != len(accepted):
            db.rollback()  # SQLite does not lock rows: judge the batch again against what is stored now
            return None
        for candidate in accepted:
            results[candidate.index] = ReadingResult(candidate.index, "accepted", datastream_id=candidate.stream_id,
                                                     time=candidate.time)
        updates = _apply_alerts(db, things, accepted, series, now)
        db.commit()
    return IngestOutcome(results=[r for r in results if r is not None], stations=updates)


def _check(index: int, raw: Any, streams: dict[int, FloodDatastream], now: datetime) -> _Candidate | ReadingResult:
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


def _series_around(db: Session, candidates: list[_Candidate]) -> list[tuple[datetime, float]]:
    """The stored readings of the candidates' datastream from a window before the first to after the last."""
    rows = db.execute(select(FloodObservation.phenomenon_time, FloodObservation.result).where(
        FloodObservation.datastream_id == candidates[0].datastream.id,
        FloodObservation.phenomenon_time >= candidates[0].time - JUMP_WINDOW,
        FloodObservation.phenomenon_time <= candidates[-1].time + JUMP_WINDOW,
    )).all()
    return sorted((t.astimezone(UTC), v) for t, v in rows)


def _against_series(candidates: list[_Candidate], series: list[tuple[datetime, float]],
                    results: list[ReadingResult | None]) -> list[_Candidate]:
    """Duplicates and impossible jumps, judged against the stored series and the batch's accepted readings;
    the accepted ones join ``series``."""
    stream = candidates[0].datastream
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


def _jump(stream: FloodDatastream, c: _Candidate, neighbour: tuple[datetime, float] | None) -> str | None:
    if neighbour is None or abs(neighbour[0] - c.time) > JUMP_WINDOW:
        return None
    span = max(abs(neighbour[0] - c.time), MIN_JUMP_SPAN)
    allowed = stream.max_change_per_hour * span.total_seconds() / 3600
    if abs(c.value - neighbour[1]) > allowed + 1e-9:
        return (f"impossible jump: {c.value:g} {stream.unit_symbol} against {neighbour[1]:g} at "
                f"{neighbour[0].isoformat()} (at most {stream.max_change_per_hour:g} {stream.unit_symbol} an hour)")
    return None


def _store(db: Session, accepted: list[_Candidate], now: datetime) -> int:
    """Insert the accepted readings, skipping any another request stored meanwhile; returns how many were stored."""
    if not accepted:
        return 0
    dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    table = FloodObservation.__table__  # type: ignore[attr-defined]
    # Only the ids come back: their number says whether every reading was stored, which is all we need.
    statement = dialect.insert(table).on_conflict_do_nothing(
        index_elements=["datastream_id", "phenomenon_time"]).returning(table.c.id)
    return len(db.execute(statement, [
        {"datastream_id": c.stream_id, "phenomenon_time": c.time, "result_time": now, "result": c.value}
        for c in accepted]).all())


def _apply_alerts(db: Session, things: dict[int, FloodThing], kept: list[_Candidate],
                  series: dict[int, list[tuple[datetime, float]]], now: datetime) -> list[StationUpdate]:
    """Move each touched station's level through the new readings, oldest first (``things`` are locked)."""
    updates = []
    by_thing: dict[int, list[_Candidate]] = {}
    for c in kept:
        if c.datastream.drives_alert:
            by_thing.setdefault(c.datastream.thing_id, []).append(c)
    for thing_id, readings in sorted(by_thing.items()):
        thing = things[thing_id]
        stream = readings[0].datastream
        rules = rules_of(stream)
        state = AlertState(level=thing.level, last_at=thing.last_observed_at, lowering_to=thing.lowering_to,
                           lowering_since=thing.lowering_since)
        change: LevelChange | None = None
        newest = max(readings, key=lambda r: r.time)
        band_of = {level: rules.quiet_band(level) for level in range(4)}
        for c in sorted(readings, key=lambda r: r.time):
            band = band_of[state.level]
            if state.lowering_since is None and band is not None and band[0] <= c.value < band[1]:
                # most readings: nothing can move, so the alert step is skipped (only the time advances)
                if state.last_at is None or c.time > state.last_at:
                    state = replace(state, last_at=c.time)
                continue
            previous = _rise_base(series[stream.id], c.time)
            state, moved = step(rules, state, value=c.value, at=c.time, previous=previous)
            if moved is not None:
                db.add(FloodLevelChange(thing_id=thing_id, at=moved.at, from_level=moved.from_level,
                                        to_level=moved.to_level, reason=moved.reason, value=moved.value))
                change = moved if change is None else LevelChange(change.from_level, moved.to_level, moved.reason,
                                                                  moved.value, moved.at)
        came_back = False
        if thing.last_observed_at is None or newest.time > thing.last_observed_at:
            thing.last_value, thing.last_observed_at = newest.value, newest.time
            if thing.stale:
                came_back = True
                db.add(FloodLevelChange(thing_id=thing_id, at=now, from_level=thing.level, to_level=state.level,
                                        reason="fresh", value=newest.value))
            thing.stale = False
        if change is not None and change.from_level == change.to_level:
            change = None  # up and back down within one batch
        if state.level != thing.level:
            thing.level_since = state.last_at
        thing.level, thing.lowering_to, thing.lowering_since = state.level, state.lowering_to, state.lowering_since
        db.add(thing)
        updates.append(StationUpdate(thing_id=thing_id, change=change, came_back=came_back))
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
