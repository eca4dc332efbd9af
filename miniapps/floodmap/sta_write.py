"""SensorThings Create-Update-Delete: POST to a collection, PATCH (JSON merge, or JSON Patch as FROST's
client sends) and DELETE of an entity.

Who writes: operators (``floodmap.sensorthings.write``) write every set; a keyed sensor (HTTP Basic with
its code and key, or ``X-Sensor-Key``) only creates Observations of its own (Multi)Datastreams. Every
Observation goes through the ingest rules (``ingest.ingest`` / ``ingest.ingest_multi``): the same time,
range, sentinel, duplicate and jump checks, the same alert step, in one transaction; a PATCH of an
Observation is judged the same way and replaces the reading only when accepted.

Linking a Thing to a Location (a new Thing's Locations, a Location's Things, a Thing's Locations, a
HistoricalLocation newer than the station's latest) stands the station there: the Location replaces its
current one and a HistoricalLocation records it. An Observation without a FeatureOfInterest gets the one
made from its station's Location (``service.station_features``). Deletes cascade as the standard says
(a Thing: its Datastreams and their readings, its HistoricalLocations; its Locations stay; a Location:
its HistoricalLocations), except that an entity readings still depend on (a Sensor, an ObservedProperty,
a FeatureOfInterest) is refused with 409 rather than taking the readings with it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jsonpatch
from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from miniapps.floodmap import ingest, sensorthings, sta_paths
from miniapps.floodmap.models import (
    FloodDatastream,
    FloodFeature,
    FloodHistoricalLocation,
    FloodLocation,
    FloodMultiComponent,
    FloodMultiDatastream,
    FloodObservation,
    FloodObservedProperty,
    FloodSensor,
    FloodThing,
)
from miniapps.floodmap.service import place_station
from miniapps.floodmap.sta_validate import (
    _ALLOWED,
    _bad,
    _feature_values,
    _multi_values,
    _one_location,
    _only,
    _reading,
    _ref,
    _values,
)
from plugins import DomainError

WRITE_PERMISSION = "floodmap.sensorthings.write"
# POST Parent(id)/Nav: the property of the new entity that names its parent, and whether it is a list
PARENT_LINKS = {
    ("Datastreams", "Observations"): ("Datastream", False), ("MultiDatastreams", "Observations"): ("MultiDatastream", False),
    ("Things", "Locations"): ("Things", True), ("Things", "Datastreams"): ("Thing", False),
    ("Things", "HistoricalLocations"): ("Thing", False), ("Locations", "HistoricalLocations"): ("Locations", True),
    ("Things", "MultiDatastreams"): ("Thing", False), ("Sensors", "Datastreams"): ("Sensor", False),
    ("Sensors", "MultiDatastreams"): ("Sensor", False), ("ObservedProperties", "Datastreams"): ("ObservedProperty", False),
}


@dataclass
class Writer:
    """Who writes: an operator (``sensor`` None) or a keyed sensor."""

    sensor: FloodSensor | None = None


@dataclass
class Written:
    """What a write did: the entity (set and id), headers to add, the stations whose state moved."""

    entity: str
    id: int
    headers: dict[str, str] = field(default_factory=dict)
    stations: list[Any] = field(default_factory=list)


class Transaction:
    """One connection in one open transaction: the writes of a batch's atomicity group go through it, so
    the caller commits or rolls back the group as a whole. Each write (and each ingest attempt) runs in a
    savepoint of its own, so the ingest's own commit and rollback stay inside the group."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    @contextmanager
    def connect(self) -> Iterator[_Savepoint]:
        """What ``engine.connect()`` gives the ingest: a savepoint its commit releases."""
        savepoint = self.connection.begin_nested()
        try:
            yield _Savepoint(self.connection, savepoint)
        finally:
            if savepoint.is_active:
                savepoint.rollback()


