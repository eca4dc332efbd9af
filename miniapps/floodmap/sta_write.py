"""SensorThings Create-Update-Delete: POST to a collection, PATCH (JSON merge, or JSON Patch as FROST's
client sends) and DELETE of an entity.

Who writes: operators (``floodmap.sensorthings.write``) write every set; a keyed sensor (HTTP Basic with
its code and key, or ``X-Sensor-Key``) only creates Observations of its own (Multi)Datastreams. Every
Observation goes through the ingest rules (``ingest.ingest`` / ``ingest.ingest_multi``): the same time,
range, sentinel, duplicate and jump checks, the same alert step, in one transaction; a PATCH of an
Observation is judged the same way and replaces the reading only when accepted.

Not written: HistoricalLocations and FeaturesOfInterest, which are the stations' Locations read
three ways (a station never moves); create or change its Location instead.
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

from miniapps.floodmap import ingest, sensorthings
from miniapps.floodmap.models import (
    FloodDatastream,
    FloodLocation,
    FloodMultiComponent,
    FloodMultiDatastream,
    FloodObservation,
    FloodObservedProperty,
    FloodSensor,
    FloodThing,
    StationKind,
)
from plugins import DomainError, OrgUnit

WRITE_PERMISSION = "floodmap.sensorthings.write"
GEOJSON_TYPES = ("application/geo+json", "application/vnd.geo+json")
READ_ONLY = ("HistoricalLocations", "FeaturesOfInterest")
# POST Parent(id)/Nav: the property of the new entity that names its parent, and whether it is a list
PARENT_LINKS = {
    ("Datastreams", "Observations"): ("Datastream", False), ("MultiDatastreams", "Observations"): ("MultiDatastream", False),
    ("Things", "Locations"): ("Things", True), ("Things", "Datastreams"): ("Thing", False),
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


def _bad(detail: str, name: str = "", status: int = 400) -> DomainError:
    return DomainError(status, detail, field=f"body.{name}" if name else "body")


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
    name, ident = sensorthings._segment(segments[0])
    if len(segments) == 1 and ident is None:
        return name, None
    if len(segments) == 2 and ident is not None and (name, segments[1]) in PARENT_LINKS:
        return segments[1], (name, ident)
    raise DomainError(405, f"POST creates in a collection (Things, Datastreams(1)/Observations, ...), not {path!r}",
                      field="path")


def _entity(path: str) -> tuple[str, int]:
    name, ident = sensorthings._segment(path)
    if ident is None or "/" in path or name not in sensorthings.ENTITY_SETS:
        raise DomainError(405, f"PATCH and DELETE name one entity, e.g. Things(1), not {path!r}", field="path")
    if name in READ_ONLY:
        raise DomainError(405, f"{name} are the stations' Locations read another way; change the Location instead",
                          field="path")
    return name, ident


def _ref(value: Any, name: str) -> int:
    """The id of ``{"@iot.id": n}``."""
    ident = value.get("@iot.id") if isinstance(value, dict) else None
    if not isinstance(ident, int) or isinstance(ident, bool):
        raise _bad(f"{name} links an existing entity as {{\"@iot.id\": <id>}}", name)
    return ident


def _text(body: dict[str, Any], name: str, *, most: int, required: bool = False, default: str | None = None,
          within: str = "") -> Any:
    value = body.get(name, default)
    label = f"{within}.{name}" if within else name
    if value is None:
        if required:
            raise _bad(f"{label} is required", label)
        return None
    if not isinstance(value, str) or len(value) > most:
        raise _bad(f"{label} is text of at most {most} characters", label)
    return value


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not ingest._finite(value):
        raise _bad(f"{name} is a finite number", name)
    return float(value)


def _only(body: Any, allowed: set[str], what: str) -> dict[str, Any]:
    """The body as an object with no property beyond ``allowed`` (links and ids the server gave are ignored)."""
    if not isinstance(body, dict):
        raise _bad(f"a {what} is a JSON object")
    body = {k: v for k, v in body.items() if not k.startswith("@iot.") and not k.endswith("@iot.navigationLink")
            and not k.endswith("@iot.count")}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise _bad(f"{what} has no writable {unknown[0]!r}; write {', '.join(sorted(allowed))}", unknown[0])
    return body


def _point(value: Any, name: str) -> tuple[float, float]:
    """(lon, lat) of a GeoJSON Point, or of a Feature whose geometry is one."""
    if isinstance(value, dict) and value.get("type") == "Feature":
        value = value.get("geometry")
    coordinates = value.get("coordinates") if isinstance(value, dict) and value.get("type") == "Point" else None
    if not isinstance(coordinates, list) or len(coordinates) not in (2, 3):
        raise _bad(f"{name} is a GeoJSON Point, e.g. {{\"type\": \"Point\", \"coordinates\": [107.58, 16.46]}}", name)
    lon, lat = _number(coordinates[0], name), _number(coordinates[1], name)
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise _bad(f"{name}: longitude -180..180 then latitude -90..90", name)
    return lon, lat


# --- Entities other than Observations ------------------------------------------------------------


def _named(body: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """The name and description every entity has: both on create, those given on update."""
    values: dict[str, Any] = {}
    if "name" in body or not partial:
        values["name"] = _text(body, "name", most=200, required=True)
    if "description" in body or not partial:
        values["description"] = _text(body, "description", most=1000, default="")
    return values


def _thing_values(db: Session, body: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    values = _named(body, partial=partial)
    props = body.get("properties", {} if not partial else None)
    if props is not None:
        if not isinstance(props, dict):
            raise _bad("properties is an object", "properties")
        known = {"code", "kind", "unit_id", "warn_units", "synthetic", "camera_url"}
        unknown = sorted(set(props) - known - {"alert_level", "stale", "camera_image_at"})
        if unknown:
            raise _bad(f"properties.{unknown[0]} is not a property of a station; write {', '.join(sorted(known))}",
                       f"properties.{unknown[0]}")
        if "code" in props or not partial:
            values["code"] = _text(props, "code", most=80, required=True, within="properties")
        if "kind" in props or not partial:
            kind = props.get("kind")
            if kind not in {k.value for k in StationKind}:
                raise _bad(f"properties.kind is one of {', '.join(k.value for k in StationKind)}", "properties.kind")
            values["kind"] = StationKind(kind)
        if "unit_id" in props or not partial:
            unit = props.get("unit_id")
            if not isinstance(unit, str) or db.get(OrgUnit, unit) is None:
                raise _bad("properties.unit_id names a ward or commune, e.g. kim-long", "properties.unit_id")
            values["unit_id"] = unit
        if "warn_units" in props:
            units = props["warn_units"]
            if not isinstance(units, list) or not all(isinstance(u, str) for u in units) or len(units) > 100 or \
                    len(db.scalars(select(OrgUnit.id).where(OrgUnit.id.in_(units))).all()) != len(set(units)):
                raise _bad("properties.warn_units lists wards and communes", "properties.warn_units")
            values["warn_units"] = list(dict.fromkeys(units))
        elif not partial:
            values["warn_units"] = [values["unit_id"]]
        if "synthetic" in props:
            if not isinstance(props["synthetic"], bool):
                raise _bad("properties.synthetic is true or false", "properties.synthetic")
            values["synthetic"] = props["synthetic"]
        if "camera_url" in props:
            values["camera_url"] = _text(props, "camera_url", most=500, within="properties")
    return values


def _location_values(body: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    values = _named(body, partial=partial)
    if ("encodingType" in body or not partial) and body.get("encodingType") not in GEOJSON_TYPES:
        raise _bad(f"encodingType is {GEOJSON_TYPES[0]}", "encodingType")
    if "location" in body or not partial:
        values["lon"], values["lat"] = _point(body.get("location"), "location")
    return values


def _sensor_values(body: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    values = _named(body, partial=partial)
    if "encodingType" in body or not partial:
        values["encoding_type"] = _text(body, "encodingType", most=100, required=True)
    if "metadata" in body or not partial:
        metadata = body.get("metadata", "")
        values["sensor_metadata"] = _text({"metadata": metadata if isinstance(metadata, str) else None}, "metadata",
                                          most=1000, required=True)
    props = body.get("properties")
    if props is not None or not partial:
        if not isinstance(props, dict) or set(props) - {"code"}:
            raise _bad("properties holds the sensor's code, the name it logs in with", "properties")
        values["code"] = _text(props, "code", most=80, required=True, within="properties")
    return values


def _property_values(body: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, most, required in (("name", 200, True), ("definition", 500, True), ("description", 1000, False)):
        if name in body or not partial:
            values[name] = _text(body, name, most=most, required=required, default=None if required else "")
    return values


def _unit(value: Any, name: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _bad(f"{name} is an object with name, symbol and definition", name)
    return {"unit_name": _text(value, "name", most=60, required=True, within=name),
            "unit_symbol": _text(value, "symbol", most=20, required=True, within=name),
            "unit_definition": _text(value, "definition", most=300, default="", within=name)}


_STREAM_PROPERTIES = {"valid_min", "valid_max", "max_change_per_hour", "alarm_levels", "drives_alert",
                      "stale_after_minutes", "hysteresis", "hold_down_minutes"}


def _datastream_values(db: Session, body: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    values = _named(body, partial=partial)
    if ("observationType" in body or not partial) and body.get("observationType") != sensorthings.MEASUREMENT:
        raise _bad(f"observationType is {sensorthings.MEASUREMENT}: a Datastream holds numbers", "observationType")
    if "unitOfMeasurement" in body or not partial:
        values.update(_unit(body.get("unitOfMeasurement"), "unitOfMeasurement"))
    for link, model, column in (("Thing", FloodThing, "thing_id"), ("Sensor", FloodSensor, "sensor_id"),
                                ("ObservedProperty", FloodObservedProperty, "observed_property_id")):
        if link in body or not partial:
            ident = _ref(body.get(link), link)
            if db.get(model, ident) is None:
                raise _bad(f"no {link} {ident}", link)
            values[column] = ident
    props = body.get("properties", {} if not partial else None)
    if props is not None:
        if not isinstance(props, dict) or set(props) - _STREAM_PROPERTIES - {"stale_after_minutes"}:
            raise _bad(f"properties holds the ingest checks and alarm levels: {', '.join(sorted(_STREAM_PROPERTIES))}",
                       "properties")
        for name in ("valid_min", "valid_max", "max_change_per_hour"):
            if name in props or not partial:
                if name not in props:
                    raise _bad(f"properties.{name} is required: every reading is checked against it",
                               f"properties.{name}")
                values[name] = _number(props[name], f"properties.{name}")
        if "alarm_levels" in props:
            levels = props["alarm_levels"]
            if not isinstance(levels, list) or len(levels) != 3:
                raise _bad("properties.alarm_levels lists levels I, II and III (null for none)", "properties.alarm_levels")
            values["level_1"], values["level_2"], values["level_3"] = (
                None if v is None else _number(v, "properties.alarm_levels") for v in levels)
        if "drives_alert" in props:
            if not isinstance(props["drives_alert"], bool):
                raise _bad("properties.drives_alert is true or false", "properties.drives_alert")
            values["drives_alert"] = props["drives_alert"]
        for name in ("stale_after_minutes", "hold_down_minutes"):
            if name in props:
                minutes = props[name]
                if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= 10_080:
                    raise _bad(f"properties.{name} is a whole number of minutes, 1 to 10080", f"properties.{name}")
                values[name] = minutes
        if "hysteresis" in props:
            values["hysteresis"] = abs(_number(props["hysteresis"], "properties.hysteresis"))
    if values.get("valid_min") is not None and values.get("valid_max") is not None \
            and values["valid_min"] >= values["valid_max"]:
        raise _bad("properties.valid_min must be below valid_max", "properties.valid_min")
    return values


def _multi_values(db: Session, body: dict[str, Any], *, partial: bool) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    values = _named(body, partial=partial)
    for link, model, column in (("Thing", FloodThing, "thing_id"), ("Sensor", FloodSensor, "sensor_id")):
        if link in body or not partial:
            ident = _ref(body.get(link), link)
            if db.get(model, ident) is None:
                raise _bad(f"no {link} {ident}", link)
            values[column] = ident
    if "observationType" in body and body["observationType"] != sensorthings.COMPLEX:
        raise _bad(f"observationType is {sensorthings.COMPLEX}", "observationType")
    shape = {"ObservedProperties", "unitOfMeasurements", "multiObservationDataTypes", "properties"}
    if partial and not shape & set(body):
        return values, None
    if partial:
        raise _bad("a MultiDatastream's components are fixed once it holds readings; create another", "ObservedProperties")
    properties, units, types = body.get("ObservedProperties"), body.get("unitOfMeasurements"), \
        body.get("multiObservationDataTypes")
    checks = (body.get("properties") or {}).get("components") if isinstance(body.get("properties"), dict) else None
    if not isinstance(properties, list) or not properties or len(properties) > 20:
        raise _bad("ObservedProperties lists 1 to 20 properties, one per component", "ObservedProperties")
    for name, given in (("unitOfMeasurements", units), ("multiObservationDataTypes", types),
                        ("properties.components", checks)):
        if not isinstance(given, list) or len(given) != len(properties):
            raise _bad(f"{name} has one entry per ObservedProperty ({len(properties)})", name)
    components = []
    for position, (prop, unit, kind, check) in enumerate(zip(properties, units, types, checks, strict=True)):
        ident = _ref(prop, f"ObservedProperties[{position}]")
        if db.get(FloodObservedProperty, ident) is None:
            raise _bad(f"no ObservedProperty {ident}", f"ObservedProperties[{position}]")
        if kind != sensorthings.MEASUREMENT:
            raise _bad(f"multiObservationDataTypes[{position}] is {sensorthings.MEASUREMENT}",
                       f"multiObservationDataTypes[{position}]")
        if not isinstance(check, dict) or set(check) != {"valid_min", "valid_max", "max_change_per_hour"}:
            raise _bad("each component's checks are valid_min, valid_max and max_change_per_hour",
                       f"properties.components[{position}]")
        component = {"position": position, "observed_property_id": ident, **_unit(unit, f"unitOfMeasurements[{position}]"),
                     **{k: _number(v, f"properties.components[{position}].{k}") for k, v in check.items()}}
        if component["valid_min"] >= component["valid_max"]:
            raise _bad("valid_min must be below valid_max", f"properties.components[{position}].valid_min")
        components.append(component)
    return values, components


_ALLOWED = {
    "Things": {"name", "description", "properties", "Locations", "Datastreams"},
    "Locations": {"name", "description", "encodingType", "location", "Things"},
    "Sensors": {"name", "description", "encodingType", "metadata", "properties"},
    "ObservedProperties": {"name", "definition", "description"},
    "Datastreams": {"name", "description", "observationType", "unitOfMeasurement", "Thing", "Sensor", "ObservedProperty",
                    "properties"},
    "MultiDatastreams": {"name", "description", "observationType", "unitOfMeasurements", "multiObservationDataTypes",
                         "Thing", "Sensor", "ObservedProperties", "properties"},
    "Observations": {"phenomenonTime", "resultTime", "result", "Datastream", "MultiDatastream", "FeatureOfInterest",
                     "parameters", "validTime", "resultQuality"},
}
_MODELS = {"Things": FloodThing, "Locations": FloodLocation, "Sensors": FloodSensor,
           "ObservedProperties": FloodObservedProperty, "Datastreams": FloodDatastream,
           "MultiDatastreams": FloodMultiDatastream, "Observations": FloodObservation}


def _values(db: Session, name: str, body: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    if name == "Things":
        return _thing_values(db, body, partial=partial)
    if name == "Locations":
        return _location_values(body, partial=partial)
    if name == "Sensors":
        return _sensor_values(body, partial=partial)
    if name == "ObservedProperties":
        return _property_values(body, partial=partial)
    return _datastream_values(db, body, partial=partial)


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
    if name == "Locations":
        things = body.get("Things")
        if not isinstance(things, list) or len(things) != 1:
            raise _bad("a Location stands for one station: Things is [{\"@iot.id\": <id>}]", "Things")
        thing_id = _ref(things[0], "Things")
        if db.get(FloodThing, thing_id) is None:
            raise _bad(f"no Thing {thing_id}", "Things")
        values["thing_id"] = thing_id
    if name == "Sensors":
        key = ingest.new_key()
        values["key_hash"] = ingest.hash_key(key)
        written.headers["X-Sensor-Key"] = key  # shown once; only its hash is kept
    obj = _MODELS[name](**values)
    db.add(obj)
    db.flush()
    if name == "Things":
        for position, location in enumerate(body.get("Locations") or []):
            if not isinstance(location, dict) or "@iot.id" in location:
                raise _bad("a new Thing's Locations are new locations (a station stands at its own place)",
                           f"Locations[{position}]")
            _insert(db, "Locations", {**location, "Things": [{"@iot.id": obj.id}]}, written)
        streams = body.get("Datastreams") or []
        if not isinstance(streams, list) or not all(isinstance(d, dict) and "@iot.id" not in d for d in streams):
            raise _bad("a new Thing's Datastreams are new datastreams (objects without @iot.id)", "Datastreams")
        for stream in streams:
            _insert(db, "Datastreams", {**stream, "Thing": {"@iot.id": obj.id}}, written)
    return obj.id  # type: ignore[attr-defined]


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


def _reading(body: dict[str, Any]) -> tuple[str, int, dict[str, Any]]:
    """(Datastream or MultiDatastream, its id, the reading in ingest's form) from an Observation's JSON."""
    body = _only(body, _ALLOWED["Observations"], "Observation")
    if body.get("FeatureOfInterest") not in (None, {}):
        raise _bad("an Observation's FeatureOfInterest is its station's Location; leave it out", "FeatureOfInterest")
    for name in ("parameters", "validTime", "resultQuality"):
        if body.get(name) not in (None, {}):
            raise _bad(f"{name} is not kept by this service; leave it out", name)
    if ("Datastream" in body) == ("MultiDatastream" in body):
        raise _bad("an Observation belongs to one Datastream or one MultiDatastream", "Datastream")
    kind = "Datastream" if "Datastream" in body else "MultiDatastream"
    stream = _ref(body[kind], kind)
    when = body.get("phenomenonTime")
    if when is None:
        when = datetime.now(UTC).isoformat()
    if "result" not in body:
        raise _bad("result is required", "result")
    reading = {"time": when, "value" if kind == "Datastream" else "result": body["result"],
               "datastream" if kind == "Datastream" else "MultiDatastream": stream}
    return kind, stream, reading


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
            replacing: int | None = None) -> ingest.IngestOutcome:
    """Readings of a Datastream or a MultiDatastream through the ingest rules, on ``bind``."""
    if kind == "Datastream":
        return ingest.ingest(bind, sensor=sensor, readings=readings, now=now, replacing=replacing)  # type: ignore[arg-type]
    return ingest.ingest_multi(bind, sensor_id=sensor.id, readings=readings, now=now,  # type: ignore[arg-type]
                               replacing=replacing)


def _create_observation(bind: Bind, body: Any, writer: Writer, now: datetime | None) -> Written:
    kind, stream, reading = _reading(body)
    with _session(bind) as db:
        sensor = _stream_owner(db, kind, stream, writer)
    outcome = _ingest(bind, kind, sensor, [reading], now)
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
    merged = {"phenomenonTime": current["phenomenonTime"], "result": current["result"], **changes,
              kind: {"@iot.id": stream}}
    if kind in changes and changes[kind] != {"@iot.id": stream}:
        raise _bad("an Observation stays in its stream; create one in the other", kind)
    _, _, reading = _reading(merged)
    outcome = _ingest(bind, kind, sensor, [reading], now, replacing=ident)
    _judged(outcome)
    return Written("Observations", ident, stations=outcome.stations)


# --- The verbs ----------------------------------------------------------------------------------


def create(bind: Bind, path: str, body: Any, writer: Writer, *, now: datetime | None = None) -> Written:
    """POST ``body`` to the collection ``path``; the new entity's set and id."""
    name, parent = _collection(path)
    if name not in sensorthings.ENTITY_SETS:
        raise DomainError(404, f"no entity set {name!r}", field="path")
    if name in READ_ONLY:
        raise DomainError(405, f"{name} are the stations' Locations read another way; create a Location",
                          field="path")
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
        if name == "MultiDatastreams":
            values, _ = _multi_values(db, changes, partial=True)
        else:
            if name in ("Things",) and "Locations" in changes:
                raise _bad("change a station's Location itself (PATCH Locations(id))", "Locations")
            if name == "Locations" and "Things" in changes:
                raise _bad("a Location stays with its station", "Things")
            values = _values(db, name, changes, partial=not replace)
        if name == "Datastreams":
            row = db.get(FloodDatastream, ident)
            low, high = values.get("valid_min", row.valid_min), values.get("valid_max", row.valid_max)
            if low >= high:
                raise _bad("properties.valid_min must be below valid_max", "properties.valid_min")
        if values:
            try:
                db.execute(update(model).where(model.id == ident).values(**values))
                db.commit()
            except IntegrityError:
                db.rollback()
                raise _conflict(name) from None
    return Written(name, ident)


def remove(bind: Bind, path: str) -> None:
    """DELETE the entity ``path`` (a station with its locations, datastreams and readings)."""
    name, ident = _entity(path)
    model = _MODELS[name]
    with _session(bind) as db:
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
            entity = sensorthings.resolve(db, f"{written.entity}({written.id})", {}, links).json
        return Reply(201, entity, {"Location": entity["@iot.selfLink"], **written.headers}, written.stations)
    if method == "DELETE":
        remove(bind, path)
        return Reply(200)
    if method not in ("PATCH", "PUT"):
        raise DomainError(405, "a write is POST, PATCH, PUT or DELETE", field="method")
    with reading(bind) as db:
        current = sensorthings.resolve(db, path, {}, links).json or {}
    written = patch(bind, path, body, json_patch=json_patch, current=current, replace=method == "PUT")
    return Reply(200, stations=written.stations)


# --- CreateObservations (the DataArray extension's bulk create) -----------------------------------

_ARRAY_COMPONENTS = {"phenomenonTime", "result", "resultTime"}  # a FeatureOfInterest is the station's Location


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
        readings: list[Any] = []
        for row in rows:
            if not isinstance(row, list) or len(row) != len(components):
                readings.append(None)  # refused by ingest as not a reading, and answered "error"
                continue
            values = dict(zip(components, row, strict=True))
            readings.append({"time": values.get("phenomenonTime", datetime.now(UTC).isoformat()),
                             "value" if kind == "Datastream" else "result": values["result"],
                             "datastream" if kind == "Datastream" else "MultiDatastream": stream})
        if not readings:
            continue
        outcome = _ingest(bind, kind, sensor, readings, now)
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
