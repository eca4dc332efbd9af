"""The read API in the style of OGC SensorThings 1.1: entity sets, links, and the query options
``$top``, ``$skip``, ``$count``, ``$orderby``, ``$filter`` (a small, safe subset) and ``$expand``.

``$filter`` understands ``<property> <op> <literal>`` joined by ``and``, where op is one of
``eq ne gt ge lt le`` and a literal is a number, an ISO 8601 date-time or a quoted string. Anything
else is refused with 400 naming ``$filter``, never evaluated.

Paging is keyset: ``@iot.nextLink`` carries a ``$skiptoken`` holding the last row's sort key, so the
next page starts at that key in an index however deep it is (a datastream holds 263,000 readings a
five years). ``$skip`` is honoured up to ``MAX_SKIP`` rows, beyond which it would scan what it skips.
A datastream's Observations are ordered by phenomenonTime unless asked otherwise: it is unique per
datastream and indexed with it. ``$count`` is exact, and cached for ``COUNT_SECONDS`` per query.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, NamedTuple
from urllib.parse import urlencode

from cachetools import TTLCache
from sqlalchemy import (
    BigInteger,
    Connection,
    DateTime,
    Select,
    SmallInteger,
    and_,
    func,
    or_,
    select,
)

from core.errors import Problem
from miniapps.floodmap.models import (
    FloodDatastream,
    FloodLocation,
    FloodObservation,
    FloodObservedProperty,
    FloodSensor,
    FloodThing,
)

VERSION = "v1.1"
DEFAULT_TOP = 100
MAX_TOP = 1000
MAX_EXPAND_DEPTH = 3
MAX_SKIP = 10_000
COUNT_SECONDS = 30.0
MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
CONFORMANCE = [
    "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
]


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z"  # isoformat of a UTC time always ends in +00:00


def _kind(value: Any) -> str:
    return value.value if hasattr(value, "value") else str(value)


@dataclass(frozen=True)
class Nav:
    """A navigation property: the entity set it leads to, whether it is a set, and how to select it.

    ``unique`` names the target properties that are unique among the related entities (a datastream
    has one Observation per phenomenonTime), ``order`` the default order of the related set; both let
    a page be read straight from the index that makes them unique. ``by_id``: ``where`` reads only the
    parent's id, so a page of the set needs no read of the parent first.
    """

    target: str
    many: bool
    where: Callable[[Any], Any]
    unique: frozenset[str] = frozenset({"id"})
    order: tuple[tuple[str, bool], ...] = ()
    by_id: bool = True


@dataclass(frozen=True)
class EntitySet:
    """One SensorThings entity set backed by one table.

    Entities are read as rows of plain columns, not ORM objects: a page of 100-1000 Observations is then
    a tuple per reading for ``to_json`` to turn into a dict, with no instance state built and discarded.
    """

    name: str
    model: Any
    fields: dict[str, Any]
    navs: dict[str, Nav]
    to_json: Callable[[Any], dict[str, Any]]
    hidden: frozenset[str] = frozenset()  # columns never read for the API (a sensor's key hash)

    @cached_property
    def link_names(self) -> tuple[tuple[str, str], ...]:
        """(navigation property, its ``@iot.navigationLink`` key), built once rather than per entity."""
        return tuple((name, f"{name}@iot.navigationLink") for name in self.navs)

    def select(self) -> Select:
        """The entity's columns (without ``hidden`` ones), as a query to narrow."""
        return select(*(c for c in self.model.__table__.columns if c.key not in self.hidden))


def _thing(t: FloodThing) -> dict[str, Any]:
    return {"name": t.name, "description": t.description, "properties": {
        "code": t.code, "kind": _kind(t.kind), "unit_id": t.unit_id, "warn_units": list(t.warn_units),
        "synthetic": t.synthetic, "alert_level": t.level, "stale": t.stale,
        "camera_url": t.camera_url, "camera_image_at": _iso(t.camera_image_at)}}


def _location(loc: FloodLocation) -> dict[str, Any]:
    return {"name": loc.name, "description": loc.description, "encodingType": "application/geo+json",
            "location": {"type": "Point", "coordinates": [loc.lon, loc.lat]}}