class _Savepoint:
    """A connection whose commit and rollback end a savepoint, not the group's transaction."""

    def __init__(self, connection: Connection, savepoint: Any) -> None:
        self._connection, self._savepoint = connection, savepoint

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    def commit(self) -> None:
        """Release the savepoint; the group's transaction commits later, or not at all."""
        self._savepoint.commit()

    def rollback(self) -> None:
        """Undo what was written since the savepoint."""
        self._savepoint.rollback()


Bind = Engine | Transaction


def _session(bind: Bind) -> Session:
    """A session on its own transaction, or inside the group's (its commit then releases a savepoint)."""
    if isinstance(bind, Transaction):
        return Session(bind=bind.connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    return Session(bind, expire_on_commit=False)


@contextmanager
def reading(bind: Bind) -> Iterator[Connection]:
    """A connection to read through: the group's own (it sees the group's writes), or a new one."""
    if isinstance(bind, Transaction):
        yield bind.connection
        return
    with bind.connect() as connection:
        yield connection


def sensor_by_key(db: Session, *, code: str | None, key: str | None) -> FloodSensor | None:
    """The sensor a key belongs to (and whose code matches, when given); None when none does."""
    if not key:
        return None
    if code is not None:
        try:
            return ingest.authenticate(db, sensor_code=code, key=key)
        except ingest.SensorRefused:
            return None
    # keys are long and random: the stored hash finds the one sensor, and leaks nothing of the key
    return db.scalars(select(FloodSensor).where(FloodSensor.key_hash == ingest.hash_key(key))).first()


def _collection(path: str) -> tuple[str, tuple[str, int] | None]:
    """``Set`` or ``Parent(id)/Set``: the set to create in and the parent it is created under."""
    segments = path.split("/")
    name, ident = sta_paths._segment(segments[0])
    if len(segments) == 1 and ident is None:
        return name, None
    if len(segments) == 2 and ident is not None and (name, segments[1]) in PARENT_LINKS:
        return segments[1], (name, ident)
    raise DomainError(405, f"POST creates in a collection (Things, Datastreams(1)/Observations, ...), not {path!r}",
                      field="path")


def _entity(path: str) -> tuple[str, int]:
    name, ident = sta_paths._segment(path)
    if ident is None or "/" in path or name not in sensorthings.ENTITY_SETS:
        raise DomainError(405, f"PATCH and DELETE name one entity, e.g. Things(1), not {path!r}", field="path")
    return name, ident


_MODELS = {"Things": FloodThing, "Locations": FloodLocation, "HistoricalLocations": FloodHistoricalLocation,
           "Sensors": FloodSensor, "ObservedProperties": FloodObservedProperty, "Datastreams": FloodDatastream,
           "MultiDatastreams": FloodMultiDatastream, "Observations": FloodObservation,
           "FeaturesOfInterest": FloodFeature}


def _insert(db: Session, name: str, body: dict[str, Any], written: Written) -> int:
    """Add one entity (and a Thing's inline Locations, a Location's Thing link); returns its id."""
    body = _only(body, _ALLOWED[name], name[:-1])
    if name == "Datastreams":
        body = _inline_links(db, body, written)
    if name == "MultiDatastreams":
        values, components = _multi_values(db, body, partial=False)
        multi = FloodMultiDatastream(**values)
        db.add(multi)
        db.flush()
        for component in components or []:
            db.add(FloodMultiComponent(multi_datastream_id=multi.id, **component))
        return multi.id  # type: ignore[return-value]
    values = _values(db, name, body, partial=False)
    thing_id = _things_of_location(db, body) if name == "Locations" else None
    if name == "Sensors":
        key = ingest.new_key()
        values["key_hash"] = ingest.hash_key(key)
        written.headers["X-Sensor-Key"] = key  # shown once; only its hash is kept
    obj = _MODELS[name](**values)
    db.add(obj)
    db.flush()
    if thing_id is not None:
        place_station(db, thing_id, obj.id)  # a Location linked to a Thing: the station stands there now
    if name == "HistoricalLocations":
        _move_if_latest(db, obj)
    if name == "Things":
        places = body.get("Locations") or []
        if not isinstance(places, list) or len(places) > 1:
            raise _bad("a station stands at one place: Locations lists one Location", "Locations")
        for place in places:
            if isinstance(place, dict) and "@iot.id" in place:
                place_station(db, obj.id, _one_location(db, [place]))
            else:
                _insert(db, "Locations", {**place, "Things": [{"@iot.id": obj.id}]} if isinstance(place, dict)
                        else place, written)
        streams = body.get("Datastreams") or []
        if not isinstance(streams, list) or not all(isinstance(d, dict) and "@iot.id" not in d for d in streams):
            raise _bad("a new Thing's Datastreams are new datastreams (objects without @iot.id)", "Datastreams")
        for stream in streams:
            _insert(db, "Datastreams", {**stream, "Thing": {"@iot.id": obj.id}}, written)
    return obj.id  # type: ignore[attr-defined]


def _things_of_location(db: Session, body: dict[str, Any]) -> int | None:
    """The one station a Location's ``Things`` links (None when it names none)."""
    things = body.get("Things")
    if things is None or things == []:
        return None
    if not isinstance(things, list) or len(things) != 1:
        raise _bad("a Location stands for one station: Things is [{\"@iot.id\": <id>}]", "Things")
    thing_id = _ref(things[0], "Things[0]")
    if db.get(FloodThing, thing_id) is None:
        raise _bad(f"no Thing {thing_id}", "Things[0]")
    return thing_id


def _move_if_latest(db: Session, history: FloodHistoricalLocation) -> None:
    """A HistoricalLocation no older than the station's others says where it stands now: its Location
    becomes the station's current one."""
    later = db.scalar(select(func.count()).select_from(FloodHistoricalLocation).where(
        FloodHistoricalLocation.thing_id == history.thing_id, FloodHistoricalLocation.time > history.time))
    if not later:
        db.execute(update(FloodLocation).where(FloodLocation.thing_id == history.thing_id,
                                               FloodLocation.id != history.location_id).values(thing_id=None))
        db.execute(update(FloodLocation).where(FloodLocation.id == history.location_id)
                   .values(thing_id=history.thing_id))


def _inline_links(db: Session, body: dict[str, Any], written: Written) -> dict[str, Any]:
    """A Datastream's Sensor or ObservedProperty given whole (deep insert) is created first and linked."""
    body = dict(body)
    for link, entity in (("Sensor", "Sensors"), ("ObservedProperty", "ObservedProperties")):
        value = body.get(link)
        if isinstance(value, dict) and "@iot.id" not in value:
            if entity == "Sensors" and "X-Sensor-Key" in written.headers:
                raise _bad("one new Sensor a request (its key comes back in one header)", link)
            body[link] = {"@iot.id": _insert(db, entity, value, written)}
    return body


# --- Observations through ingest ----------------------------------------------------------------


_FIELDS = {"time": "phenomenonTime", "value": "result", "result": "result", "datastream": "Datastream",
           "MultiDatastream": "MultiDatastream"}


def _judged(outcome: ingest.IngestOutcome) -> None:
    """400 (rejected) or 409 (duplicate) for a reading the ingest rules refused."""
    [result] = outcome.results
    if result.status == "duplicate":
        raise DomainError(409, "an Observation of this stream is already stored for that phenomenonTime",
                          field="body.phenomenonTime")
    if result.status == "rejected":
        where = (result.field or "").split(".", 1)[-1] if result.field and "." in result.field else ""
        name = _FIELDS.get(where.split("[")[0], where)
        raise _bad(result.reason or "refused by the ingest rules", name)


def _stream_owner(db: Session, kind: str, stream: int, writer: Writer) -> FloodSensor:
    model = FloodDatastream if kind == "Datastream" else FloodMultiDatastream
    row = db.get(model, stream)
    if row is None:
        raise _bad(f"no {kind} {stream}", kind)
    if writer.sensor is not None and row.sensor_id != writer.sensor.id:
        raise DomainError(403, f"{kind} {stream} is not one of this sensor's", field=f"body.{kind}")
    return db.get(FloodSensor, row.sensor_id)  # type: ignore[return-value]


def _ingest(bind: Bind, kind: str, sensor: FloodSensor, readings: list[Any], now: datetime | None,
            replacing: int | None = None, features: list[int | None] | None = None) -> ingest.IngestOutcome:
    """Readings of a Datastream or a MultiDatastream through the ingest rules, on ``bind``."""
    if kind == "Datastream":
        return ingest.ingest(bind, sensor=sensor, readings=readings, now=now, replacing=replacing,  # type: ignore[arg-type]
                             features=features)
    return ingest.ingest_multi(bind, sensor_id=sensor.id, readings=readings, now=now,  # type: ignore[arg-type]
                               replacing=replacing, features=features)


def _feature_of(bind: Bind, given: int | dict[str, Any] | None, kind: str, stream: int) -> tuple[int | None, bool]:
    """The FeatureOfInterest an Observation names: an existing one, a new one created now (True), or None
    for its station's, which must then have a Location to make it from."""
    with _session(bind) as db:
        if isinstance(given, int):
            if db.get(FloodFeature, given) is None:
                raise _bad(f"no FeatureOfInterest {given}", "FeatureOfInterest")
            return given, False
        if isinstance(given, dict):
            values = _feature_values(_only(given, _ALLOWED["FeaturesOfInterest"], "FeatureOfInterest"), partial=False)
            feature = FloodFeature(**values)
            db.add(feature)
            db.commit()
            return feature.id, True
        model = FloodDatastream if kind == "Datastream" else FloodMultiDatastream
        placed = db.scalar(select(func.count()).select_from(FloodLocation).join(
            model, model.thing_id == FloodLocation.thing_id).where(model.id == stream))
        if not placed:
            raise _bad("the Observation needs a FeatureOfInterest: give one, or give its Thing a Location to make "
                       "it from", "FeatureOfInterest")
        return None, False


def _forget_feature(bind: Bind, feature: int) -> None:
    """Remove a FeatureOfInterest made for an Observation the ingest refused (the request stores nothing)."""
    with _session(bind) as db:
        db.execute(delete(FloodFeature).where(FloodFeature.id == feature))
        db.commit()


def _create_observation(bind: Bind, body: Any, writer: Writer, now: datetime | None) -> Written:
    kind, stream, reading, given = _reading(body)
    with _session(bind) as db:
        sensor = _stream_owner(db, kind, stream, writer)
    feature, made = _feature_of(bind, given, kind, stream)
    outcome = _ingest(bind, kind, sensor, [reading], now, features=[feature])
    if made and outcome.results[0].status != "accepted":
        _forget_feature(bind, feature)  # type: ignore[arg-type]
    _judged(outcome)
    [result] = outcome.results
    column = FloodObservation.datastream_id if kind == "Datastream" else FloodObservation.multi_datastream_id
    with _session(bind) as db:
        ident = db.scalar(select(FloodObservation.id).where(column == stream,
                                                            FloodObservation.phenomenon_time == result.time))
    return Written("Observations", ident, stations=outcome.stations)


def _patch_observation(bind: Bind, ident: int, current: dict[str, Any], changes: dict[str, Any],
                       now: datetime | None) -> Written:
    with _session(bind) as db:
        row = db.get(FloodObservation, ident)
        if row is None:
            raise DomainError(404, f"no Observations({ident})", field="path.entity_id")
        kind = "Datastream" if row.datastream_id is not None else "MultiDatastream"
        stream = row.datastream_id if kind == "Datastream" else row.multi_datastream_id
        sensor = _stream_owner(db, kind, stream, Writer())  # type: ignore[arg-type]
        kept_feature = row.feature_id
    merged = {"phenomenonTime": current["phenomenonTime"], "result": current["result"], **changes,
              kind: {"@iot.id": stream}}
    if kind in changes and changes[kind] != {"@iot.id": stream}:
        raise _bad("an Observation stays in its stream; create one in the other", kind)
    _, _, reading, given = _reading(merged)
    feature, made = _feature_of(bind, given, kind, stream) if given is not None else (kept_feature, False)
    outcome = _ingest(bind, kind, sensor, [reading], now, replacing=ident, features=[feature])
    if made and outcome.results[0].status != "accepted":
        _forget_feature(bind, feature)  # type: ignore[arg-type]
    _judged(outcome)
    return Written("Observations", ident, stations=outcome.stations)


# --- The verbs ----------------------------------------------------------------------------------


def create(bind: Bind, path: str, body: Any, writer: Writer, *, now: datetime | None = None) -> Written:
    """POST ``body`` to the collection ``path``; the new entity's set and id."""
    name, parent = _collection(path)
    if name not in sensorthings.ENTITY_SETS:
        raise DomainError(404, f"no entity set {name!r}", field="path")
    if writer.sensor is not None and name != "Observations":
        raise DomainError(403, "a sensor's key creates Observations only", field="header.authorization")
    if parent is not None:
        link, many = PARENT_LINKS[(parent[0], name)]
        if not isinstance(body, dict):
            raise _bad(f"a {name[:-1]} is a JSON object")
        body = {**body, link: [{"@iot.id": parent[1]}] if many else {"@iot.id": parent[1]}}
    if name == "Observations":
        written = _create_observation(bind, body, writer, now)
        return written
    written = Written(name, 0)
    with _session(bind) as db:
        try:
            written.id = _insert(db, name, body, written)
            db.commit()
        except IntegrityError:
            db.rollback()
            raise _conflict(name) from None
    return written


def _conflict(name: str) -> DomainError:
    unique = {"Things": "properties.code", "Sensors": "properties.code", "ObservedProperties": "name"}.get(name, "")
    return DomainError(409, f"another {name[:-1]} has this {unique or 'key'}" if unique else
                       f"the {name[:-1]} is still referenced", field=f"body.{unique}" if unique else "path")


def patch(bind: Bind, path: str, body: Any, *, json_patch: bool, current: dict[str, Any],
          now: datetime | None = None, replace: bool = False) -> Written:
    """PATCH the entity ``path`` with a JSON merge of ``body``, or the JSON Patch ``body`` applied to
    ``current`` (the entity as read); ``replace`` (PUT): ``body`` is the whole entity, required properties
    and all, and what it leaves out goes back to its default."""
    name, ident = _entity(path)
    if json_patch:
        if not isinstance(body, list):
            raise _bad("a JSON Patch is a list of operations")
        try:
            patched = jsonpatch.apply_patch(copy.deepcopy(current), body)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, ValueError) as exc:
            raise _bad(f"the JSON Patch does not apply: {exc}") from None
        changes = {k: v for k, v in patched.items() if current.get(k) != v}
        removed = sorted(set(current) - set(patched))
        if removed:
            raise _bad(f"{removed[0]} cannot be removed", removed[0])
    else:
        if not isinstance(body, dict):
            raise _bad(f"a {name[:-1]} is a JSON object")
        changes = body
    if name == "Observations":
        written = _patch_observation(bind, ident, current, _only(changes, _ALLOWED[name], "Observation"), now)
        return written
    changes = _only(changes, _ALLOWED[name], name[:-1])
    with _session(bind) as db:
        model = _MODELS[name]
        if db.get(model, ident) is None:
            raise DomainError(404, f"no {name}({ident})", field="path.entity_id")
        moves: tuple[int, int] | None = None  # (station, Location): a link that stands the station there
        if name == "MultiDatastreams":
            values, _ = _multi_values(db, changes, partial=True)
        else:
            if name == "Things" and "Locations" in changes:
                moves = (ident, _one_location(db, changes["Locations"]))
            if name == "Locations" and changes.get("Things"):
                moves = (_things_of_location(db, changes), ident)  # type: ignore[assignment]
            values = _values(db, name, {k: v for k, v in changes.items() if (name, k) not in _LINKS},
                             partial=not replace)
        if name == "Datastreams":
            row = db.get(FloodDatastream, ident)
            low, high = values.get("valid_min", row.valid_min), values.get("valid_max", row.valid_max)
            if low >= high:
                raise _bad("properties.valid_min must be below valid_max", "properties.valid_min")
        if values or moves:
            try:
                if values:
                    db.execute(update(model).where(model.id == ident).values(**values))
                if moves:
                    place_station(db, *moves)
                db.commit()
            except IntegrityError:
                db.rollback()
                raise _conflict(name) from None
    return Written(name, ident)


