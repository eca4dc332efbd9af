"""Reading SensorThings entity sets: a page in order, keyset paging, ``$count``, ``$expand`` inlined and
the data array format.

Query cost is bounded: ``$expand`` at most ``MAX_EXPANDED`` related entities a request, and an expanded
level is one query for every parent of a page (a LATERAL join on PostgreSQL, a window on SQLite), never
one per entity.

Paging is keyset: ``@iot.nextLink`` carries a ``$skiptoken`` holding the last row's sort key, so the next
page starts at that key in an index however deep it is (a datastream holds 263,000 readings a five
years). An order by a computed term pages by ``$skip`` instead, up to ``MAX_SKIP`` rows. A datastream's
Observations are ordered by phenomenonTime unless asked otherwise: it is unique per datastream and
indexed with it. ``$count`` is exact, and cached for ``COUNT_SECONDS`` per query.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Column, Connection, DateTime, Integer, Select, and_, func, or_, select, true
from sqlalchemy.dialects import postgresql

from miniapps.floodmap import sta_filter
from miniapps.floodmap.sensorthings import ENTITY_SETS, EntitySet, Links, Nav, _fits, _iso
from miniapps.floodmap.sta_options import MAX_SKIP, Options, _bad, _encode_token
from plugins import Cache

MAX_EXPANDED = 20_000  # related entities one request may inline (parents x $top, per level)
MINIAPP = "floodmap"
COUNT_SECONDS = 30.0


@dataclass
class _Key:
    """One term of a page's sort order: its SQL, its direction, and the column it is (for keyset pages)."""

    sql: Any
    desc: bool
    column: str | None


def _sort(db: Connection, entity: EntitySet, options: Options, *, table: Any = None,
          unique: frozenset[str] = frozenset({"id"}), default: tuple[tuple[str, bool], ...] = (),
          position: Any = None) -> list[_Key]:
    """The full sort key: what was asked (or the default, or ``position``: an expression giving the
    related entities' order, a MultiDatastream's component order), then ``id`` unless the key is already
    unique."""
    table = entity.table if table is None else table
    keys: list[_Key] = []
    if options.orderby:
        translate = sta_filter.Translator(entity, db, option="$orderby", table=table)
        for tree, desc in options.orderby:
            value = translate.sort_key(tree)
            column = value.sql.key if isinstance(value.sql, Column) and value.sql.table is table else None
            keys.append(_Key(value.sql, desc, column))
    elif position is not None:
        keys = [_Key(position, False, None)]  # not a column of the entity: pages by $skip
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


def read_set(db: Connection, entity: EntitySet, options: Options, links: Links, *, where: list[Any] | None = None,
             nav: Nav | None = None, next_link: Callable[[dict[str, str]], str] | None = None,
             scope: tuple[Any, ...] = (), counts: Cache[int] | None = None, position: Any = None) -> dict[str, Any]:
    """A page of an entity set (of the entities ``where`` selects): ``value``, and ``@iot.count`` /
    ``@iot.nextLink`` when asked or needed.

    ``scope`` names what ``where`` selects (the resource path), for the count cache ``counts``;
    ``position`` orders the entities when no ``$orderby`` is asked (see ``_sort``).
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
                 default=nav.order if nav else (), position=position)
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
    # a MultiDatastream's ObservedProperties in component order: the position column of the link table
    sort = _sort(db, target, options, unique=nav.unique, default=nav.order,
                 position=key.table.c[nav.position] if nav.position else None)
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

