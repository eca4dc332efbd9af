"""OGC SensorThings API 1.1 over the flood map's tables: the eight entity sets, resource paths, the query
options and the data array format.

Entity sets: Things, Locations, HistoricalLocations, Sensors, ObservedProperties, Datastreams,
Observations, FeaturesOfInterest. A station never moves, so its Location is also its one
HistoricalLocation (time: when it was placed) and the FeatureOfInterest of its Observations: the three
sets are read from one table.

Resource paths: ``Set``, ``Set(id)``, navigation to any depth (``Datastreams(1)/Thing/Locations``), an
entity of a related set (``Things(1)/Datastreams(2)``), a property (``Things(1)/name``) and its raw
``$value``, and ``$ref``. Query options: ``$top $skip $count $orderby $filter $expand $select
$resultFormat=dataArray``; ``$expand`` items take the same options nested, to ``MAX_EXPAND_DEPTH``.
``$filter``/``$orderby`` expressions are the whole SensorThings grammar (see ``sta_filter``).

Query cost is bounded: ``$top`` at most ``MAX_TOP``, ``$expand`` at most ``MAX_EXPAND_DEPTH`` levels and
``MAX_EXPANDED`` related entities a request, and an expanded level is one query for every parent of a
page (a LATERAL join on PostgreSQL, a window on SQLite), never one per entity.

Paging is keyset: ``@iot.nextLink`` carries a ``$skiptoken`` holding the last row's sort key, so the next
page starts at that key in an index however deep it is (a datastream holds 263,000 readings a five
years). An order by a computed term pages by ``$skip`` instead, up to ``MAX_SKIP`` rows. A datastream's
Observations are ordered by phenomenonTime unless asked otherwise: it is unique per datastream and
indexed with it. ``$count`` is exact, and cached for ``COUNT_SECONDS`` per query.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Integer,
    Select,
    SmallInteger,
    and_,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.dialects import postgresql

from miniapps.floodmap import sta_filter
from miniapps.floodmap.models import (
    FloodDatastream,
    FloodLocation,
    FloodMultiComponent,
    FloodMultiDatastream,
    FloodObservation,
    FloodObservedProperty,
    FloodSensor,
    FloodThing,
)
from plugins import Cache, DomainError, json_nesting_exceeds

VERSION = "v1.1"
DEFAULT_TOP = 100
MAX_TOP = 1000
MAX_EXPAND_DEPTH = 3
MAX_EXPANDED = 20_000  # related entities one request may inline (parents x $top, per level)
MAX_SKIP = 10_000
MAX_PATH = 8  # segments of a resource path
MINIAPP = "floodmap"
COUNT_SECONDS = 30.0
MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
COMPLEX = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_ComplexObservation"
GEOJSON = "application/geo+json"
_REQ = "http://www.opengis.net/spec/iot_sensing/1.1/req/"
# Declared only for what the tests in tests/miniapps/floodmap/ cover (sta_checklist.py names each class).
CONFORMANCE = [
    f"{_REQ}datamodel",
    f"{_REQ}resource-path/resource-path-to-entities",
    f"{_REQ}request-data",
    f"{_REQ}data-array/data-array",
    f"{_REQ}multi-datastream",
    f"{_REQ}batch-request/batch-request",
]


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z"  # isoformat of a UTC time always ends in +00:00


def _kind(value: Any) -> str:
    return value.value if hasattr(value, "value") else str(value)


@dataclass(frozen=True)
class Prop:
    """A property ``$filter`` and ``$orderby`` can name: a column, a constant, or a point (lon, lat columns)."""

    column: str | None = None
    constant: str | None = None
    geometry: tuple[str, str] | None = None


@dataclass(frozen=True)
class Nav:
    """A navigation property: the entity set it leads to, whether it is a set, and how it joins.

    A related entity's ``child_key`` (a column of the target) equals the parent's ``parent_key`` column;
    ``via`` gives that key through another table instead (an Observation's FeatureOfInterest is the
    location of its datastream's station). ``unique`` names target properties unique among the related
    entities (a datastream has one Observation per phenomenonTime), ``order`` the default order of the
    related set; both let a page be read straight from the index that makes them unique.
    """

    target: str
    many: bool
    parent_key: str
    child_key: str = "id"
    via: Callable[[Any], tuple[Any, Any]] | None = None
    unique: frozenset[str] = frozenset({"id"})
    order: tuple[tuple[str, bool], ...] = ()

    def key_of(self, table: Any) -> tuple[Any, Any]:
        """The target's key column (of ``table``, the target's table or an alias) and the FROM to read it
        from: ``table`` itself, or ``table`` explicitly JOINed to what ``via`` goes through (explicit joins,
        so SQLAlchemy's cartesian-product check sees how the tables meet)."""
        if self.via is not None:
            return self.via(table)
        return table.c[self.child_key], table


@dataclass(frozen=True)
class EntitySet:
    """One SensorThings entity set backed by one table.

    Entities are read as rows of plain columns, not ORM objects: a page of 100-1000 Observations is then
    a tuple per reading for ``to_json`` to turn into a dict, with no instance state built and discarded.
    ``props`` are the paths ``$filter`` and ``$orderby`` may name; ``fields`` the top-level properties
    ``$select`` may name.
    """

    name: str
    model: Any
    props: dict[tuple[str, ...], Prop]
    navs: dict[str, Nav]
    to_json: Callable[[Any], dict[str, Any]]
    fields: tuple[str, ...]
    hidden: frozenset[str] = frozenset()  # columns never read for the API (a sensor's key hash)
    # what to_json needs beyond the row, read once for a whole page: {entity id: extra properties}
    enrich: Callable[[Connection, list[Any]], dict[Any, dict[str, Any]]] | None = None

    @property
    def table(self) -> Any:
        """The backing table."""
        return self.model.__table__

    @cached_property
    def link_names(self) -> tuple[tuple[str, str], ...]:
        """(navigation property, its ``@iot.navigationLink`` key), built once rather than per entity."""
        return tuple((name, f"{name}@iot.navigationLink") for name in self.navs)

    def columns(self, table: Any = None) -> list[Any]:
        """The entity's columns (without ``hidden`` ones) of its table or an alias of it."""
        table = self.table if table is None else table
        return [c for c in table.columns if c.key not in self.hidden]

    def select(self) -> Select:
        """The entity's columns, as a query to narrow."""
        return select(*self.columns())


def _thing(t: Any) -> dict[str, Any]:
    return {"name": t.name, "description": t.description, "properties": {
        "code": t.code, "kind": _kind(t.kind), "unit_id": t.unit_id, "warn_units": list(t.warn_units),
        "synthetic": t.synthetic, "alert_level": t.level, "stale": t.stale,
        "camera_url": t.camera_url, "camera_image_at": _iso(t.camera_image_at)}}


def _point(loc: Any) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [loc.lon, loc.lat]}