def _sensor(s: FloodSensor) -> dict[str, Any]:
    return {"name": s.name, "description": s.description, "encodingType": s.encoding_type,
            "metadata": s.sensor_metadata}


def _observed_property(p: FloodObservedProperty) -> dict[str, Any]:
    return {"name": p.name, "definition": p.definition, "description": p.description}


def _datastream(d: FloodDatastream) -> dict[str, Any]:
    return {"name": d.name, "description": d.description, "observationType": MEASUREMENT,
            "unitOfMeasurement": {"name": d.unit_name, "symbol": d.unit_symbol, "definition": d.unit_definition},
            "properties": {"alarm_levels": [d.level_1, d.level_2, d.level_3], "drives_alert": d.drives_alert,
                           "stale_after_minutes": d.stale_after_minutes}}


def _observation(o: FloodObservation) -> dict[str, Any]:
    return {"phenomenonTime": _iso(o.phenomenon_time), "resultTime": _iso(o.result_time), "result": o.result}


ENTITY_SETS: dict[str, EntitySet] = {
    "Things": EntitySet("Things", FloodThing, {"id": FloodThing.id, "name": FloodThing.name}, {
        "Locations": Nav("Locations", True, lambda t: FloodLocation.thing_id == t.id),
        "Datastreams": Nav("Datastreams", True, lambda t: FloodDatastream.thing_id == t.id),
    }, _thing),
    "Locations": EntitySet("Locations", FloodLocation, {"id": FloodLocation.id, "name": FloodLocation.name}, {
        "Things": Nav("Things", True, lambda loc: FloodThing.id == loc.thing_id, by_id=False),
    }, _location),
    "Sensors": EntitySet("Sensors", FloodSensor, {"id": FloodSensor.id, "name": FloodSensor.name}, {
        "Datastreams": Nav("Datastreams", True, lambda s: FloodDatastream.sensor_id == s.id),
    }, _sensor, hidden=frozenset({"key_hash"})),
    "ObservedProperties": EntitySet("ObservedProperties", FloodObservedProperty, {
        "id": FloodObservedProperty.id, "name": FloodObservedProperty.name}, {
        "Datastreams": Nav("Datastreams", True, lambda p: FloodDatastream.observed_property_id == p.id),
    }, _observed_property),
    "Datastreams": EntitySet("Datastreams", FloodDatastream, {"id": FloodDatastream.id, "name": FloodDatastream.name}, {
        "Thing": Nav("Things", False, lambda d: FloodThing.id == d.thing_id, by_id=False),
        "Sensor": Nav("Sensors", False, lambda d: FloodSensor.id == d.sensor_id, by_id=False),
        "ObservedProperty": Nav("ObservedProperties", False, lambda d: FloodObservedProperty.id == d.observed_property_id,
                                by_id=False),
        "Observations": Nav("Observations", True, lambda d: FloodObservation.datastream_id == d.id,
                            unique=frozenset({"id", "phenomenonTime"}), order=(("phenomenonTime", False),)),
    }, _datastream),
    "Observations": EntitySet("Observations", FloodObservation, {
        "id": FloodObservation.id, "phenomenonTime": FloodObservation.phenomenon_time,
        "resultTime": FloodObservation.result_time, "result": FloodObservation.result}, {
        "Datastream": Nav("Datastreams", False, lambda o: FloodDatastream.id == o.datastream_id, by_id=False),
    }, _observation),
}


# --- Query options --------------------------------------------------------------------------------


@dataclass
class Options:
    """The query options of one level of a request (the top level, or one ``$expand`` item)."""

    top: int = DEFAULT_TOP
    skip: int = 0
    after: list[Any] | None = None  # from $skiptoken: the sort key of the last row of the previous page
    count: bool = False
    orderby: list[tuple[str, bool]] = field(default_factory=list)  # (property, descending)
    filter: list[tuple[str, str, Any]] = field(default_factory=list)
    expand: dict[str, Options] = field(default_factory=dict)