_LINKS = {("Things", "Locations"), ("Locations", "Things")}  # links a PATCH follows rather than writes as columns


def remove(bind: Bind, path: str) -> None:
    """DELETE the entity ``path``, with what the standard deletes with it: a station with its datastreams,
    readings and HistoricalLocations (its Locations stay, as former places), a Location with its
    HistoricalLocations; a FeatureOfInterest, Sensor or ObservedProperty readings depend on is a 409."""
    name, ident = _entity(path)
    model = _MODELS[name]
    with _session(bind) as db:
        if name == "FeaturesOfInterest" and db.scalar(
                select(FloodObservation.id).where(FloodObservation.feature_id == ident).limit(1)) is not None:
            raise DomainError(409, f"FeaturesOfInterest({ident}) is the feature of stored Observations; delete them "
                                   "first (readings are not deleted as a side effect)", field="path")
        if name == "Things":
            # the standard keeps a deleted Thing's Locations: they stay as places no station stands at
            db.execute(update(FloodLocation).where(FloodLocation.thing_id == ident).values(thing_id=None))
        if name == "Sensors" and (
                db.scalar(select(func.count()).select_from(FloodDatastream).where(FloodDatastream.sensor_id == ident))
                or db.scalar(select(func.count()).select_from(FloodMultiDatastream)
                             .where(FloodMultiDatastream.sensor_id == ident))):
            raise DomainError(409, f"Sensors({ident}) still reads Datastreams; delete or move them first", field="path")
        if name == "ObservedProperties" and (
                db.scalar(select(func.count()).select_from(FloodDatastream)
                          .where(FloodDatastream.observed_property_id == ident))
                or db.scalar(select(func.count()).select_from(FloodMultiComponent)
                             .where(FloodMultiComponent.observed_property_id == ident))):
            raise DomainError(409, f"ObservedProperties({ident}) is still measured by Datastreams", field="path")
        gone = db.execute(delete(model).where(model.id == ident)).rowcount
        if not gone:
            raise DomainError(404, f"no {name}({ident})", field="path.entity_id")
        db.commit()