def _location(loc: Any) -> dict[str, Any]:
    return {"name": loc.name, "description": loc.description, "encodingType": GEOJSON, "location": _point(loc)}


def _historical_location(loc: Any) -> dict[str, Any]:
    return {"time": _iso(loc.since)}


def _feature(loc: Any) -> dict[str, Any]:
    return {"name": loc.name, "description": loc.description, "encodingType": GEOJSON, "feature": _point(loc)}


def _sensor(s: Any) -> dict[str, Any]:
    return {"name": s.name, "description": s.description, "encodingType": s.encoding_type,
            "metadata": s.sensor_metadata}


def _observed_property(p: Any) -> dict[str, Any]:
    return {"name": p.name, "definition": p.definition, "description": p.description}


def _datastream(d: Any) -> dict[str, Any]:
    return {"name": d.name, "description": d.description, "observationType": MEASUREMENT,
            "unitOfMeasurement": {"name": d.unit_name, "symbol": d.unit_symbol, "definition": d.unit_definition},
            "properties": {"alarm_levels": [d.level_1, d.level_2, d.level_3], "drives_alert": d.drives_alert,
                           "stale_after_minutes": d.stale_after_minutes}}


def _observation(o: Any) -> dict[str, Any]:
    result = o.results if o.multi_datastream_id is not None else o.result
    return {"phenomenonTime": _iso(o.phenomenon_time), "resultTime": _iso(o.result_time), "result": result}


def _multi_datastream(m: Any) -> dict[str, Any]:
    return {"name": m.name, "description": m.description, "observationType": COMPLEX}


def _components(db: Connection, rows: list[Any]) -> dict[Any, dict[str, Any]]:
    """The MultiDatastreams' units and data types, in component order, for a page of them at once."""
    found: dict[Any, dict[str, Any]] = {row.id: {"multiObservationDataTypes": [], "unitOfMeasurements": []}
                                        for row in rows}
    c = FloodMultiComponent
    for part in db.execute(select(c.multi_datastream_id, c.unit_name, c.unit_symbol, c.unit_definition)
                           .where(c.multi_datastream_id.in_(list(found)))
                           .order_by(c.multi_datastream_id, c.position)):
        found[part.multi_datastream_id]["multiObservationDataTypes"].append(MEASUREMENT)
        found[part.multi_datastream_id]["unitOfMeasurements"].append(
            {"name": part.unit_name, "symbol": part.unit_symbol, "definition": part.unit_definition})
    return found


def _props(**paths: Prop) -> dict[tuple[str, ...], Prop]:
    """Property paths written with ``__`` for ``/``: ``properties__kind`` is ``properties/kind``."""
    return {tuple(name.split("__")): prop for name, prop in paths.items()}


C = Prop  # a column-backed property
_NAMED = {"id": C("id"), "name": C("name"), "description": C("description")}


def _foi_of_observation(location: Any) -> tuple[Any, Any]:
    """An Observation's FeatureOfInterest is the location of its (Multi)Datastream's station: keyed by the
    Observation's id."""
    reading = FloodObservation.__table__.alias()  # type: ignore[attr-defined]
    stream = FloodDatastream.__table__.alias()  # type: ignore[attr-defined]
    multi = FloodMultiDatastream.__table__.alias()  # type: ignore[attr-defined]
    place = FloodLocation.__table__.alias()  # type: ignore[attr-defined]
    # (reading, its station's location) as a derived table the databases flatten, so the reading's id
    # narrows it first; joined to the FeatureOfInterest by the location's id, a plain column equality
    places = (select(reading.c.id.label("reading_id"), place.c.id.label("location_id"))
              .select_from(reading.outerjoin(stream, stream.c.id == reading.c.datastream_id)
                           .outerjoin(multi, multi.c.id == reading.c.multi_datastream_id)
                           .join(place, place.c.thing_id == func.coalesce(stream.c.thing_id, multi.c.thing_id)))
              .subquery())
    return places.c.reading_id, location.join(places, location.c.id == places.c.location_id)


def _observations_of_feature(observation: Any) -> tuple[Any, Any]:
    """A FeatureOfInterest's Observations: those of its station's datastreams, keyed by station id."""
    stream = FloodDatastream.__table__.alias()  # type: ignore[attr-defined]
    return stream.c.thing_id, observation.join(stream, stream.c.id == observation.c.datastream_id)


