"""OGC SensorThings API 1.1 over the flood map's tables: the eight entity sets, how each entity is written
as JSON, its links and the service document.

Entity sets: Things, Locations, HistoricalLocations, Sensors, ObservedProperties, Datastreams,
Observations, FeaturesOfInterest, MultiDatastreams, each a table of its own. A Location's ``thing_id`` is
the station standing there now; HistoricalLocations record each placing; an Observation names its
FeatureOfInterest by an indexed foreign key (made from its station's Location when none was given).

The rest of the API: resource paths in ``sta_paths``, query options in ``sta_options``, pages of a set
(paging, ``$count``, ``$expand``) in ``sta_read``, ``$filter``/``$orderby`` expressions in ``sta_filter``,
writes in ``sta_write`` and batches in ``sta_batch``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from sqlalchemy import BigInteger, Connection, Select, SmallInteger, select

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
from plugins import DomainError

VERSION = "v1.1"
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
    f"{_REQ}create-update-delete",
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
    ``via`` gives that key through another table instead (a MultiDatastream's ObservedProperties through
    its components), and ``position`` names that table's column giving the related entities' order (the
    component order) when no ``$orderby`` is asked. ``unique`` names target properties unique among the related
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
    position: str | None = None

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


def _historical_location(place: Any) -> dict[str, Any]:
    return {"time": _iso(place.time)}


def _feature(feature: Any) -> dict[str, Any]:
    return {"name": feature.name, "description": feature.description, "encodingType": feature.encoding_type,
            "feature": _point(feature)}


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
        "HistoricalLocations": Nav("HistoricalLocations", True, "id", "location_id"),
    }, _location, ("id", "selfLink", "name", "description", "encodingType", "location")),
    "HistoricalLocations": EntitySet("HistoricalLocations", FloodHistoricalLocation, _props(
        id=C("id"), time=C("time")), {
        "Thing": Nav("Things", False, "thing_id"),
        "Locations": Nav("Locations", True, "location_id"),
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
        "FeatureOfInterest": Nav("FeaturesOfInterest", False, "feature_id"),
    }, _observation, ("id", "selfLink", "phenomenonTime", "resultTime", "result")),
    "FeaturesOfInterest": EntitySet("FeaturesOfInterest", FloodFeature, _props(
        **_NAMED, encodingType=C("encoding_type"), feature=Prop(geometry=("lon", "lat"))), {
        "Observations": Nav("Observations", True, "id", "feature_id"),
    }, _feature, ("id", "selfLink", "name", "description", "encodingType", "feature")),
    "MultiDatastreams": EntitySet("MultiDatastreams", FloodMultiDatastream, _props(
        **_NAMED, observationType=Prop(constant=COMPLEX)), {
        "Thing": Nav("Things", False, "thing_id"),
        "Sensor": Nav("Sensors", False, "sensor_id"),
        "ObservedProperties": Nav("ObservedProperties", True, "id", via=_properties_of_multi, position="position"),
        "Observations": Nav("Observations", True, "id", "multi_datastream_id", **_BY_TIME),
    }, _multi_datastream, ("id", "selfLink", "name", "description", "observationType", "multiObservationDataTypes",
                           "unitOfMeasurements"), enrich=_components),
}


@dataclass
class Links:
    """Builds the absolute links of a response."""

    base: str  # .../api/miniapps/floodmap/v1.1

    def entity(self, entity: EntitySet, obj: Any) -> str:
        """An entity's @iot.selfLink."""
        return f"{self.base}/{entity.name}({obj.id})"


def _fits(column_type: Any, value: int) -> bool:
    """Whether ``value`` fits the integer column type (PostgreSQL's sizes; SQLite's are no smaller)."""
    bits = 64 if isinstance(column_type, BigInteger) else 16 if isinstance(column_type, SmallInteger) else 32
    return -(2 ** (bits - 1)) <= value < 2 ** (bits - 1)


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