# --- One request, as the routes and batches send it ---------------------------------------------


@dataclass
class Reply:
    """What one write answers: status, the entity as read (a create), headers, stations whose state moved."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    stations: list[Any] = field(default_factory=list)


def apply(bind: Bind, method: str, path: str, body: Any, writer: Writer, links: sensorthings.Links, *,
          json_patch: bool = False) -> Reply:
    """One POST, PATCH, PUT or DELETE of ``path`` by ``writer`` on ``bind``; a create answers the new
    entity as a GET reads it, with its address in Location."""
    if method != "POST" and writer.sensor is not None:
        raise DomainError(403, "a sensor's key creates Observations only", field="header.authorization")
    if method == "POST":
        written = create(bind, path, body, writer)
        with reading(bind) as db:
            entity = sta_paths.resolve(db, f"{written.entity}({written.id})", {}, links).json
        return Reply(201, entity, {"Location": entity["@iot.selfLink"], **written.headers}, written.stations)
    if method == "DELETE":
        remove(bind, path)
        return Reply(200)
    if method not in ("PATCH", "PUT"):
        raise DomainError(405, "a write is POST, PATCH, PUT or DELETE", field="method")
    with reading(bind) as db:
        current = sta_paths.resolve(db, path, {}, links).json or {}
    written = patch(bind, path, body, json_patch=json_patch, current=current, replace=method == "PUT")
    return Reply(200, stations=written.stations)


# --- CreateObservations (the DataArray extension's bulk create) -----------------------------------

_ARRAY_COMPONENTS = {"phenomenonTime", "result", "resultTime", "FeatureOfInterest/id"}


def create_observations(bind: Bind, body: Any, writer: Writer, links: sensorthings.Links,
                        *, now: datetime | None = None) -> tuple[list[str], list[Any]]:
    """``POST CreateObservations``: groups of ``components`` and ``dataArray`` rows per (Multi)Datastream,
    each group judged as one ingest batch. Answers one entry per row, in order: the new Observation's
    selfLink, or ``error`` (with the ingest's reason in the problem of a fully refused request)."""
    if not isinstance(body, list) or not body:
        raise _bad("CreateObservations takes a list of {Datastream, components, dataArray} groups")
    answers: list[str] = []
    stations: list[Any] = []
    total = sum(len(g.get("dataArray") or []) for g in body if isinstance(g, dict))
    if total > ingest.MAX_BATCH:
        raise DomainError(413, f"at most {ingest.MAX_BATCH} rows a request", field="body")
    for position, group in enumerate(body):
        where = f"[{position}]"
        if not isinstance(group, dict) or set(group) - {"Datastream", "MultiDatastream", "components", "dataArray",
                                                        "dataArray@iot.count"}:
            raise _bad("a group holds Datastream (or MultiDatastream), components and dataArray", where)
        kind = "Datastream" if "Datastream" in group else "MultiDatastream"
        stream = _ref(group.get(kind), f"{where}.{kind}")
        components = group.get("components")
        if not isinstance(components, list) or set(components) - _ARRAY_COMPONENTS or "result" not in components \
                or len(set(components)) != len(components):
            raise _bad(f"components name result and some of {', '.join(sorted(_ARRAY_COMPONENTS - {'result'}))}",
                       f"{where}.components")
        rows = group.get("dataArray")
        if not isinstance(rows, list):
            raise _bad("dataArray is a list of rows", f"{where}.dataArray")
        with _session(bind) as db:
            sensor = _stream_owner(db, kind, stream, writer)
            known: set[int] = set()
            if "FeatureOfInterest/id" in components:
                named = {r[components.index("FeatureOfInterest/id")] for r in rows
                         if isinstance(r, list) and len(r) == len(components)}
                wanted = [f for f in named if isinstance(f, int) and not isinstance(f, bool)]
                known = set(db.scalars(select(FloodFeature.id).where(FloodFeature.id.in_(wanted)))) if wanted else set()
        readings: list[Any] = []
        features: list[int | None] = []
        for row in rows:
            if not isinstance(row, list) or len(row) != len(components):
                readings.append(None)  # refused by ingest as not a reading, and answered "error"
                features.append(None)
                continue
            values = dict(zip(components, row, strict=True))
            feature = values.get("FeatureOfInterest/id")
            exists = isinstance(feature, int) and not isinstance(feature, bool) and feature in known
            features.append(feature if exists else None)
            if feature is not None and not exists:
                readings.append(None)  # a feature that does not exist: this row is an "error"
                continue
            readings.append({"time": values.get("phenomenonTime", datetime.now(UTC).isoformat()),
                             "value" if kind == "Datastream" else "result": values["result"],
                             "datastream" if kind == "Datastream" else "MultiDatastream": stream})
        if not readings:
            continue
        outcome = _ingest(bind, kind, sensor, readings, now, features=features)
        stations.extend(outcome.stations)
        column = FloodObservation.datastream_id if kind == "Datastream" else FloodObservation.multi_datastream_id
        accepted = {r.index: r.time for r in outcome.results if r.status == "accepted"}
        with _session(bind) as db:
            ids: dict[Any, int] = dict(db.execute(select(FloodObservation.phenomenon_time, FloodObservation.id).where(
                column == stream, FloodObservation.phenomenon_time.in_(list(accepted.values())))).all()) \
                if accepted else {}
        by_index = {r.index: r for r in outcome.results}
        for index in range(len(readings)):
            when = accepted.get(index)
            answers.append(f"{links.base}/Observations({ids[when]})" if when in ids else "error")
            if index in by_index and by_index[index].status != "accepted" and len(rows) == 1 and len(body) == 1:
                _judged(outcome)  # a single refused row: the reason as a problem, as POST Observations gives
    return answers, stations