def _properties_of_multi(prop: Any) -> tuple[Any, Any]:
    """A MultiDatastream's ObservedProperties: through its components, keyed by MultiDatastream id."""
    part = FloodMultiComponent.__table__.alias()  # type: ignore[attr-defined]
    return part.c.multi_datastream_id, prop.join(part, part.c.observed_property_id == prop.c.id)


def _multis_of_property(multi: Any) -> tuple[Any, Any]:
    """An ObservedProperty's MultiDatastreams: those with a component of it, keyed by property id."""
    part = FloodMultiComponent.__table__.alias()  # type: ignore[attr-defined]
    return part.c.observed_property_id, multi.join(part, part.c.multi_datastream_id == multi.c.id)


_BY_TIME = {"unique": frozenset({"id", "phenomenon_time"}), "order": (("phenomenon_time", False),)}

ENTITY_SETS: dict[str, EntitySet] = {
    "Things": EntitySet("Things", FloodThing, _props(
        **_NAMED, properties__code=C("code"), properties__kind=C("kind"), properties__unit_id=C("unit_id"),
        properties__synthetic=C("synthetic"), properties__alert_level=C("level"), properties__stale=C("stale"),
        properties__camera_url=C("camera_url"), properties__camera_image_at=C("camera_image_at")), {
        "Locations": Nav("Locations", True, "id", "thing_id"),
        "HistoricalLocations": Nav("HistoricalLocations", True, "id", "thing_id"),
        "Datastreams": Nav("Datastreams", True, "id", "thing_id"),
        "MultiDatastreams": Nav("MultiDatastreams", True, "id", "thing_id"),
    }, _thing, ("id", "selfLink", "name", "description", "properties")),
    "Locations": EntitySet("Locations", FloodLocation, _props(
        **_NAMED, encodingType=Prop(constant=GEOJSON), location=Prop(geometry=("lon", "lat"))), {
        "Things": Nav("Things", True, "thing_id"),
        "HistoricalLocations": Nav("HistoricalLocations", True, "id"),
    }, _location, ("id", "selfLink", "name", "description", "encodingType", "location")),
    "HistoricalLocations": EntitySet("HistoricalLocations", FloodLocation, _props(id=C("id"), time=C("since")), {
        "Thing": Nav("Things", False, "thing_id"),
        "Locations": Nav("Locations", True, "id"),
    }, _historical_location, ("id", "selfLink", "time")),
    "Sensors": EntitySet("Sensors", FloodSensor, _props(
        **_NAMED, encodingType=C("encoding_type"), metadata=C("sensor_metadata")), {
        "Datastreams": Nav("Datastreams", True, "id", "sensor_id"),
        "MultiDatastreams": Nav("MultiDatastreams", True, "id", "sensor_id"),
    }, _sensor, ("id", "selfLink", "name", "description", "encodingType", "metadata"), hidden=frozenset({"key_hash"})),
    "ObservedProperties": EntitySet("ObservedProperties", FloodObservedProperty, _props(
        **_NAMED, definition=C("definition")), {
        "Datastreams": Nav("Datastreams", True, "id", "observed_property_id"),
        "MultiDatastreams": Nav("MultiDatastreams", True, "id", via=_multis_of_property),
    }, _observed_property, ("id", "selfLink", "name", "definition", "description")),
    "Datastreams": EntitySet("Datastreams", FloodDatastream, _props(
        **_NAMED, observationType=Prop(constant=MEASUREMENT), unitOfMeasurement__name=C("unit_name"),
        unitOfMeasurement__symbol=C("unit_symbol"), unitOfMeasurement__definition=C("unit_definition"),
        properties__drives_alert=C("drives_alert"), properties__stale_after_minutes=C("stale_after_minutes")), {
        "Thing": Nav("Things", False, "thing_id"),
        "Sensor": Nav("Sensors", False, "sensor_id"),
        "ObservedProperty": Nav("ObservedProperties", False, "observed_property_id"),
        "Observations": Nav("Observations", True, "id", "datastream_id", **_BY_TIME),
    }, _datastream, ("id", "selfLink", "name", "description", "observationType", "unitOfMeasurement", "properties")),
    "Observations": EntitySet("Observations", FloodObservation, _props(
        id=C("id"), phenomenonTime=C("phenomenon_time"), resultTime=C("result_time"), result=C("result")), {
        "Datastream": Nav("Datastreams", False, "datastream_id"),
        "MultiDatastream": Nav("MultiDatastreams", False, "multi_datastream_id"),
        "FeatureOfInterest": Nav("FeaturesOfInterest", False, "id", via=_foi_of_observation),
    }, _observation, ("id", "selfLink", "phenomenonTime", "resultTime", "result")),
    "FeaturesOfInterest": EntitySet("FeaturesOfInterest", FloodLocation, _props(
        **_NAMED, encodingType=Prop(constant=GEOJSON), feature=Prop(geometry=("lon", "lat"))), {
        "Observations": Nav("Observations", True, "thing_id", via=_observations_of_feature),
    }, _feature, ("id", "selfLink", "name", "description", "encodingType", "feature")),
    "MultiDatastreams": EntitySet("MultiDatastreams", FloodMultiDatastream, _props(
        **_NAMED, observationType=Prop(constant=COMPLEX)), {
        "Thing": Nav("Things", False, "thing_id"),
        "Sensor": Nav("Sensors", False, "sensor_id"),
        "ObservedProperties": Nav("ObservedProperties", True, "id", via=_properties_of_multi),
        "Observations": Nav("Observations", True, "id", "multi_datastream_id", **_BY_TIME),
    }, _multi_datastream, ("id", "selfLink", "name", "description", "observationType", "multiObservationDataTypes",
                           "unitOfMeasurements"), enrich=_components),
}