def _bad(option: str, detail: str) -> Problem:
    return Problem(400, f"{option}: {detail}", field=f"query.{option}")


def parse_options(raw: dict[str, str], entity: EntitySet, *, depth: int = 0) -> Options:
    """Options from query parameters (or from an ``$expand`` item's ``(...)``), checked against ``entity``."""
    options = Options()
    if "$top" in raw:
        options.top = _int_option("$top", raw["$top"], MAX_TOP)
    if "$skip" in raw:
        options.skip = _int_option("$skip", raw["$skip"], MAX_SKIP,
                                   hint="; for deeper pages follow @iot.nextLink, which pages by key")
    if "$count" in raw:
        if raw["$count"] not in ("true", "false"):
            raise _bad("$count", "use true or false")
        options.count = raw["$count"] == "true"
    if "$orderby" in raw:
        options.orderby = _orderby(raw["$orderby"], entity)
    if "$filter" in raw:
        options.filter = parse_filter(raw["$filter"], entity)
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


def _encode_token(key: list[Any]) -> str:
    """A page's last sort key as an opaque, URL-safe ``$skiptoken``."""
    plain = [v.astimezone(UTC).isoformat() if isinstance(v, datetime) else v for v in key]
    return base64.urlsafe_b64encode(json.dumps(plain, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_token(token: str) -> list[Any]:
    """The sort key a ``$skiptoken`` holds (checked against the order when the query is built)."""
    try:
        key = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError:
        raise _bad("$skiptoken", "not a token this server gave in @iot.nextLink") from None
    if not isinstance(key, list) or not all(isinstance(v, int | float | str) and not isinstance(v, bool) for v in key):
        raise _bad("$skiptoken", "not a token this server gave in @iot.nextLink")
    return key


def _orderby(value: str, entity: EntitySet) -> list[tuple[str, bool]]:
    order = []
    for part in value.split(","):
        words = part.split()
        if not words or len(words) > 2 or words[0] not in entity.fields or (len(words) == 2 and words[1] not in ("asc", "desc")):
            raise _bad("$orderby", f"'{part.strip()}': order by one of {sorted(entity.fields)}, then asc or desc")
        order.append((words[0], len(words) == 2 and words[1] == "desc"))
    return order


_TOKEN = re.compile(r"'(?:[^']|'')*'|[^\s()]+|[()]")
_OPERATORS = {"eq": "__eq__", "ne": "__ne__", "gt": "__gt__", "ge": "__ge__", "lt": "__lt__", "le": "__le__"}
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$", re.ASCII)


def parse_filter(text: str, entity: EntitySet) -> list[tuple[str, str, Any]]:
    """``a op x and b op y ...`` as (property, operator, value) triples; 400 naming $filter otherwise."""
    if len(text) > 500:
        raise _bad("$filter", "at most 500 characters")
    tokens = _TOKEN.findall(text)
    terms = []
    position = 0
    while True:
        if len(tokens) < position + 3:
            raise _bad("$filter", "expected '<property> <eq|ne|gt|ge|lt|le> <value>' joined by 'and'")
        name, operator, literal = tokens[position:position + 3]
        if name not in entity.fields:
            raise _bad("$filter", f"unknown property {name!r}; filter on one of {sorted(entity.fields)}")
        if operator not in _OPERATORS:
            raise _bad("$filter", f"unknown operator {operator!r}; use eq, ne, gt, ge, lt or le")
        terms.append((name, operator, _literal(literal, entity.fields[name])))
        position += 3
        if position == len(tokens):
            return terms
        if tokens[position] != "and":
            raise _bad("$filter", f"unsupported {tokens[position]!r}: only 'and' joins comparisons")
        position += 1


def _literal(token: str, column: Any) -> Any:
    column_type = column.type
    python_type = datetime if isinstance(getattr(column_type, "impl", column_type), DateTime) else column_type.python_type
    if python_type is datetime:
        try:
            value = datetime.fromisoformat(token[:-1] + "+00:00" if token.endswith("Z") else token)
        except ValueError:
            raise _bad("$filter", f"{token!r} is not an ISO 8601 date-time such as 2026-11-25T12:00:00Z") from None
        if value.utcoffset() is None:
            raise _bad("$filter", f"{token!r} needs a time zone (Z or +07:00)")
        try:
            return value.astimezone(UTC)
        except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is a year-0 instant, beyond datetime
            raise _bad("$filter", f"{token!r} is out of range") from None
    if python_type in (int, float):
        if not _NUMBER.match(token):
            raise _bad("$filter", f"{token!r} is not a number")
        if python_type is int and "." not in token and "e" not in token.lower():
            value = int(token)
            if not _fits(column_type, value):  # the database refuses the bound parameter with a 500
                raise _bad("$filter", f"{token!r} is out of range")
            return value
        return float(token)
    if len(token) >= 2 and token[0] == token[-1] == "'":
        return token[1:-1].replace("''", "'")
    raise _bad("$filter", f"{token!r}: quote text values, e.g. name eq 'Kim Long'")


def _fits(column_type: Any, value: int) -> bool:
    """Whether ``value`` fits the integer column type (PostgreSQL's sizes; SQLite's are no smaller)."""
    bits = 64 if isinstance(column_type, BigInteger) else 16 if isinstance(column_type, SmallInteger) else 32
    return -(2 ** (bits - 1)) <= value < 2 ** (bits - 1)


def _split_top(text: str, separator: str) -> list[str]:
    """Split at ``separator`` outside parentheses."""
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise _bad("$expand", "unbalanced parentheses")
        if char == separator and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise _bad("$expand", "unbalanced parentheses")
    parts.append("".join(current))
    return parts


_SEGMENT = re.compile(r"^([A-Za-z]+)(?:\((.*)\))?$", re.DOTALL)


def parse_expand(text: str, entity: EntitySet, *, depth: int = 0) -> dict[str, Options]:
    """``Datastreams/Observations($top=1;$orderby=phenomenonTime desc),Locations`` as a tree of Options."""
    tree: dict[str, Options] = {}
    for item in _split_top(text, ","):
        item = item.strip()
        segments = _split_top(item, "/")
        node_entity, node_tree, level = entity, tree, depth
        for segment in segments:
            match = _SEGMENT.match(segment.strip())
            if match is None or match.group(1) not in node_entity.navs:
                raise _bad("$expand", f"{segment.strip()!r} is not a navigation property of {node_entity.name} "
                                      f"({', '.join(sorted(node_entity.navs))})")
            name, inner = match.group(1), match.group(2)
            target = ENTITY_SETS[node_entity.navs[name].target]
            raw: dict[str, str] = {}
            for option in _split_top(inner, ";") if inner else []:
                key, sep, value = option.partition("=")
                if not sep or key.strip() not in ("$top", "$skip", "$count", "$orderby", "$filter", "$expand"):
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


def _apply(query: Select, entity: EntitySet, options: Options) -> Select:
    for name, operator, value in options.filter:
        query = query.where(getattr(entity.fields[name], _OPERATORS[operator])(value))
    return query


def _order(entity: EntitySet, options: Options, *, unique: frozenset[str], default: tuple[tuple[str, bool], ...]
           ) -> list[tuple[str, bool]]:
    """The full sort key: what was asked (or the default), then ``id`` unless the key is already unique."""
    order = list(options.orderby or default)
    if not any(name in unique for name, _ in order):
        order.append(("id", False))
    return order


def _after(entity: EntitySet, order: list[tuple[str, bool]], key: list[Any]) -> Any:
    """Rows after ``key`` in ``order``: ``a > x OR (a = x AND b > y) ...``, led by ``a >= x`` so the
    database starts the scan at the key in an index on ``a``."""
    if len(key) != len(order):
        raise _bad("$skiptoken", "this token belongs to another $orderby; start again from the first page")
    columns = [entity.fields[name] for name, _ in order]
    values = [_token_value(column, value) for column, value in zip(columns, key, strict=True)]
    alternatives = []
    for depth, ((_, desc), column, value) in enumerate(zip(order, columns, values, strict=True)):
        equal = [columns[i] == values[i] for i in range(depth)]
        alternatives.append(and_(*equal, column < value if desc else column > value))
    lead = columns[0] <= values[0] if order[0][1] else columns[0] >= values[0]
    return and_(lead, or_(*alternatives))


def _token_value(column: Any, value: Any) -> Any:
    column_type = column.type
    if isinstance(getattr(column_type, "impl", column_type), DateTime):
        try:
            when = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            when = None
        if when is None or when.utcoffset() is None:
            raise _bad("$skiptoken", "not a token this server gave in @iot.nextLink")
        return when
    if column_type.python_type is str:
        if not isinstance(value, str):
            raise _bad("$skiptoken", "not a token this server gave in @iot.nextLink")
        return value
    if isinstance(value, str) or (column_type.python_type is int and not isinstance(value, int)) \
            or (isinstance(value, int) and column_type.python_type is int and not _fits(column_type, value)):
        raise _bad("$skiptoken", "not a token this server gave in @iot.nextLink")
    return value


@dataclass
class Links:
    """Builds the absolute links of a response."""

    base: str  # .../api/miniapps/floodmap/v1.1

    def entity(self, entity: EntitySet, obj: Any) -> str:
        """An entity's @iot.selfLink."""
        return f"{self.base}/{entity.name}({obj.id})"


def render(db: Connection, entity: EntitySet, obj: Any, options: Options, links: Links) -> dict[str, Any]:
    """One entity (a row of ``entity.select()``) with its links and whatever ``options.expand`` asks to inline."""
    self_link = f"{links.base}/{entity.name}({obj.id})"
    body: dict[str, Any] = {"@iot.id": obj.id, "@iot.selfLink": self_link}
    body.update(entity.to_json(obj))
    expand = options.expand
    for name, link_name in entity.link_names:
        if not expand or name not in expand:
            body[link_name] = f"{self_link}/{name}"
        else:
            nav, sub = entity.navs[name], expand[name]
            target = ENTITY_SETS[nav.target]
            if nav.many:
                page = read_set(db, target, sub, links, where=nav.where(obj), nav=nav, scope=(entity.name, obj.id, name))
                body[name] = page["value"]
                if "@iot.count" in page:
                    body[f"{name}@iot.count"] = page["@iot.count"]
            else:
                related = related_one(db, target, nav.where(obj))
                body[name] = render(db, target, related, sub, links) if related is not None else None
    return body


def related_one(db: Connection, entity: EntitySet, where: Any) -> Any:
    """The one entity (a row) that ``where`` selects, or None."""
    return db.execute(entity.select().where(where).limit(1)).first()


def read_set(db: Connection, entity: EntitySet, options: Options, links: Links, *, where: Any = None,
             nav: Nav | None = None, next_link: Callable[[str], str] | None = None,
             scope: tuple[Any, ...] = ()) -> dict[str, Any]:
    """A page of an entity set (of the entities related through ``nav`` when ``where`` selects them):
    ``value``, and ``@iot.count`` / ``@iot.nextLink`` when asked or needed.

    ``scope`` names what ``where`` selects (parent set, parent id, target set), for the count cache.
    """
    query = entity.select()
    if where is not None:
        query = query.where(where)
    query = _apply(query, entity, options)
    body: dict[str, Any] = {}
    if options.count:
        body["@iot.count"] = count_of(db, query, (entity.name, scope, tuple(options.filter)))
    order = _order(entity, options, unique=nav.unique if nav else frozenset({"id"}), default=nav.order if nav else ())
    if options.after is not None:
        query = query.where(_after(entity, order, options.after))
    columns = [entity.fields[name] for name, _ in order]
    query = query.order_by(*[c.desc() if desc else c.asc() for c, (_, desc) in zip(columns, order, strict=True)])
    rows = db.execute(query.offset(options.skip).limit(options.top + 1)).all()
    more = len(rows) > options.top
    rows = rows[: options.top]
    if more and next_link is not None and rows:
        last = rows[-1]
        body["@iot.nextLink"] = next_link(_encode_token([getattr(last, c.key) for c in columns]))
    if options.expand:
        body["value"] = [render(db, entity, row, options, links) for row in rows]
    else:
        body["value"] = _plain_page(entity, rows, links)
    return body


def _plain_page(entity: EntitySet, rows: list[Any], links: Links) -> list[dict[str, Any]]:
    """``render`` for a page without ``$expand``: the same entities, with the link prefix and the
    navigation link keys looked up once per page instead of once per entity."""
    prefix = f"{links.base}/{entity.name}("
    link_names = entity.link_names
    to_json = entity.to_json
    page = []
    for row in rows:
        self_link = f"{prefix}{row.id})"
        body = {"@iot.id": row.id, "@iot.selfLink": self_link, **to_json(row)}
        for name, link_name in link_names:
            body[link_name] = f"{self_link}/{name}"
        page.append(body)
    return page


_counts: TTLCache[tuple[str, tuple[Any, ...]], int] = TTLCache(maxsize=1024, ttl=COUNT_SECONDS)
_counts_lock = threading.Lock()


def count_of(db: Connection, query: Select, key: tuple[Any, ...]) -> int:
    """How many rows ``query`` selects, remembered for COUNT_SECONDS under ``key`` (what the query
    selects: set, scope and filter terms) and the database: a client paging through a datastream with
    ``$count=true`` counts its readings once, not once per page. The key is built from the request's
    terms rather than the compiled SQL, so a remembered count costs no compilation."""
    key = (db.engine.url.render_as_string(hide_password=False), *key)
    with _counts_lock:
        found = _counts.get(key)
    if found is None:
        found = db.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
        with _counts_lock:
            _counts[key] = found
    return found


def next_link_for(url: str, params: dict[str, str]) -> Callable[[str], str]:
    """A function giving the same request's URL continuing after a page's last row (``$skiptoken``)."""
    rest = {k: v for k, v in params.items() if k not in ("$skip", "$skiptoken")}

    def make(token: str) -> str:
        return f"{url}?{urlencode({**rest, '$skiptoken': token})}"

    return make


class _Parent(NamedTuple):
    """An entity known only by its id: all that a ``Nav.by_id`` set needs of its parent."""

    id: int


def read_related_set(db: Connection, entity: EntitySet, entity_id: int, nav: Nav, options: Options, links: Links, *,
                     next_link: Callable[[str], str] | None = None) -> dict[str, Any]:
    """A page of the set ``nav`` leads to from ``entity_id``; 404 problem when that entity does not exist.

    A set selected by the parent's id is read at once, and the parent looked up only when the page is
    empty: a page of a datastream's Observations is one query, not two.
    """
    target = ENTITY_SETS[nav.target]
    id_type = entity.model.__table__.c.id.type  # type: ignore[attr-defined]
    parent = _Parent(entity_id) if nav.by_id and _fits(id_type, entity_id) else get_entity(db, entity, entity_id)
    page = read_set(db, target, options, links, where=nav.where(parent), nav=nav, next_link=next_link,
                    scope=(entity.name, entity_id, nav.target))
    if not page["value"] and isinstance(parent, _Parent):
        get_entity(db, entity, entity_id)  # an empty page, or no such parent
    return page


def get_entity(db: Connection, entity: EntitySet, entity_id: int) -> Any:
    """The entity with this id (a row of ``entity.select()``); 404 problem when there is none."""
    id_column = entity.model.__table__.c.id  # type: ignore[attr-defined]
    # an id beyond the column's range cannot exist, and the database would refuse the lookup with a 500
    obj = related_one(db, entity, id_column == entity_id) if _fits(id_column.type, entity_id) else None
    if obj is None:
        raise Problem(404, f"no {entity.name}({entity_id})", field="path.entity_id")
    return obj


def service_document(base: str) -> dict[str, Any]:
    """The service root: one link per entity set, and the conformance classes served."""
    return {"value": [{"name": name, "url": f"{base}/{name}"} for name in ENTITY_SETS],
            "serverSettings": {"conformance": CONFORMANCE}}
