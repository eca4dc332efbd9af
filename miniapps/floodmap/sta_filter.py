"""SensorThings ``$filter`` and ``$orderby`` expressions: parsed by ``odata-query`` into an AST, then
translated here into SQLAlchemy Core for one entity set, checked as they are translated.

The whole SensorThings 1.1 grammar: ``and or not``, parentheses, ``eq ne gt ge lt le in``, ``add sub mul
div mod``, the string, date, math and geospatial functions, navigation paths (``Datastream/id``,
``Datastreams/Observations/result`` read as "any of them") and nested properties (``properties/kind``).
Navigation paths become correlated ``EXISTS`` subqueries, so a filter is still one statement.

The database has no PostGIS: geospatial functions are evaluated with ``shapely`` against the locations'
points (a station stands at one point) and enter the SQL as the set of matching location ids, or for
``geo.distance`` a ``CASE`` of their distances. That read is bounded: at most ``MAX_GEO_LOCATIONS``
points (after a bounding-box cut where the function allows one), else 400 asking for a narrower filter.

Every refusal is a 400 problem naming ``$filter`` (or ``$orderby``); nothing is evaluated that did not
translate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import shapely
import shapely.wkt
from odata_query import ast, exceptions
from odata_query.grammar import ODATA_FUNCTIONS, ODataLexer, ODataParser
from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    DateTime,
    Float,
    Integer,
    Numeric,
    String,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    not_,
    null,
    or_,
    select,
    true,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.sql.selectable import Join
from sqlmodel.sql.sqltypes import UTCDateTime

from plugins import DomainError

if TYPE_CHECKING:
    from miniapps.floodmap.sensorthings import EntitySet

MAX_LENGTH = 2000
MAX_NODES = 200
MAX_DEPTH = 64  # far past any real filter; keeps the recursive walks that follow shallow
MAX_HOPS = 4
MAX_GEO_LOCATIONS = 5000
MIN_DATETIME = datetime(1, 1, 1, tzinfo=UTC)
MAX_DATETIME = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)

# SensorThings names functions OData 4.01 lacks (substringof from OData 2, the st_ relations of the OGC
# simple-features model); the parser checks calls against this table, so they are added to it.
_STA_FUNCTIONS = {"substringof": 2, "st_equals": 2, "st_disjoint": 2, "st_touches": 2, "st_within": 2,
                  "st_overlaps": 2, "st_crosses": 2, "st_intersects": 2, "st_contains": 2, "st_relate": 3,
                  "geo.length": 1}
for _name, _count in _STA_FUNCTIONS.items():
    ODATA_FUNCTIONS.setdefault(_name, _count)

_GEO_RELATIONS: dict[str, Callable[[Any, Any], bool]] = {
    "geo.intersects": shapely.intersects, "st_intersects": shapely.intersects, "st_equals": shapely.equals,
    "st_disjoint": shapely.disjoint, "st_touches": shapely.touches, "st_within": shapely.within,
    "st_overlaps": shapely.overlaps, "st_crosses": shapely.crosses, "st_contains": shapely.contains,
}
# Relations that can hold only where the two shapes' boxes meet: the points read are cut to the box.
_BOXED = {"geo.intersects", "st_intersects", "st_equals", "st_touches", "st_within", "st_overlaps", "st_crosses",
          "st_contains"}


def _bad(option: str, detail: str) -> DomainError:
    return DomainError(400, f"{option}: {detail}", field=f"query.{option}")


def parse(text: str, option: str = "$filter") -> ast._Node:
    """The AST of an OData expression; 400 naming ``option`` when it does not parse."""
    if len(text) > MAX_LENGTH:
        raise _bad(option, f"at most {MAX_LENGTH} characters")
    if not text.strip():
        raise _bad(option, "an expression is needed")
    try:
        tree = ODataParser().parse(ODataLexer().tokenize(text))
    except exceptions.UnknownFunctionException as exc:
        raise _bad(option, f"unknown function {exc.function_name!r}") from None
    except exceptions.ArgumentCountException as exc:
        low, high = exc.exp_min_args, exc.exp_max_args
        raise _bad(option, f"{exc.function_name}() takes {low}{'' if low == high else f' to {high}'} arguments, "
                           f"not {exc.n_args_given}") from None
    except exceptions.TokenizingException as exc:
        raise _bad(option, f"cannot read {text[exc.token.index:exc.token.index + 20]!r}") from None
    except exceptions.ParsingException as exc:
        where = f" near {text[exc.token.index:exc.token.index + 20]!r}" if getattr(exc, "token", None) else " (it ends early)"
        raise _bad(option, f"not an expression{where}") from None
    except (exceptions.ODataException, ValueError):
        raise _bad(option, "not an expression") from None
    if tree is None:
        raise _bad(option, "an expression is needed")
    size, depth = _size_and_depth(tree)
    if size > MAX_NODES:
        raise _bad(option, f"at most {MAX_NODES} terms")
    if depth > MAX_DEPTH:
        raise _bad(option, f"nested more than {MAX_DEPTH} levels deep")
    return tree


def _size_and_depth(tree: Any) -> tuple[int, int]:
    """The number of nodes in ``tree`` and its depth, walked without recursion: the parser builds a tree
    1,999 levels deep from ``-------...1`` and every later (recursive) walk must be spared that."""
    size = depth = 0
    stack = [(tree, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, list):
            stack.extend((child, level) for child in node)
        elif isinstance(node, ast._Node):
            size, depth = size + 1, max(depth, level)
            stack.extend((getattr(node, field), level + 1) for field in node.__dataclass_fields__)
    return size, depth


def path_of(node: ast._Node) -> list[str] | None:
    """``a/b/c`` as ``["a", "b", "c"]``; None when ``node`` is not a member path."""
    if isinstance(node, ast.Identifier):
        return [*node.namespace, node.name] if not node.namespace else None
    if isinstance(node, ast.Attribute):
        owner = path_of(node.owner)
        return None if owner is None else [*owner, node.attr]
    return None


# --- Values ------------------------------------------------------------------------------------------

NUMBER, STRING, DATETIME, BOOL, DATE, TIME, GEO, NULL = "number", "string", "date-time", "boolean", "date", \
    "time", "geometry", "null"


@dataclass
class Value:
    """A translated term: its SQL, its kind, and the navigation it reaches through (``scope``: the
    join conditions of an EXISTS the comparison holding it is wrapped in)."""

    sql: Any
    kind: str
    scope: list[Any] = field(default_factory=list)  # join conditions, and explicit joins (``Join``) of via navigations
    geo: Any = None  # kind geometry: a shapely literal, or a Point column pair (lon, lat, id) of a location
    literal: Any = None  # the Python value of a literal, for LIKE escaping and geometry literals
    is_literal: bool = False


@dataclass(frozen=True)
class GeoColumn:
    """A location's point as columns of (an alias of) the location table."""

    lon: Any
    lat: Any
    id: Any