# --- Query options --------------------------------------------------------------------------------


@dataclass
class Options:
    """The query options of one level of a request (the top level, or one ``$expand`` item)."""

    top: int = DEFAULT_TOP
    skip: int = 0
    after: list[Any] | None = None  # from $skiptoken: the sort key of the last row of the previous page
    count: bool = False
    orderby: list[tuple[Any, bool]] = field(default_factory=list)  # (expression AST, descending)
    orderby_text: str = ""
    filter: Any = None  # the expression AST
    filter_text: str = ""
    select: list[str] | None = None
    result_format: str | None = None
    expand: dict[str, Options] = field(default_factory=dict)


def _bad(option: str, detail: str) -> DomainError:
    return DomainError(400, f"{option}: {detail}", field=f"query.{option}")


_KNOWN = ("$top", "$skip", "$count", "$orderby", "$filter", "$expand", "$select", "$skiptoken", "$resultFormat")


def parse_options(raw: dict[str, str], entity: EntitySet, *, depth: int = 0) -> Options:
    """Options from query parameters (or from an ``$expand`` item's ``(...)``), checked against ``entity``."""
    options = Options()
    if "$top" in raw:
        options.top = _int_option("$top", raw["$top"], MAX_TOP)
    if "$skip" in raw:
        options.skip = _int_option("$skip", raw["$skip"], MAX_SKIP,
                                   hint="; for deeper pages follow @iot.nextLink, which pages by key")
    if "$count" in raw:
        if raw["$count"].lower() not in ("true", "false"):
            raise _bad("$count", "use true or false")
        options.count = raw["$count"].lower() == "true"
    if "$orderby" in raw:
        options.orderby, options.orderby_text = _orderby(raw["$orderby"]), raw["$orderby"].strip()
    if "$filter" in raw:
        options.filter, options.filter_text = sta_filter.parse(raw["$filter"]), raw["$filter"].strip()
    if "$select" in raw:
        options.select = _select(raw["$select"], entity)
    if "$resultFormat" in raw:
        if raw["$resultFormat"] != "dataArray" or entity.name != "Observations" or depth:
            raise _bad("$resultFormat", "dataArray, on a collection of Observations")
        options.result_format = "dataArray"
    if "$skiptoken" in raw:
        options.after = _decode_token(raw["$skiptoken"])
    if "$expand" in raw:
        if depth >= MAX_EXPAND_DEPTH:
            raise _bad("$expand", f"at most {MAX_EXPAND_DEPTH} levels deep")
        options.expand = parse_expand(raw["$expand"], entity, depth=depth)
    return options


def _int_option(name: str, value: str, most: int, *, hint: str = "") -> int:
    # isdigit() alone also passes "²", which int() refuses; the length cap keeps int() off huge strings
    if not (value.isascii() and value.isdigit()) or len(value) > 20 or int(value) > most:
        raise _bad(name, f"a whole number from 0 to {most}{hint}")
    return int(value)


def _select(value: str, entity: EntitySet) -> list[str]:
    names = [part.strip() for part in value.split(",")]
    allowed = set(entity.fields) | set(entity.navs)
    for name in names:
        if name not in allowed:
            raise _bad("$select", f"{name!r}: select from {', '.join(sorted(allowed))}")
    return list(dict.fromkeys(names))


