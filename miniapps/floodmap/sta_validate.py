"""SensorThings writes, the posted JSON: an entity's body checked property by property and turned into the
columns it writes, and an Observation's body into a reading in the ingest's form.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from miniapps.floodmap import ingest, sensorthings
from miniapps.floodmap.models import (
    FloodLocation,
    FloodObservedProperty,
    FloodSensor,
    FloodThing,
    StationKind,
)
from plugins import DomainError, OrgUnit

GEOJSON_TYPES = ("application/geo+json", "application/vnd.geo+json")


def _bad(detail: str, name: str = "", status: int = 400) -> DomainError:
    return DomainError(status, detail, field=f"body.{name}" if name else "body")


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


def _feature_values(body: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """A FeatureOfInterest: its name, description, encodingType (GeoJSON) and a GeoJSON Point."""
    values = _named(body, partial=partial)
    if "encodingType" in body or not partial:
        if body.get("encodingType") not in GEOJSON_TYPES:
            raise _bad(f"encodingType is {GEOJSON_TYPES[0]}", "encodingType")
        values["encoding_type"] = body["encodingType"]
    if "feature" in body or not partial:
        values["lon"], values["lat"] = _point(body.get("feature"), "feature")
    return values


def _when(value: Any, name: str) -> datetime:
    """An ISO 8601 date-time with its zone, in UTC."""
    parsed = ingest._parse_time(value)
    if parsed is None or parsed < ingest.EARLIEST:
        raise _bad(f"{name} is an ISO 8601 date-time with a zone, e.g. 2026-11-25T21:00:00Z", name)
    return parsed.astimezone(UTC)


def _one_location(db: Session, value: Any, name: str = "Locations") -> int:
    """The one Location of ``[{"@iot.id": n}]``: a station stands at one place at a time."""
    if not isinstance(value, list) or len(value) != 1:
        raise _bad(f"{name} is one existing Location, [{{\"@iot.id\": <id>}}]: a station stands at one place", name)
    ident = _ref(value[0], f"{name}[0]")
    if db.get(FloodLocation, ident) is None:
        raise _bad(f"no Location {ident}", f"{name}[0]")
    return ident


def _history_values(db: Session, body: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """A HistoricalLocation: its time, its Thing and its one Location."""
    values: dict[str, Any] = {}
    if "time" in body or not partial:
        values["time"] = _when(body.get("time"), "time")
    if "Thing" in body or not partial:
        ident = _ref(body.get("Thing"), "Thing")
        if db.get(FloodThing, ident) is None:
            raise _bad(f"no Thing {ident}", "Thing")
        values["thing_id"] = ident
    if "Locations" in body or not partial:
        values["location_id"] = _one_location(db, body.get("Locations"))
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
    components: list[dict[str, Any]] = []
    for position, (prop, unit, kind, check) in enumerate(zip(properties, units, types, checks, strict=True)):
        ident = _ref(prop, f"ObservedProperties[{position}]")
        if any(c["observed_property_id"] == ident for c in components):
            # the ObservedProperties navigation lists each once, in component order: one component each
            raise _bad(f"ObservedProperty {ident} is already a component", f"ObservedProperties[{position}]")
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
    "HistoricalLocations": {"time", "Thing", "Locations"},
    "FeaturesOfInterest": {"name", "description", "encodingType", "feature"},
    "Sensors": {"name", "description", "encodingType", "metadata", "properties"},
    "ObservedProperties": {"name", "definition", "description"},
    "Datastreams": {"name", "description", "observationType", "unitOfMeasurement", "Thing", "Sensor", "ObservedProperty",
                    "properties"},
    "MultiDatastreams": {"name", "description", "observationType", "unitOfMeasurements", "multiObservationDataTypes",
                         "Thing", "Sensor", "ObservedProperties", "properties"},
    "Observations": {"phenomenonTime", "resultTime", "result", "Datastream", "MultiDatastream", "FeatureOfInterest",
                     "parameters", "validTime", "resultQuality"},
}


def _values(db: Session, name: str, body: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    if name == "Things":
        return _thing_values(db, body, partial=partial)
    if name == "Locations":
        return _location_values(body, partial=partial)
    if name == "Sensors":
        return _sensor_values(body, partial=partial)
    if name == "ObservedProperties":
        return _property_values(body, partial=partial)
    if name == "FeaturesOfInterest":
        return _feature_values(body, partial=partial)
    if name == "HistoricalLocations":
        return _history_values(db, body, partial=partial)
    return _datastream_values(db, body, partial=partial)


# --- Observations ---------------------------------------------------------------------------------


def _reading(body: dict[str, Any]) -> tuple[str, int, dict[str, Any], int | dict[str, Any] | None]:
    """(Datastream or MultiDatastream, its id, the reading in ingest's form, its FeatureOfInterest: an id, a
    new one's JSON, or None for its station's) from an Observation's JSON."""
    body = _only(body, _ALLOWED["Observations"], "Observation")
    feature = body.get("FeatureOfInterest")
    if feature == {}:
        feature = None
    if feature is not None:
        if not isinstance(feature, dict):
            raise _bad("FeatureOfInterest is {\"@iot.id\": <id>} or a new FeatureOfInterest", "FeatureOfInterest")
        feature = _ref(feature, "FeatureOfInterest") if "@iot.id" in feature else feature
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
    return kind, stream, reading, feature
