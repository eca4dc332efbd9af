"""SensorThings resource paths: ``Set``, ``Set(id)``, navigation to any depth
(``Datastreams(1)/Thing/Locations``), an entity of a related set (``Things(1)/Datastreams(2)``), a property
(``Things(1)/name``) and its raw ``$value``, and ``$ref``; each resolved to what a GET answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select

from miniapps.floodmap.sensorthings import ENTITY_SETS, EntitySet, Links, Nav, _fits
from miniapps.floodmap.sta_options import Options, parse_options
from miniapps.floodmap.sta_read import next_link_for, read_set, render_page
from plugins import Cache, DomainError

MAX_PATH = 8  # segments of a resource path


@dataclass
class _Step:
    """Where a resource path has got to: an entity set narrowed by conditions, one entity or many."""

    entity: EntitySet
    where: list[Any]
    single: bool
    ident: int | None = None  # the entity's id when the path named it
    nav: Nav | None = None  # the navigation that led here (its default order and unique keys)
    text: str = ""  # the path so far, for messages and the count cache
    position: Any = None  # the related entities' order given by a link table (component order)


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
                    next_link=next_link_for(f"{links.base}/{path}", params), scope=(step.text,), counts=counts,
                    position=step.position)
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
    position = None
    if source is not target.table:  # the key is reached through another table: keep the target's rows distinct
        where = [target.table.c.id.in_(select(target.table.c.id).select_from(source).where(condition).correlate(None))]
        if nav.position:
            # each target's place in the link table (a component's position), read beside it
            link = key.table
            parent_key = condition.right
            position = (select(func.min(link.c[nav.position])).where(link.c[key.key] == parent_key,
                                                                      _target_match(link, target))
                        .scalar_subquery())
    return _Step(target, where, not nav.many, None, nav, f"{step.text}/{nav_name}", position)


def _target_match(link: Any, target: EntitySet) -> Any:
    """The link table's row for the target entity: its foreign key column to the target's table."""
    [fk] = [fk for fk in link.foreign_keys if fk.column.table is target.table]
    return link.c[fk.parent.key] == target.table.c[fk.column.key]


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
                    next_link=next_link_for(f"{links.base}/{step.text}/$ref", params), counts=counts,
                    position=step.position)
    if not page["value"] and len(chain) > 1:
        _one(db, chain[:-1])
    return page