def _encode_token(key: list[Any]) -> str:
    """A page's last sort key as an opaque, URL-safe ``$skiptoken``."""
    plain = [v.astimezone(UTC).isoformat() if isinstance(v, datetime) else _kind(v) if hasattr(v, "value") else v
             for v in key]
    return base64.urlsafe_b64encode(json.dumps(plain, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_token(token: str) -> list[Any]:
    """The sort key a ``$skiptoken`` holds (checked against the order when the query is built)."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        if json_nesting_exceeds(raw, 2):  # a forged token may nest deeper than the parser goes; ours never do
            raise ValueError("nested")
        key = json.loads(raw)
    except ValueError:
        raise _bad("$skiptoken", "not a token this server gave in @iot.nextLink") from None
    if not isinstance(key, list) or not all(isinstance(v, int | float | str) for v in key):
        raise _bad("$skiptoken", "not a token this server gave in @iot.nextLink")
    return key


def _orderby(value: str) -> list[tuple[Any, bool]]:
    """``expr [asc|desc], ...`` (either case) as (AST, descending) pairs."""
    order = []
    for part in _split_top(value, ",", option="$orderby"):
        words = part.strip().rsplit(None, 1)
        if not words:
            raise _bad("$orderby", "an empty item; write e.g. phenomenonTime desc")
        descending = False
        if len(words) == 2 and words[1].lower() in ("asc", "desc"):
            descending = words[1].lower() == "desc"
            expression = words[0]
        else:
            expression = part.strip()
        order.append((sta_filter.parse(expression, "$orderby"), descending))
    return order


def _split_top(text: str, separator: str, *, option: str = "$expand") -> list[str]:
    """Split at ``separator`` outside parentheses and quotes."""
    parts: list[str] = []
    current: list[str] = []
    depth, quoted = 0, False
    for char in text:
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
            if depth < 0:
                raise _bad(option, "unbalanced parentheses")
        if char == separator and depth == 0 and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise _bad(option, "unbalanced parentheses")
    parts.append("".join(current))
    return parts


def parse_expand(text: str, entity: EntitySet, *, depth: int = 0) -> dict[str, Options]:
    """``Datastreams/Observations($top=1;$orderby=phenomenonTime desc),Locations`` as a tree of Options."""
    tree: dict[str, Options] = {}
    for item in _split_top(text, ","):
        item = item.strip()
        segments = _split_top(item, "/")
        node_entity, node_tree, level = entity, tree, depth
        for segment in segments:
            segment = segment.strip()
            name, _, inner = segment.partition("(")
            if name not in node_entity.navs or (inner and not inner.endswith(")")):
                raise _bad("$expand", f"{segment!r} is not a navigation property of {node_entity.name} "
                                      f"({', '.join(sorted(node_entity.navs))})")
            inner = inner[:-1]
            target = ENTITY_SETS[node_entity.navs[name].target]
            raw: dict[str, str] = {}
            for option in _split_top(inner, ";") if inner.strip() else []:
                key, sep, value = option.partition("=")
                if not sep or key.strip() not in _KNOWN or key.strip() in ("$skiptoken", "$resultFormat"):
                    raise _bad("$expand", f"unknown option {option.strip()!r} in {name}(...)")
                raw[key.strip()] = value.strip()
            if level + 1 > MAX_EXPAND_DEPTH:
                raise _bad("$expand", f"at most {MAX_EXPAND_DEPTH} levels deep")
            existing = node_tree.get(name)
            options = existing if existing is not None and not raw else parse_options(raw, target, depth=level + 1)
            if existing is not None and options is not existing:
                options.expand = {**existing.expand, **options.expand}
            node_tree[name] = options
            node_entity, node_tree, level = target, options.expand, level + 1
    return tree


# --- Reading --------------------------------------------------------------------------------------


@dataclass
class Links:
    """Builds the absolute links of a response."""

    base: str  # .../api/miniapps/floodmap/v1.1

    def entity(self, entity: EntitySet, obj: Any) -> str:
        """An entity's @iot.selfLink."""
        return f"{self.base}/{entity.name}({obj.id})"


@dataclass
class _Key:
    """One term of a page's sort order: its SQL, its direction, and the column it is (for keyset pages)."""

    sql: Any
    desc: bool
    column: str | None


def _sort(db: Connection, entity: EntitySet, options: Options, *, table: Any = None,
          unique: frozenset[str] = frozenset({"id"}), default: tuple[tuple[str, bool], ...] = ()) -> list[_Key]:
    """The full sort key: what was asked (or the default), then ``id`` unless the key is already unique."""
    table = entity.table if table is None else table
    keys: list[_Key] = []
    if options.orderby:
        translate = sta_filter.Translator(entity, db, option="$orderby", table=table)
        for tree, desc in options.orderby:
            value = translate.sort_key(tree)
            column = value.sql.key if isinstance(value.sql, Column) and value.sql.table is table else None
            keys.append(_Key(value.sql, desc, column))
    else:
        keys = [_Key(table.c[name], desc, name) for name, desc in default]
    if not any(k.column in unique for k in keys):
        keys.append(_Key(table.c.id, False, "id"))
    return keys


def _keyset(keys: list[_Key], table: Any) -> bool:
    """Whether pages can continue from a key: every sort term a column that is never null."""
    return all(k.column is not None and not table.c[k.column].nullable for k in keys)


def _after(table: Any, keys: list[_Key], token: list[Any]) -> Any:
    """Rows after ``token`` in ``keys``: ``a > x OR (a = x AND b > y) ...``, led by ``a >= x`` so the
    database starts the scan at the key in an index on ``a``."""
    if len(token) != len(keys) or not _keyset(keys, table):
        raise _bad("$skiptoken", "this token belongs to another $orderby; start again from the first page")
    columns = [table.c[k.column] for k in keys]
    values = [_token_value(column, value) for column, value in zip(columns, token, strict=True)]
    alternatives = []
    for depth, (key, column, value) in enumerate(zip(keys, columns, values, strict=True)):
        equal = [columns[i] == values[i] for i in range(depth)]
        alternatives.append(and_(*equal, column < value if key.desc else column > value))
    lead = columns[0] <= values[0] if keys[0].desc else columns[0] >= values[0]
    return and_(lead, or_(*alternatives))


def _token_value(column: Any, value: Any) -> Any:
    column_type = column.type
    base = getattr(column_type, "impl", column_type)
    if isinstance(base, DateTime):
        try:
            when = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            when = None
        if when is None or when.utcoffset() is None:
            raise _bad("$skiptoken", "not a token this server gave in @iot.nextLink")
        return when
    python_type = getattr(column_type, "python_type", str) if not hasattr(column_type, "enums") else str
    if python_type is str:
        if not isinstance(value, str) or (hasattr(column_type, "enums") and value not in column_type.enums):
            raise _bad("$skiptoken", "not a token this server gave in @iot.nextLink")
        return value
    if python_type is bool:
        if not isinstance(value, bool):
            raise _bad("$skiptoken", "not a token this server gave in @iot.nextLink")
        return value
    if isinstance(value, str | bool) or (python_type is int and not isinstance(value, int)) \
            or (isinstance(value, int) and python_type is int and not _fits(column_type, value)):
        raise _bad("$skiptoken", "not a token this server gave in @iot.nextLink")
    return value


def _fits(column_type: Any, value: int) -> bool:
    """Whether ``value`` fits the integer column type (PostgreSQL's sizes; SQLite's are no smaller)."""
    bits = 64 if isinstance(column_type, BigInteger) else 16 if isinstance(column_type, SmallInteger) else 32
    return -(2 ** (bits - 1)) <= value < 2 ** (bits - 1)


def read_set(db: Connection, entity: EntitySet, options: Options, links: Links, *, where: list[Any] | None = None,
             nav: Nav | None = None, next_link: Callable[[dict[str, str]], str] | None = None,
             scope: tuple[Any, ...] = (), counts: Cache[int] | None = None) -> dict[str, Any]:
    """A page of an entity set (of the entities ``where`` selects): ``value``, and ``@iot.count`` /
    ``@iot.nextLink`` when asked or needed.

    ``scope`` names what ``where`` selects (the resource path), for the count cache ``counts``.
    """
    table = entity.table
    query = entity.select()
    if where:
        query = query.where(*where)
    if options.filter is not None:
        query = query.where(sta_filter.Translator(entity, db).condition(options.filter))
    body: dict[str, Any] = {}
    if options.count:
        body["@iot.count"] = count_of(db, query, (entity.name, scope, options.filter_text), counts)
    keys = _sort(db, entity, options, unique=nav.unique if nav else frozenset({"id"}),
                 default=nav.order if nav else ())
    keyset = _keyset(keys, table)
    if options.after is not None:
        query = query.where(_after(table, keys, options.after))
    query = query.order_by(*[k.sql.desc() if k.desc else k.sql.asc() for k in keys])
    rows = db.execute(query.offset(options.skip).limit(options.top + 1)).all()
    more = len(rows) > options.top
    rows = rows[: options.top]
    if more and next_link is not None and rows:
        if keyset:
            body["@iot.nextLink"] = next_link({"$skiptoken": _encode_token([getattr(rows[-1], k.column) for k in keys])})
        elif options.skip + options.top <= MAX_SKIP:
            body["@iot.nextLink"] = next_link({"$skip": str(options.skip + options.top)})
    if options.result_format == "dataArray":
        body["value"] = _data_array(rows, options, links)
    else:
        body["value"] = render_page(db, entity, rows, options, links)
    return body


_ARRAY_COMPONENTS = ("id", "phenomenonTime", "resultTime", "result")


def _data_array(rows: list[Any], options: Options, links: Links) -> list[dict[str, Any]]:
    """Observations grouped by datastream as ``components`` and ``dataArray`` rows (the DataArray class)."""
    components = [c for c in (options.select or _ARRAY_COMPONENTS) if c in _ARRAY_COMPONENTS]
    if not components:
        raise _bad("$select", f"a data array holds some of {', '.join(_ARRAY_COMPONENTS)}")
    groups: dict[tuple[str, int], list[list[Any]]] = {}
    for row in rows:
        values = {"id": row.id, "phenomenonTime": _iso(row.phenomenon_time), "resultTime": _iso(row.result_time),
                  "result": row.result if row.multi_datastream_id is None else row.results}
        stream = ("Datastream", row.datastream_id) if row.multi_datastream_id is None else \
            ("MultiDatastream", row.multi_datastream_id)
        groups.setdefault(stream, []).append([values[c] for c in components])
    return [{f"{kind}@iot.navigationLink": f"{links.base}/{kind}s({stream})", "components": components,
             "dataArray@iot.count": len(array), "dataArray": array} for (kind, stream), array in groups.items()]


def render_page(db: Connection, entity: EntitySet, rows: list[Any], options: Options, links: Links
                ) -> list[dict[str, Any]]:
    """Entities (rows of ``entity.select()``) with their links, ``$select`` applied and ``$expand`` inlined.

    Each expanded navigation property is one query for the whole page (``_related``), and the entities it
    brings are rendered together the same way, so a request costs a query per expanded level, not one
    per entity.
    """
    prefix = f"{links.base}/{entity.name}("
    link_names = entity.link_names
    to_json = entity.to_json
    extra = entity.enrich(db, rows) if entity.enrich is not None and rows else {}
    page = []
    for row in rows:
        self_link = f"{prefix}{row.id})"
        body = {"@iot.id": row.id, "@iot.selfLink": self_link, **to_json(row)}
        if extra:
            body.update(extra[row.id])
        for name, link_name in link_names:
            body[link_name] = f"{self_link}/{name}"
        page.append(body)
    for name, sub in options.expand.items():
        nav = entity.navs[name]
        target = ENTITY_SETS[nav.target]
        groups, counts, more = _related(db, rows, nav, target, sub)
        children = [child for group in groups.values() for child in group]
        rendered = iter(render_page(db, target, children, sub, links))
        by_parent = {key: [next(rendered) for _ in group] for key, group in groups.items()}
        for row, body in zip(rows, page, strict=True):
            key = getattr(row, nav.parent_key)
            del body[f"{name}@iot.navigationLink"]
            if nav.many:
                body[name] = by_parent.get(key, [])
                if sub.count:
                    body[f"{name}@iot.count"] = counts.get(key, 0)
                if key in more:
                    body[f"{name}@iot.nextLink"] = (f"{body['@iot.selfLink']}/{name}?"
                                                    f"{urlencode({'$top': sub.top, '$skip': sub.skip + sub.top})}")
            else:
                found = by_parent.get(key)
                body[name] = found[0] if found else None
    if options.select is not None:
        page = [_selected(body, entity, options) for body in page]
    return page


def _selected(body: dict[str, Any], entity: EntitySet, options: Options) -> dict[str, Any]:
    """The entity with only the ``$select``-ed properties (expanded ones are kept)."""
    keep: set[str] = set()
    for name in options.select or ():
        keep.add({"id": "@iot.id", "selfLink": "@iot.selfLink"}.get(name, name))
        if name in entity.navs:
            keep.add(f"{name}@iot.navigationLink")
    for name in options.expand:
        keep.update((name, f"{name}@iot.count", f"{name}@iot.nextLink"))
    return {key: value for key, value in body.items() if key in keep}


def _related(db: Connection, rows: list[Any], nav: Nav, target: EntitySet, options: Options
             ) -> tuple[dict[Any, list[Any]], dict[Any, int], set[Any]]:
    """The entities ``nav`` leads to from every row of a page, in one query: rows grouped by parent key,
    their counts when ``$count`` was asked, and the keys that have more than ``$top`` of them."""
    keys = sorted({getattr(row, nav.parent_key) for row in rows} - {None})
    if not keys:
        return {}, {}, set()
    per_parent = options.top + 1 if nav.many else 1
    if len(keys) * per_parent > MAX_EXPANDED + len(keys):
        raise _bad("$expand", f"{nav.target} of {len(keys)} entities at $top={options.top} exceeds "
                              f"{MAX_EXPANDED} expanded entities; ask for a smaller $top")
    table = target.table
    key, source = nav.key_of(table)
    condition = []
    if options.filter is not None:
        condition.append(sta_filter.Translator(target, db).condition(options.filter))
    sort = _sort(db, target, options, unique=nav.unique, default=nav.order)
    order = [k.sql.desc() if k.desc else k.sql.asc() for k in sort]
    counts: dict[Any, int] = {}
    if options.count and nav.many:
        counted = select(key, func.count()).select_from(source).where(*condition, key.in_(keys)).group_by(key)
        counts = {parent: n for parent, n in db.execute(counted)}
    if db.dialect.name == "postgresql":
        # each parent's page read from the index by a LATERAL subquery: LIMIT per parent, no window over the
        # whole related set (a datastream's five years of readings)
        parents = func.unnest(postgresql.array(keys, type_=Integer)).table_valued("parent").render_derived()
        page = (select(*target.columns(), key.label("sta_parent")).select_from(source)
                .where(*condition, key == parents.c.parent)
                .order_by(*order).offset(options.skip if nav.many else 0).limit(per_parent).lateral())
        query = select(page).select_from(parents).join(page, true()).order_by(parents.c.parent)
    else:
        rank = func.row_number().over(partition_by=key, order_by=order).label("sta_rank")
        ranked = (select(*target.columns(), key.label("sta_parent"), rank).select_from(source)
                  .where(*condition, key.in_(keys)).subquery())
        first = options.skip if nav.many else 0
        query = (select(ranked).where(ranked.c.sta_rank > first, ranked.c.sta_rank <= first + per_parent)
                 .order_by(ranked.c.sta_parent, ranked.c.sta_rank))
    groups: dict[Any, list[Any]] = {}
    for row in db.execute(query):
        groups.setdefault(row.sta_parent, []).append(row)
    more = set()
    if nav.many:
        for parent, group in groups.items():
            if len(group) > options.top:
                del group[options.top:]
                more.add(parent)
    return groups, counts, more


def counts_cache(host: Any) -> Cache[int]:
    """The host's remembered ``$count`` answers; cleared after every write through the API (so its author
    sees it counted)."""
    return host.cache(MINIAPP, "sta_counts", ttl=COUNT_SECONDS, max_entries=1024)


def count_of(db: Connection, query: Select, key: tuple[Any, ...], counts: Cache[int] | None = None) -> int:
    """How many rows ``query`` selects, remembered in ``counts`` under ``key`` (what the query selects:
    set, scope and filter text): a client paging through a datastream with ``$count=true`` counts its
    readings once, not once per page. The key is built from the request's terms rather than the compiled
    SQL, so a remembered count costs no compilation. A filter using ``now()`` is never remembered (its
    answer moves)."""

    def count() -> int:
        return db.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0

    if counts is None or "now(" in key[-1]:
        return count()
    return counts.get_or_set(key, count)


def next_link_for(url: str, params: dict[str, str]) -> Callable[[dict[str, str]], str]:
    """A function giving the same request's URL continuing after a page (a ``$skiptoken`` or ``$skip``)."""
    rest = {k: v for k, v in params.items() if k not in ("$skip", "$skiptoken")}

    def make(position: dict[str, str]) -> str:
        return f"{url}?{urlencode({**rest, **position})}"

    return make


def get_entity(db: Connection, entity: EntitySet, entity_id: int) -> Any:
    """The entity with this id (a row of ``entity.select()``); 404 problem when there is none."""
    id_column = entity.table.c.id
    # an id beyond the column's range cannot exist, and the database would refuse the lookup with a 500
    obj = db.execute(entity.select().where(id_column == entity_id).limit(1)).first() \
        if _fits(id_column.type, entity_id) else None
    if obj is None:
        raise DomainError(404, f"no {entity.name}({entity_id})", field="path.entity_id")
    return obj


def service_document(base: str) -> dict[str, Any]:
    """The service root: one link per entity set, and the conformance classes served."""
    return {"value": [{"name": name, "url": f"{base}/{name}"} for name in ENTITY_SETS],
            "serverSettings": {"conformance": CONFORMANCE}}


# --- Resource paths -------------------------------------------------------------------------------


@dataclass
class _Step:
    """Where a resource path has got to: an entity set narrowed by conditions, one entity or many."""

    entity: EntitySet
    where: list[Any]
    single: bool
    ident: int | None = None  # the entity's id when the path named it
    nav: Nav | None = None  # the navigation that led here (its default order and unique keys)
    text: str = ""  # the path so far, for messages and the count cache


@dataclass
class Answer:
    """What a resource path answers: a JSON document, or a raw ``$value`` as text."""

    json: dict[str, Any] | None = None
    text: str | None = None


def _segment(text: str) -> tuple[str, int | None]:
    """``Name`` or ``Name(id)``; 404 when the id is not a whole number."""
    name, paren, rest = text.partition("(")
    if not paren:
        return name, None
    if not rest.endswith(")") or not rest[:-1].isascii() or not rest[:-1].isdigit() or len(rest) > 21:
        raise DomainError(404, f"no resource {text!r}: an id is a whole number, e.g. Things(1)", field="path")
    return name, int(rest[:-1])


def resolve(db: Connection, path: str, params: dict[str, str], links: Links,
            counts: Cache[int] | None = None) -> Answer:
    """Answer a GET of a SensorThings resource path (relative to the version root) with its query options;
    ``$count`` answers are remembered in ``counts`` when given."""
    segments = [s for s in path.split("/")]
    if not segments or len(segments) > MAX_PATH or "" in segments:
        raise DomainError(404, f"no resource {path!r}", field="path")
    name, ident = _segment(segments[0])
    entity = ENTITY_SETS.get(name)
    if entity is None:
        raise DomainError(404, f"no entity set {name!r}; the sets are {', '.join(ENTITY_SETS)}", field="path")
    step = _Step(entity, [], False, text=name)
    if ident is not None:
        step = _by_id(step, ident, segments[0])
    chain = [step]
    position = 1
    while position < len(segments):
        word = segments[position]
        if word == "$ref":
            if position != len(segments) - 1:
                raise DomainError(404, "$ref ends a path", field="path")
            return Answer(json=_refs(db, chain, params, links, counts))
        nav_name, ident = _segment(word)
        if nav_name in step.entity.navs:
            if not step.single:
                raise DomainError(404, f"{step.text} is a collection: name one entity before {nav_name}", field="path")
            step = _follow(step, nav_name)
            if ident is not None:
                if not step.nav or not step.nav.many:
                    raise DomainError(404, f"{step.text} is one entity, not a set to take ({ident}) of", field="path")
                step = _by_id(step, ident, word)
            chain.append(step)
            position += 1
            continue
        if step.single and ident is None and word in step.entity.fields and word not in ("id", "selfLink"):
            rest = segments[position + 1:]
            if rest not in ([], ["$value"]):
                raise DomainError(404, f"no resource {'/'.join(segments)!r}", field="path")
            row = _one(db, chain)
            value = render_page(db, step.entity, [row], Options(), links)[0][word]
            if rest:
                if isinstance(value, dict | list):
                    raise DomainError(400, f"{word} is not a primitive value: read it without /$value", field="path")
                return Answer(text="" if value is None else json.dumps(value) if isinstance(value, bool)
                              else str(value))
            return Answer(json={word: value})
        raise DomainError(404, f"{step.entity.name} has no navigation or property {word!r}", field="path")
    options = parse_options(params, step.entity)
    if step.single:
        row = _one(db, chain)
        return Answer(json=render_page(db, step.entity, [row], options, links)[0])
    page = read_set(db, step.entity, options, links, where=step.where, nav=step.nav,
                    next_link=next_link_for(f"{links.base}/{path}", params), scope=(step.text,), counts=counts)
    if not page.get("value") and len(chain) > 1:
        _one(db, chain[:-1])  # an empty set, or no such parent: 404 for the latter
    return Answer(json=page)


def _by_id(step: _Step, ident: int, text: str) -> _Step:
    table = step.entity.table
    if not _fits(table.c.id.type, ident):
        raise DomainError(404, f"no {step.entity.name}({ident})", field="path.entity_id")
    return _Step(step.entity, [*step.where, table.c.id == ident], True, ident, step.nav, f"{step.text}({ident})")


def _follow(step: _Step, nav_name: str) -> _Step:
    """The entities ``nav_name`` leads to from the one entity ``step`` selects, as conditions on the target."""
    nav = step.entity.navs[nav_name]
    target = ENTITY_SETS[nav.target]
    key, source = nav.key_of(target.table)
    parent = step.entity.table
    if nav.parent_key == "id" and step.ident is not None and not step.where[:-1]:
        # the parent named by id: its children are those with that key, read without the parent's table
        condition = key == step.ident
    else:
        # correlate(None): the parent may be the target's own table (a Location's HistoricalLocations)
        inner = select(parent.c[nav.parent_key]).where(*step.where).correlate(None).scalar_subquery()
        condition = key == inner
    where = [condition]
    if source is not target.table:  # the key is reached through another table: keep the target's rows distinct
        where = [target.table.c.id.in_(select(target.table.c.id).select_from(source).where(condition).correlate(None))]
    return _Step(target, where, not nav.many, None, nav, f"{step.text}/{nav_name}")


def _one(db: Connection, chain: list[_Step]) -> Any:
    """The entity the last step selects; 404 naming the first step of the path that selects nothing."""
    step = chain[-1]
    row = db.execute(step.entity.select().where(*step.where).order_by(step.entity.table.c.id).limit(1)).first()
    if row is not None:
        return row
    for earlier in chain[:-1]:
        if db.execute(select(earlier.entity.table.c.id).where(*earlier.where).limit(1)).first() is None:
            raise DomainError(404, f"no {earlier.text}", field="path.entity_id")
    raise DomainError(404, f"no {step.text}", field="path.entity_id")


def _refs(db: Connection, chain: list[_Step], params: dict[str, str], links: Links,
          counts: Cache[int] | None) -> dict[str, Any]:
    """``$ref``: the selfLinks of the entity or entities the path selects."""
    step = chain[-1]
    if step.single:
        row = _one(db, chain)
        return {"@iot.selfLink": links.entity(step.entity, row)}
    options = parse_options({k: v for k, v in params.items() if k != "$expand"}, step.entity)
    options.select = ["selfLink"]
    page = read_set(db, step.entity, options, links, where=step.where, nav=step.nav, scope=(step.text, "$ref"),
                    next_link=next_link_for(f"{links.base}/{step.text}/$ref", params), counts=counts)
    if not page["value"] and len(chain) > 1:
        _one(db, chain[:-1])
    return page