class Translator:
    """Translates expressions over one entity set (and the sets its paths reach) on one connection."""

    def __init__(self, entity: EntitySet, db: Connection, *, option: str = "$filter", table: Any = None) -> None:
        self.entity = entity
        self.db = db
        self.option = option
        self.table = table if table is not None else entity.table
        self.dialect = db.dialect.name

    def bad(self, detail: str) -> DomainError:
        """A 400 naming the option being translated."""
        return _bad(self.option, detail)

    # -- entry points

    def condition(self, tree: ast._Node) -> Any:
        """A boolean expression as a WHERE clause."""
        value = self.term(tree)
        if value.kind != BOOL:
            raise self.bad(f"the expression is a {value.kind}, not true or false")
        return self.close(value)

    def sort_key(self, tree: ast._Node) -> Value:
        """An ``$orderby`` term (no navigation to sets: a sort key is one value per entity)."""
        value = self.term(tree)
        if value.kind == GEO:
            raise self.bad("cannot order by a geometry")
        if value.scope:  # a to-one path: the related value as a scalar subquery
            return Value(_within(select(value.sql), value.scope).limit(1).scalar_subquery(), value.kind)
        return value

    def close(self, value: Value) -> Any:
        """A boolean value's SQL, wrapped in EXISTS when it reaches through a navigation path."""
        if value.scope:
            return exists(_within(select(literal(1)), value.scope).where(value.sql))
        return value.sql

    # -- terms

    def term(self, node: ast._Node) -> Value:
        """Any term."""
        if isinstance(node, (ast.Identifier, ast.Attribute)):
            names = path_of(node)
            if names is None:
                raise self.bad(f"{getattr(node, 'name', node)!r} is not a property")
            return self.member(names)
        if isinstance(node, ast._Literal):
            return self.literal(node)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.BoolOp):
            left, right = self.boolean(node.left), self.boolean(node.right)
            joined = and_(left, right) if isinstance(node.op, ast.And) else or_(left, right)
            return Value(joined, BOOL)
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                return Value(not_(self.boolean(node.operand)), BOOL)
            operand = self.term(node.operand)
            if operand.kind != NUMBER:
                raise self.bad(f"cannot negate a {operand.kind}")
            return Value(-operand.sql, NUMBER, operand.scope)
        if isinstance(node, ast.BinOp):
            return self.arithmetic(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        raise self.bad(f"{type(node).__name__} expressions are not supported")

    def boolean(self, node: ast._Node) -> Any:
        """A boolean operand of and/or/not, closed over its own navigation."""
        value = self.term(node)
        if value.kind != BOOL:
            raise self.bad(f"and, or and not join true-or-false terms, not a {value.kind}")
        return self.close(value)

    def member(self, names: list[str]) -> Value:
        """A property path from the current entity: nested properties, navigation, or both."""
        from miniapps.floodmap.sensorthings import ENTITY_SETS

        scope: list[Any] = []
        entity, table, hops = self.entity, self.table, 0
        position = 0
        while position < len(names) and names[position] in entity.navs:
            nav = entity.navs[names[position]]
            target = ENTITY_SETS[nav.target]
            rest = names[position + 1:]
            if rest == ["id"] and nav.via is None and not nav.many and not scope:
                # Datastream/id is the foreign key itself: no subquery, and the index on it serves
                return Value(table.c[nav.parent_key], NUMBER)
            hops += 1
            if hops > MAX_HOPS:
                raise self.bad(f"at most {MAX_HOPS} navigation steps in a path")
            alias = target.table.alias()
            key, source = nav.key_of(alias)
            scope = [*scope, *([source] if source is not alias else []), key == table.c[nav.parent_key]]
            entity, table = target, alias
            position += 1
        rest = tuple(names[position:])
        if not rest:
            raise self.bad(f"{'/'.join(names)!r} is an entity, not a property; name one of its properties")
        prop = entity.props.get(rest)
        if prop is None:
            raise self.bad(f"{'/'.join(names)!r}: {entity.name} has no property {'/'.join(rest)!r}; use one of "
                           f"{', '.join(sorted('/'.join(p) for p in entity.props))}")
        if prop.geometry is not None:
            lon, lat = prop.geometry
            return Value(None, GEO, scope, geo=GeoColumn(table.c[lon], table.c[lat], table.c.id))
        if prop.constant is not None:
            return Value(literal(prop.constant), STRING, scope)
        column = table.c[prop.column]
        return Value(self._plain(column), _kind_of(column.type), scope)

    def _plain(self, column: Any) -> Any:
        # an Enum column compared with an unknown word would make SQLAlchemy raise, not the database answer
        return cast(column, String) if isinstance(column.type, SAEnum) else column

    def literal(self, node: ast._Literal) -> Value:
        """A literal as a bound parameter of its own type."""
        if isinstance(node, ast.Null):
            return Value(null(), NULL, is_literal=True)
        if isinstance(node, ast.Boolean):
            return Value(true() if node.py_val else false(), BOOL, literal=node.py_val, is_literal=True)
        if isinstance(node, ast.Integer):
            number = node.py_val
            if not -(2 ** 63) <= number < 2 ** 63:
                raise self.bad(f"{node.val} is out of range")
            return Value(literal(number, BigInteger), NUMBER, literal=number, is_literal=True)
        if isinstance(node, ast.Float):
            number = node.py_val
            if not math.isfinite(number):
                raise self.bad(f"{node.val} is out of range")
            return Value(literal(number, Float), NUMBER, literal=number, is_literal=True)
        if isinstance(node, ast.String):
            return Value(literal(node.py_val, String), STRING, literal=node.py_val, is_literal=True)
        if isinstance(node, ast.DateTime):
            try:
                when = node.py_val
            except ValueError:
                raise self.bad(f"{node.val!r} is not a date-time") from None
            if when.utcoffset() is None:
                raise self.bad(f"{node.val!r} needs a time zone (Z or +07:00)")
            return self._when(when, node.val)
        if isinstance(node, ast.Date):
            try:
                day = node.py_val
            except ValueError:
                raise self.bad(f"{node.val!r} is not a date") from None
            return Value(literal(day.isoformat(), String), DATE, literal=day, is_literal=True)
        if isinstance(node, ast.Time):
            try:
                at = node.py_val
            except ValueError:
                raise self.bad(f"{node.val!r} is not a time") from None
            return Value(literal(at.strftime("%H:%M:%S"), String), TIME, literal=at, is_literal=True)
        if isinstance(node, ast.Geography):
            try:
                shape = shapely.wkt.loads(node.val)
            except (shapely.errors.GEOSException, ValueError, TypeError):
                raise self.bad(f"geography'{node.val[:60]}' is not well-known text such as POINT(107.58 16.46)") from None
            if shape.is_empty or not shape.is_valid:
                raise self.bad(f"geography'{node.val[:60]}' is empty or not a valid shape")
            return Value(None, GEO, geo=shape, is_literal=True)
        if isinstance(node, ast.List):
            raise self.bad("a list is only allowed after 'in'")
        raise self.bad(f"{type(node).__name__} values are not supported")

    def _when(self, when: datetime, text: str = "") -> Value:
        try:
            utc = when.astimezone(UTC)
        except OverflowError:
            raise self.bad(f"{text!r} is out of range") from None
        return Value(literal(utc, UTCDateTime()), DATETIME, literal=utc, is_literal=True)

    def compare(self, node: ast.Compare) -> Value:
        """``eq ne gt ge lt le in`` between two terms of one kind (``eq null`` for a missing value)."""
        left = self.term(node.left)
        if isinstance(node.comparator, ast.In):
            if not isinstance(node.right, ast.List):
                raise self.bad("'in' takes a list in parentheses, e.g. name in ('a', 'b')")
            items = [self.term(item) for item in node.right.val]
            for item in items:
                self._same_kind(left, item, "in")
            return Value(left.sql.in_([item.sql for item in items]), BOOL, left.scope)
        right = self.term(node.right)
        if GEO in (left.kind, right.kind):
            raise self.bad("geometries are compared with the geo. and st_ functions, not eq or lt")
        scope = _merge(left.scope, right.scope)
        if NULL in (left.kind, right.kind):
            if not isinstance(node.comparator, (ast.Eq, ast.NotEq)):
                raise self.bad("null is compared with eq or ne only")
            other = right if left.kind == NULL else left
            test = other.sql.is_(None) if isinstance(node.comparator, ast.Eq) else other.sql.is_not(None)
            return Value(test, BOOL, scope)
        self._same_kind(left, right, _OPERATOR_WORDS[type(node.comparator)])
        operate = _COMPARATORS[type(node.comparator)]
        return Value(operate(left.sql, right.sql), BOOL, scope)

    def _same_kind(self, left: Value, right: Value, operator: str) -> None:
        if left.kind != right.kind and NULL not in (left.kind, right.kind):
            raise self.bad(f"cannot compare a {left.kind} with a {right.kind} ({operator})")

    def arithmetic(self, node: ast.BinOp) -> Value:
        """``add sub mul div mod`` on numbers (div and mod by zero give null, not an error)."""
        left, right = self.term(node.left), self.term(node.right)
        word = _ARITHMETIC_WORDS[type(node.op)]
        if left.kind != NUMBER or right.kind != NUMBER:
            raise self.bad(f"{word} works on numbers, not a {left.kind} and a {right.kind}")
        scope = _merge(left.scope, right.scope)
        a, b = left.sql, right.sql
        if isinstance(node.op, ast.Add):
            sql = a + b
        elif isinstance(node.op, ast.Sub):
            sql = a - b
        elif isinstance(node.op, ast.Mult):
            sql = a * b
        elif isinstance(node.op, ast.Div):
            sql = cast(a, Float) / func.nullif(cast(b, Float), 0)
        else:
            if self.dialect == "postgresql":  # PostgreSQL has no % for double precision
                sql = func.mod(cast(a, Numeric), func.nullif(cast(b, Numeric), 0))
            else:
                sql = a % func.nullif(b, 0)
        return Value(sql, NUMBER, scope)

    # -- functions

    def call(self, node: ast.Call) -> Value:
        """A function call of the SensorThings function set."""
        name = node.func.full_name()
        if name in _GEO_RELATIONS or name in ("st_relate", "geo.distance", "geo.length"):
            return self.geo_call(name, node.args)
        args = [self.term(arg) for arg in node.args]
        scope = _merge(*(a.scope for a in args))
        handler = _FUNCTIONS.get(name)
        if handler is None:
            raise self.bad(f"unknown function {name!r}")
        kinds, result_kind, build = handler
        if len(args) != len(kinds) and not (name == "substring" and len(args) == 2):
            raise self.bad(f"{name}() takes {len(kinds)} arguments")
        for arg, kind, position in zip(args, kinds, range(1, 10), strict=False):
            if arg.kind != kind and arg.kind != NULL:
                raise self.bad(f"{name}() takes a {kind} as argument {position}, not a {arg.kind}")
        return Value(build(self, *args), result_kind, scope)

    def date_part(self, part: str, value: Value) -> Any:
        """A part of a UTC date-time as a whole number (a fraction for fractionalseconds)."""
        if self.dialect == "postgresql":
            utc = func.timezone("UTC", value.sql)
            if part == "fractionalseconds":
                return func.extract("microseconds", utc) % 1_000_000 / 1_000_000.0
            return cast(func.floor(func.extract(part, utc)), Integer)
        if part == "fractionalseconds":
            return cast(func.strftime("%f", value.sql), Float) - cast(func.strftime("%S", value.sql), Float)
        pattern = {"year": "%Y", "month": "%m", "day": "%d", "hour": "%H", "minute": "%M", "second": "%S"}[part]
        return cast(func.strftime(pattern, value.sql), Integer)

    def day_of(self, value: Value) -> Any:
        """The UTC date of a date-time as YYYY-MM-DD text, which compares as dates do."""
        if self.dialect == "postgresql":
            return func.to_char(func.timezone("UTC", value.sql), "YYYY-MM-DD")
        return func.date(value.sql)

    def time_of(self, value: Value) -> Any:
        """The UTC time of day of a date-time as HH:MM:SS text."""
        if self.dialect == "postgresql":
            return func.to_char(func.timezone("UTC", value.sql), "HH24:MI:SS")
        return func.time(value.sql)

    def position(self, haystack: Any, needle: Any) -> Any:
        """1-based position of ``needle`` in ``haystack``, 0 when absent (case-sensitive on both databases)."""
        return func.strpos(haystack, needle) if self.dialect == "postgresql" else func.instr(haystack, needle)

    def ends_with(self, text: Any, end: Any) -> Any:
        """Whether ``text`` ends with ``end``, compared exactly."""
        if self.dialect == "postgresql":
            return func.right(text, func.length(end)) == end
        return or_(func.length(end) == 0, func.substr(text, -func.length(end)) == end)

    def geo_call(self, name: str, nodes: list[ast._Node]) -> Value:
        """A geospatial function: one side a location's point, the other a literal shape."""
        args = [self.term(arg) for arg in nodes]
        if name == "geo.length":
            [shape] = args
            if shape.kind != GEO or not shape.is_literal:
                raise self.bad("geo.length() measures a geography literal")
            return Value(literal(float(shapely.length(shape.geo)), Float), NUMBER)
        extra = None
        if name == "st_relate":
            if args[2].kind != STRING or not args[2].is_literal:
                raise self.bad("st_relate() takes an intersection pattern such as 'T*F**F***' as argument 3")
            extra, args = args[2].literal, args[:2]
            if len(extra) != 9 or set(extra) - set("TF*012"):
                raise self.bad(f"{extra!r} is not a DE-9IM pattern of nine of T, F, *, 0, 1 or 2")
        if any(a.kind != GEO for a in args):
            raise self.bad(f"{name}() takes geometries (a location or a geography'...' literal)")
        columns = [a for a in args if not a.is_literal]
        if len(columns) > 1:
            raise self.bad(f"{name}() relates a location to a geography'...' literal, not two locations")
        scope = _merge(*(a.scope for a in args))
        if not columns:  # two literals: a constant
            a, b = (x.geo for x in args)
            if name == "geo.distance":
                return Value(literal(float(shapely.distance(a, b)), Float), NUMBER)
            held = a.relate_pattern(b, extra) if extra else bool(_GEO_RELATIONS[name](a, b))
            return Value(true() if held else false(), BOOL)
        point = columns[0].geo
        shape = next(a.geo for a in args if a.is_literal)
        first_is_point = not args[0].is_literal
        box = shape.bounds if name in _BOXED else None
        places = self._points(point, box)

        def relate(p: Any) -> Any:
            a, b = (p, shape) if first_is_point else (shape, p)
            if name == "geo.distance":
                return float(shapely.distance(a, b))
            return a.relate_pattern(b, extra) if extra else bool(_GEO_RELATIONS[name](a, b))

        measured = {place_id: relate(shapely.Point(lon, lat)) for place_id, lon, lat in places}
        if name == "geo.distance":
            if not measured:
                return Value(null(), NUMBER, scope)
            return Value(case(measured, value=point.id, else_=null()), NUMBER, scope)
        chosen = sorted(place_id for place_id, held in measured.items() if held)
        return Value(point.id.in_(chosen) if chosen else false(), BOOL, scope)

    def _points(self, point: GeoColumn, box: tuple[float, float, float, float] | None) -> list[Any]:
        """Every location's point (within ``box``), at most MAX_GEO_LOCATIONS of them."""
        lon, lat = point.lon, point.lat
        query = select(point.id, lon, lat)
        if box is not None:
            query = query.where(lon >= box[0], lon <= box[2], lat >= box[1], lat <= box[3])
        rows = self.db.execute(query.limit(MAX_GEO_LOCATIONS + 1)).all()
        if len(rows) > MAX_GEO_LOCATIONS:
            raise self.bad(f"the shape holds more than {MAX_GEO_LOCATIONS} locations; use a smaller one")
        return rows


def _within(query: Any, scope: list[Any]) -> Any:
    """``query`` reading from the explicit joins of ``scope`` and narrowed by its conditions."""
    joins = [item for item in scope if isinstance(item, Join)]
    conditions = [item for item in scope if not isinstance(item, Join)]
    return (query.select_from(*joins) if joins else query).where(*conditions)


def _merge(*scopes: list[Any]) -> list[Any]:
    merged: list[Any] = []
    for scope in scopes:
        for condition in scope:
            if not any(condition is seen for seen in merged):
                merged.append(condition)
    return merged


def _kind_of(column_type: Any) -> str:
    base = getattr(column_type, "impl", column_type)
    if isinstance(column_type, UTCDateTime) or isinstance(base, DateTime):
        return DATETIME
    if isinstance(base, Boolean):
        return BOOL
    if isinstance(base, (Integer, Float, Numeric)):
        return NUMBER
    return STRING


_COMPARATORS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b, ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b,
}
_OPERATOR_WORDS = {ast.Eq: "eq", ast.NotEq: "ne", ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge"}
_ARITHMETIC_WORDS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Mod: "mod"}

S, N, D = STRING, NUMBER, DATETIME
_FUNCTIONS: dict[str, tuple[tuple[str, ...], str, Callable[..., Any]]] = {
    # strings: compared exactly (SQLite's LIKE ignores case, PostgreSQL's does not), positions 0-based
    "substringof": ((S, S), BOOL, lambda t, a, b: t.position(b.sql, a.sql) > 0),
    "contains": ((S, S), BOOL, lambda t, a, b: t.position(a.sql, b.sql) > 0),
    "startswith": ((S, S), BOOL, lambda t, a, b: func.substr(a.sql, 1, func.length(b.sql)) == b.sql),
    "endswith": ((S, S), BOOL, lambda t, a, b: t.ends_with(a.sql, b.sql)),
    "length": ((S,), N, lambda t, a: func.length(a.sql)),
    "indexof": ((S, S), N, lambda t, a, b: t.position(a.sql, b.sql) - 1),
    "substring": ((S, N, N), S, lambda t, a, start, count=None: func.substr(a.sql, cast(start.sql + 1, Integer))
                  if count is None else func.substr(a.sql, cast(start.sql + 1, Integer),
                                                    cast(case((count.sql < 0, 0), else_=count.sql), Integer))),
    "tolower": ((S,), S, lambda t, a: func.lower(a.sql)),
    "toupper": ((S,), S, lambda t, a: func.upper(a.sql)),
    "trim": ((S,), S, lambda t, a: func.trim(a.sql)),
    "concat": ((S, S), S, lambda t, a, b: a.sql.concat(b.sql)),
    # date and time, in UTC
    **{part: ((D,), N, lambda t, a, part=part: t.date_part(part, a))
       for part in ("year", "month", "day", "hour", "minute", "second", "fractionalseconds")},
    "date": ((D,), DATE, lambda t, a: t.day_of(a)),
    "time": ((D,), TIME, lambda t, a: t.time_of(a)),
    "totaloffsetminutes": ((D,), N, lambda t, a: literal(0, Integer)),
    "now": ((), D, lambda t: t._when(datetime.now(UTC)).sql),
    "mindatetime": ((), D, lambda t: t._when(MIN_DATETIME).sql),
    "maxdatetime": ((), D, lambda t: t._when(MAX_DATETIME).sql),
    # math
    "round": ((N,), N, lambda t, a: func.round(cast(a.sql, Numeric)) if t.dialect == "postgresql" else func.round(a.sql)),
    # SQLAlchemy gives SQLite a Python floor() that fails on null: CASE keeps null away from it
    "floor": ((N,), N, lambda t, a: case((a.sql.is_(None), null()), else_=func.floor(a.sql))),
    "ceiling": ((N,), N, lambda t, a: func.ceil(a.sql)),
}
