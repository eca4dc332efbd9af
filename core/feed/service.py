"""The feed's domain logic, no HTTP: publishing, withdrawing, who sees what, and the cursor-paginated page.

Visibility. Anonymous callers see city-wide items for everyone. Residents see city-wide items and items
targeted at their home unit or a unit they follow, for everyone or residents. Officials see city-wide
items and items targeted at a unit where they hold a role, for everyone or officials, plus every item
their own units authored (so they can find and withdraw what they posted). Operators and admins see
everything. Withdrawn items and expired ones (``expires_at <= now``) are never shown.

Pagination. Items are ordered by id, newest first; ids only grow, so a cursor holding the last id shown
never skips or repeats an item however many are published between two page reads (new items have
larger ids and appear only when the client starts again from the first page). Pinned items are not
part of that stream: the first page returns them apart, in ``pinned``, and no page of the stream ever
contains a pinned item, so a client that shows ``pinned`` above the stream never shows one twice.
Mini-apps' cards (``from_miniapps``) are likewise only on the first page and never in the stream.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from cachetools import LRUCache
from pydantic import ValidationError
from sqlalchemy import (
    Connection,
    String,
    and_,
    bindparam,
    or_,
    select,
    true,
    type_coerce,
    union,
)
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import BindParameter
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from core.feed.events import FeedItemPublished, FeedItemWithdrawn
from core.feed.models import FeedAudience, FeedItem, FeedItemUnit, FeedKind, Severity
from core.notifications.models import UnitFollow
from core.units.models import OrgUnit
from core.units.service import CITY_ID
from plugins.context import HostContext
from plugins.feed import FeedCard, FeedContext
from plugins.registry import FeedContributor

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 20
MAX_LIMIT = 50
PINNED_LIMIT = 10  # a feed whose top is all pins is no feed; older pins wait until one is withdrawn
PINS_SCANNED = 200  # live pins looked at, for every reader; a city never keeps this many at once
MAX_TARGETS = 50
CONTRIBUTOR_BUDGET = 0.3  # seconds every contributor together may take before the first page answers
CARDS_PER_CONTRIBUTOR = 3
_CURSOR_TAG = "f1:"
# "Before the newest item": the first page is a keyset query like every other page. The largest
# value feed_item.id (INTEGER) can hold on PostgreSQL, so the bound parameter fits the column.
_NO_CURSOR = 2**31 - 1
PUBLISH_PERMISSION = "core.feed.publish"


class FeedError(Exception):
    """A feed operation refused; ``field`` names the input at fault (``title.en``, ``unit_ids``...)."""

    def __init__(self, status: int, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.field = field


# --- Cursors ------------------------------------------------------------------------------------------


def encode_cursor(last_id: int) -> str:
    """An opaque, URL-safe cursor for the page after the item ``last_id``."""
    return base64.urlsafe_b64encode(f"{_CURSOR_TAG}{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The last id a cursor holds; FeedError(422, field ``cursor``) when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    number = raw[len(_CURSOR_TAG):] if raw.startswith(_CURSOR_TAG) else ""
    if not number.isdigit() or not 0 < int(number) < _NO_CURSOR or len(cursor) > 40:
        raise FeedError(422, "not a feed cursor; pass back the next_cursor of the previous page", field="cursor")
    return int(number)


# --- Who reads -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reader:
    """What one caller may see: every item, or the audiences and units that select items for them."""

    everything: bool = False
    audiences: tuple[str, ...] = (FeedAudience.everyone.value,)
    units: tuple[str, ...] = ()  # targeted items for these units are visible
    author_units: tuple[str, ...] = ()  # items these units published are visible, whatever the audience


ANONYMOUS_READER = Reader()
EVERYTHING = Reader(everything=True, audiences=tuple(a.value for a in FeedAudience))


def reader_for(db: Session | Connection | None, principal: Any) -> Reader:
    """The Reader for ``principal``; residents' followed units are read from ``db`` (officials need none)."""
    if not getattr(principal, "is_authenticated", False):
        return ANONYMOUS_READER
    roles = principal.roles
    if "admin" in roles or "operator" in roles:
        return EVERYTHING
    if principal.kind == "resident":
        assert db is not None, "a resident's Reader needs the database (their follows)"
        followed = db.execute(select(UnitFollow.unit_id).where(UnitFollow.user_id == principal.user_id)).scalars()
        units = {*followed, *([principal.home_unit_id] if principal.home_unit_id else [])}
        return Reader(audiences=("everyone", "residents"), units=tuple(sorted(units)))
    units = tuple(sorted({m.unit_id for m in principal.memberships}))
    return Reader(audiences=("everyone", "officials"), units=units, author_units=units)


def can_see(reader: Reader, *, audience: str, city_wide: bool, unit_ids: Iterable[str], author_unit_id: str) -> bool:
    """The visibility rule for one live item (the queries below are the same rule, written for indexes)."""
    if reader.everything or author_unit_id in reader.author_units:
        return True
    if audience not in reader.audiences:
        return False
    return city_wide or not set(unit_ids).isdisjoint(reader.units)


# --- Reading -----------------------------------------------------------------------------------------------


@dataclass(slots=True)
class FeedEntry:
    """A feed item as a page shows it, in both languages (``localized`` picks one)."""

    id: int
    published_at: datetime
    kind: str
    severity: str
    audience: str
    author_unit_id: str
    author_unit_name: dict[str, str]
    miniapp: str | None
    title: dict[str, str]
    body: dict[str, str]
    url: str | None
    city_wide: bool
    pinned: bool
    expires_at: datetime | None
    unit_ids: list[str] = field(default_factory=list)

    def localized(self, locale: str) -> dict[str, Any]:
        """The JSON view of this item with its texts in ``locale``."""
        return {
            "id": self.id,
            "kind": self.kind,
            "severity": self.severity,
            "audience": self.audience,
            "published_at": _iso(self.published_at),
            "author_unit_id": self.author_unit_id,
            "author_unit_name": self.author_unit_name[locale],
            "miniapp": self.miniapp,
            "title": self.title[locale],
            "body": self.body[locale],
            "url": self.url,
            "city_wide": self.city_wide,
            "unit_ids": self.unit_ids,
            "pinned": self.pinned,
            "expires_at": _iso(self.expires_at) if self.expires_at else None,
        }


def _iso(value: datetime) -> str:
    # Read back as UTC (UTCDateTime); "Z" is what phones parse most reliably.
    return value.isoformat().replace("+00:00", "Z")


@dataclass
class FeedPage:
    """One page: the stream's items, the cursor of the next page (None at the end) and, on the first
    page only, the pinned items."""

    items: list[FeedEntry]
    next_cursor: str | None
    pinned: list[FeedEntry]
    first: bool
    changes_at: datetime | None = None  # when the first item on it expires: the page is stale from then


_ITEM = FeedItem.__table__  # type: ignore[attr-defined]
_TARGET = FeedItemUnit.__table__  # type: ignore[attr-defined]
_UNIT = OrgUnit.__table__  # type: ignore[attr-defined]
# Enum columns are read as their stored strings: the page only ever prints them, and turning 60 of
# them into enum members and back per page costs more than the rest of the row handling.
_COLUMNS = [
    type_coerce(_ITEM.c[name], String).label(name) if name in ("kind", "severity", "audience") else _ITEM.c[name]
    for name in ("id", "published_at", "kind", "severity", "audience", "author_unit_id", "miniapp", "title_vi",
                 "title_en", "body_vi", "body_en", "url", "city_wide", "pinned", "expires_at")
]
# Built once per shape (how many units and author units a reader has) and reused: SQLAlchemy then
# finds the compiled SQL in its cache instead of building and compiling a new statement per request.
_statements: dict[tuple[bool, int, int], Select[Any]] = {}


def _live(table: Any = _ITEM) -> Any:
    """Shown at all: in the stream or among the pins as asked, before the cursor, not withdrawn or expired."""
    return and_(
        table.c.pinned == bindparam("pinned"),
        table.c.id < bindparam("before"),
        table.c.withdrawn_at.is_(None),
        or_(table.c.expires_at.is_(None), table.c.expires_at > bindparam("now", type_=_ITEM.c.expires_at.type)),
    )


def _statement(reader: Reader, dialect: str = "sqlite") -> Select[Any]:
    """The page query for readers shaped like ``reader``: one index-ordered branch per way an item reaches them.

    Each branch walks an index backwards from the cursor and stops after ``limit`` rows, so a page
    costs about ``limit`` index steps per branch whatever the table's size: city-wide items through
    ``ix_feed_item_pinned_id``, each of the reader's units through ``ix_feed_item_unit_unit_item``.
    An OR of the three conditions in one WHERE would make the database scan the stream until it has
    found ``limit`` matches, which is the whole table for a reader whose units are quiet.

    A unit branch walks the unit's targets first and looks each item up by its key. SQLite's nested
    loops do that by themselves; PostgreSQL, left to choose, merge-joins the unit's targets against the
    whole id order of ``feed_item`` (about 60 rows read per row shown, far more for a quiet unit), so
    there the item is looked up in a LATERAL sub-select that the planner cannot flatten into a join.
    """
    key = (reader.everything, len(reader.units), len(reader.author_units), dialect == "postgresql")
    cached = _statements.get(key)
    if cached is not None:
        return cached
    limit: BindParameter[int] = bindparam("limit")
    audience = _ITEM.c.audience.in_(bindparam("audiences", expanding=True))
    if reader.everything:
        branches = [select(*_COLUMNS).where(_live()).order_by(_ITEM.c.id.desc()).limit(limit)]
    else:
        branches = [select(*_COLUMNS).where(_live(), _ITEM.c.city_wide.is_(True), audience)
                    .order_by(_ITEM.c.id.desc()).limit(limit)]
        for n in range(len(reader.units)):
            targets = (_TARGET.c.unit_id == bindparam(f"unit{n}"), _TARGET.c.feed_item_id < bindparam("before"))
            if dialect == "postgresql":
                # LIMIT 1 (the id is unique) keeps the sub-select a per-target index look-up.
                item = (select(*_COLUMNS).where(_ITEM.c.id == _TARGET.c.feed_item_id, _live(), audience)
                        .limit(1).lateral(f"item{n}"))
                branch = select(*item.c).select_from(_TARGET).join(item, true())
            else:
                branch = select(*_COLUMNS).join(_TARGET, _TARGET.c.feed_item_id == _ITEM.c.id).where(_live(), audience)
            branches.append(branch.where(*targets).order_by(_TARGET.c.feed_item_id.desc()).limit(limit))
        for n in range(len(reader.author_units)):
            branches.append(select(*_COLUMNS).where(_ITEM.c.author_unit_id == bindparam(f"author{n}"), _live())
                            .order_by(_ITEM.c.id.desc()).limit(limit))
    if len(branches) == 1:
        rows = branches[0].subquery("page")
    else:
        # SQLite wants each LIMITed branch of a compound select in its own sub-select.
        subqueries = [b.subquery(f"branch{n}") for n, b in enumerate(branches)]
        rows = union(*[select(*sub.c) for sub in subqueries]).subquery("page")
    statement = (
        select(*rows.c, _UNIT.c.name_vi.label("unit_name_vi"), _UNIT.c.name_en.label("unit_name_en"))
        .join(_UNIT, _UNIT.c.id == rows.c.author_unit_id)
        .order_by(rows.c.id.desc()).limit(limit)
    )
    _statements[key] = statement
    return statement


def _params(reader: Reader, *, pinned: bool, before: int, limit: int, now: datetime) -> dict[str, Any]:
    params: dict[str, Any] = {"pinned": pinned, "before": before, "limit": limit, "now": now,
                              "audiences": list(reader.audiences)}
    params.update({f"unit{n}": unit for n, unit in enumerate(reader.units)})
    params.update({f"author{n}": unit for n, unit in enumerate(reader.author_units)})
    return params


def _entries(db: Session | Connection, rows: Sequence[Any]) -> list[FeedEntry]:
    # Unpacked as tuples, in _COLUMNS order plus the unit's names: attribute access on rows costs
    # several times more, and this runs for every item of every page.
    entries = [
        FeedEntry(id, published_at, kind, severity, audience, author_unit_id, {"vi": unit_vi, "en": unit_en},
                  miniapp, {"vi": title_vi, "en": title_en}, {"vi": body_vi, "en": body_en}, url, bool(city_wide),
                  bool(pinned), expires_at, [])
        for (id, published_at, kind, severity, audience, author_unit_id, miniapp, title_vi, title_en, body_vi,
             body_en, url, city_wide, pinned, expires_at, unit_vi, unit_en) in rows
    ]
    targeted = {e.id: e for e in entries if not e.city_wide}
    if targeted:
        found = db.execute(select(_TARGET.c.feed_item_id, _TARGET.c.unit_id)
                           .where(_TARGET.c.feed_item_id.in_(list(targeted)))
                           .order_by(_TARGET.c.feed_item_id, _TARGET.c.unit_id))
        for item_id, unit_id in found:
            targeted[item_id].unit_ids.append(unit_id)
    return entries


def _value(member: Any) -> str:
    return member.value if hasattr(member, "value") else str(member)


def read_page(db: Session | Connection, *, principal: Any, cursor: str | int | None = None,
              limit: int = DEFAULT_LIMIT, now: datetime | None = None, reader: Reader | None = None) -> FeedPage:
    """The page of the feed after ``cursor`` (the first page when None) that ``principal`` may see."""
    if not 1 <= limit <= MAX_LIMIT:
        raise FeedError(422, f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    before = _NO_CURSOR if cursor is None else cursor if isinstance(cursor, int) else decode_cursor(cursor)
    now = now or datetime.now(UTC)
    reader = reader or reader_for(db, principal)
    dialect = (db.dialect if isinstance(db, Connection) else db.get_bind().dialect).name
    statement = _statement(reader, dialect)
    rows = db.execute(statement, _params(reader, pinned=False, before=before, limit=limit + 1, now=now)).all()
    more = len(rows) > limit
    items = _entries(db, rows[:limit])
    pinned: list[FeedEntry] = []
    first = before == _NO_CURSOR
    if first:
        # Pins are few, so they are read through the (pinned, id) index whoever asks and filtered here:
        # a unit branch with pinned = true would walk all of that unit's items to find none.
        pins = db.execute(_statement(EVERYTHING), _params(EVERYTHING, pinned=True, before=_NO_CURSOR,
                                                          limit=PINS_SCANNED, now=now)).all()
        pinned = [e for e in _entries(db, pins) if can_see(
            reader, audience=e.audience, city_wide=e.city_wide, unit_ids=e.unit_ids,
            author_unit_id=e.author_unit_id)][:PINNED_LIMIT]
    expiries = [e.expires_at for e in (*items, *pinned) if e.expires_at is not None]
    return FeedPage(items=items, next_cursor=encode_cursor(items[-1].id) if more else None, pinned=pinned,
                    first=first, changes_at=min(expiries, default=None))


def cursor_position(cursor: str | None) -> int:
    """The keyset position a cursor stands for (the first page's when None); FeedError for a bad cursor."""
    return _NO_CURSOR if cursor is None else decode_cursor(cursor)


class PageCache:
    """Pages built a moment ago, by (reader, position, limit), so a busy feed is not re-read per request.

    A page is a function of who reads (the Reader: audiences and units, not the person, so everyone
    of one ward without follows shares an entry), where (the cursor) and the data. An entry lives
    ``ttl`` seconds at most, and never past the expiry of an item on it; ``clear`` is called by this
    worker when it publishes or withdraws, and other workers catch up within ``ttl``. Staleness never
    breaks pagination: a cursor from a cached page is still a position in the keyset order. Used from
    the event loop only, so it needs no lock. Residents' Readers (their follows) are kept as long.
    """

    def __init__(self, ttl: float = 2.0, max_entries: int = 2048) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._pages: dict[tuple[Reader, int, int], tuple[float, FeedPage, dict[str, bytes]]] = {}
        self._readers: dict[int, tuple[float, Reader]] = {}
        self.loading: dict[tuple[Reader, int, int], Any] = {}  # pages being read now (futures), by key
        self.generation = 0  # bumped by clear()

    def page(self, key: tuple[Reader, int, int]) -> tuple[FeedPage, dict[str, bytes]] | None:
        """The cached page and its rendered forms by locale, or None."""
        hit = self._pages.get(key)
        if hit is None:
            return None
        if hit[0] <= time.monotonic():
            self._pages.pop(key, None)
            return None
        return hit[1], hit[2]

    def keep_page(self, key: tuple[Reader, int, int], page: FeedPage, now: datetime,
                  generation: int) -> dict[str, bytes]:
        """Remember ``page``, read at ``now`` when ``generation`` was current; returns the dict its
        rendered forms are to be kept in. A page read before the last ``clear`` is not kept: it may
        predate what was just published."""
        rendered: dict[str, bytes] = {}
        if self.ttl <= 0 or generation != self.generation:
            return rendered
        lifetime = self.ttl
        if page.changes_at is not None:
            lifetime = min(lifetime, (page.changes_at - now).total_seconds())
        if lifetime > 0:
            if len(self._pages) >= self.max_entries:
                self._prune()
            self._pages[key] = (time.monotonic() + lifetime, page, rendered)
        return rendered

    def reader(self, user_id: int) -> Reader | None:
        """A resident's Reader read a moment ago, or None."""
        hit = self._readers.get(user_id)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def keep_reader(self, user_id: int, reader: Reader) -> None:
        """Remember a resident's Reader for ``ttl`` seconds."""
        if self.ttl > 0:
            if len(self._readers) >= self.max_entries * 4:
                self._readers.clear()
            self._readers[user_id] = (time.monotonic() + self.ttl, reader)

    def clear(self) -> None:
        """Forget every page (this worker published or withdrew something)."""
        self.generation += 1
        self._pages.clear()

    def _prune(self) -> None:
        now = time.monotonic()
        for key in [k for k, (deadline, _, _) in self._pages.items() if deadline <= now]:
            del self._pages[key]
        if len(self._pages) >= self.max_entries:
            self._pages.clear()  # a flood of distinct cursors: start over rather than grow


def get_item(db: Session | Connection, *, principal: Any, item_id: int, now: datetime | None = None,
             reader: Reader | None = None) -> FeedEntry | None:
    """One live item if ``principal`` may see it, else None (whether it exists is not revealed)."""
    now = now or datetime.now(UTC)
    row = db.execute(
        select(*_COLUMNS, _UNIT.c.name_vi.label("unit_name_vi"), _UNIT.c.name_en.label("unit_name_en"))
        .join(_UNIT, _UNIT.c.id == _ITEM.c.author_unit_id)
        .where(_ITEM.c.id == item_id, _ITEM.c.withdrawn_at.is_(None),
               or_(_ITEM.c.expires_at.is_(None), _ITEM.c.expires_at > now))
    ).first()
    if row is None:
        return None
    [entry] = _entries(db, [row])
    reader = reader or reader_for(db, principal)
    visible = can_see(reader, audience=entry.audience, city_wide=entry.city_wide, unit_ids=entry.unit_ids,
                      author_unit_id=entry.author_unit_id)
    return entry if visible else None


# --- Publishing -------------------------------------------------------------------------------------------


def _texts(value: Any, name: str, max_length: int) -> dict[str, str]:
    """Both languages of a text, stripped; English defaults to the Vietnamese (a ward may post in Vietnamese
    only); FeedError naming ``<name>.vi`` or ``<name>.en`` otherwise."""
    if hasattr(value, "model_dump"):
        value = value.model_dump()
    if not isinstance(value, Mapping):
        raise FeedError(422, f"{name} needs a Vietnamese text", field=name)
    texts: dict[str, str] = {}
    for locale in ("vi", "en"):
        text = str(value.get(locale) or "").strip() or (texts.get("vi", "") if locale == "en" else "")
        if not text:
            raise FeedError(422, f"{name} needs a text in Vietnamese", field=f"{name}.{locale}")
        if len(text) > max_length:
            raise FeedError(422, f"{name}.{locale} is longer than {max_length} characters", field=f"{name}.{locale}")
        texts[locale] = text
    return texts


def publish_item(db: Session, *, author_unit_id: str, author_user_id: int | None, kind: FeedKind | str,
                 severity: Severity | str | None, audience: FeedAudience | str, title: Any, body: Any,
                 url: str | None = None, unit_ids: Sequence[str] = (), pinned: bool = False,
                 expires_at: datetime | None = None, miniapp: str | None = None,
                 now: datetime | None = None) -> FeedItem:
    """Store a feed item (city-wide when ``unit_ids`` is empty) and commit; FeedError names a bad field.

    Callers check who may publish for which unit (``check_publish``); this checks the item itself.
    """
    now = now or datetime.now(UTC)
    try:
        kind = FeedKind(kind)
    except ValueError:
        raise FeedError(422, f"kind must be one of {[k.value for k in FeedKind]}", field="kind") from None
    try:
        audience = FeedAudience(audience)
    except ValueError:
        raise FeedError(422, f"audience must be one of {[a.value for a in FeedAudience]}", field="audience") from None
    if kind is FeedKind.warning:
        if severity is None or severity == "":
            raise FeedError(422, "a warning needs a severity: info, warning or critical", field="severity")
    elif severity not in (None, "", Severity.info):
        raise FeedError(422, "only warnings carry a severity; leave it out for news", field="severity")
    try:
        severity = Severity(severity or Severity.info)
    except ValueError:
        raise FeedError(422, f"severity must be one of {[s.value for s in Severity]}", field="severity") from None
    texts_title = _texts(title, "title", 200)
    texts_body = _texts(body, "body", 5000)
    if url is not None:
        url = url.strip() or None
    if url is not None and not (url.startswith("/") and not url.startswith("//")) and not url.startswith("https://"):
        raise FeedError(422, "url must be a path in this app (/m/...) or an https:// address", field="url")
    if url is not None and len(url) > 500:
        raise FeedError(422, "url is longer than 500 characters", field="url")
    if expires_at is not None:
        if expires_at.utcoffset() is None:
            raise FeedError(422, "expires_at needs a time zone, e.g. 2026-06-01T18:00:00+07:00", field="expires_at")
        if expires_at <= now:
            raise FeedError(422, "expires_at must be in the future", field="expires_at")
    targets = list(dict.fromkeys(u.strip() for u in unit_ids))
    if len(targets) > MAX_TARGETS:
        raise FeedError(422, f"at most {MAX_TARGETS} units per item; leave unit_ids empty for the whole city",
                        field="unit_ids")
    if CITY_ID in targets:
        raise FeedError(422, f"leave unit_ids empty to publish for the whole city instead of naming {CITY_ID!r}",
                        field="unit_ids")
    known = set(db.execute(select(_UNIT.c.id).where(_UNIT.c.id.in_([author_unit_id, *targets]))).scalars())
    if author_unit_id not in known:
        raise FeedError(422, f"unknown unit {author_unit_id!r}", field="author_unit_id")
    unknown = [u for u in targets if u not in known]
    if unknown:
        raise FeedError(422, f"unknown unit(s) {unknown}", field="unit_ids")
    item = FeedItem(
        published_at=now, kind=kind, severity=severity, audience=audience, author_unit_id=author_unit_id,
        author_user_id=author_user_id, miniapp=miniapp, title_vi=texts_title["vi"], title_en=texts_title["en"],
        body_vi=texts_body["vi"], body_en=texts_body["en"], url=url, city_wide=not targets, pinned=pinned,
        expires_at=expires_at,
    )
    db.add(item)
    db.flush()
    for unit_id in targets:
        db.add(FeedItemUnit(feed_item_id=item.id, unit_id=unit_id))
    db.commit()
    return item


def target_units(db: Session | Connection, item_id: int) -> list[str]:
    """The units a targeted item is for (empty for a city-wide one)."""
    return list(db.execute(select(_TARGET.c.unit_id).where(_TARGET.c.feed_item_id == item_id)
                           .order_by(_TARGET.c.unit_id)).scalars())


def publishable_units(principal: Any, authorizer: Any) -> set[str] | None:
    """The units ``principal`` may publish for (as author); None means any unit."""
    return authorizer.units_for(principal, PUBLISH_PERMISSION)


def check_publish(db: Session | Connection, *, principal: Any, authorizer: Any, author_unit_id: str,
                  unit_ids: Sequence[str]) -> None:
    """FeedError(403) unless ``principal`` may publish as ``author_unit_id`` for ``unit_ids``.

    Commune and ward officials speak for their own unit only: an item they publish targets exactly
    that unit. Department officials, operators and admins may target any units or the whole city.
    """
    allowed = publishable_units(principal, authorizer)
    if allowed is not None and author_unit_id not in allowed:
        raise FeedError(403, f"you may not publish for unit {author_unit_id!r}", field="author_unit_id")
    if not _own_unit_only(principal, authorizer, author_unit_id, allowed):
        return
    targets = list(dict.fromkeys(unit_ids))
    if targets != [author_unit_id]:
        raise FeedError(403, f"commune and ward officials publish only for their own unit: set unit_ids to "
                             f"[{author_unit_id!r}]", field="unit_ids")


def _own_unit_only(principal: Any, authorizer: Any, unit_id: str, allowed: set[str] | None) -> bool:
    """True when the caller publishes for ``unit_id`` only as a commune official (no broader role there)."""
    if allowed is None:
        return False  # a city-wide role (operators) or an admin
    roles = {m.role for m in principal.memberships if m.unit_id == unit_id}
    broader = set(authorizer.permissions[PUBLISH_PERMISSION].roles) - {"commune_official"}
    return not (roles & broader)


def publish_options(db: Session | Connection, *, principal: Any, authorizer: Any) -> list[dict[str, Any]]:
    """The author units ``principal`` may publish for, each with whether it may target other units."""
    allowed = publishable_units(principal, authorizer)
    query = select(_UNIT.c.id, _UNIT.c.kind, _UNIT.c.name_vi, _UNIT.c.name_en).order_by(_UNIT.c.kind, _UNIT.c.name_vi)
    rows = db.execute(query).all()
    options = []
    for row in rows:
        if allowed is not None and row.id not in allowed:
            continue
        options.append({"id": row.id, "name": {"vi": row.name_vi, "en": row.name_en}, "kind": _value(row.kind),
                        "own_unit_only": _own_unit_only(principal, authorizer, row.id, allowed)})
    return options


def withdraw_item(db: Session, *, item_id: int, now: datetime | None = None) -> FeedItem | None:
    """Withdraw a live item (it disappears from every feed); None when there is no such live item."""
    item = db.get(FeedItem, item_id)
    if item is None or item.withdrawn_at is not None:
        return None
    item.withdrawn_at = now or datetime.now(UTC)
    db.add(item)
    db.commit()
    return item


def published_event(item: FeedItem, unit_ids: Sequence[str], *, notified: bool = False) -> FeedItemPublished:
    """The domain event announcing ``item`` (``notified``: its publisher already notified the residents)."""
    return FeedItemPublished(item_id=item.id or 0, kind=item.kind, severity=item.severity, audience=item.audience,
                             city_wide=item.city_wide, unit_ids=list(unit_ids), author_unit_id=item.author_unit_id,
                             miniapp=item.miniapp, notified=notified)


def withdrawn_event(item: FeedItem, unit_ids: Sequence[str]) -> FeedItemWithdrawn:
    """The domain event announcing that ``item`` was withdrawn."""
    return FeedItemWithdrawn(item_id=item.id or 0, city_wide=item.city_wide, unit_ids=list(unit_ids))


def channels_for(city_wide: bool, unit_ids: Sequence[str]) -> list[str]:
    """Realtime channels an item goes to: ``feed`` for the whole city, else ``unit:<id>`` per unit."""
    return ["feed"] if city_wide else [f"unit:{u}" for u in unit_ids]


async def announce(event: FeedItemPublished | FeedItemWithdrawn, *, events: Any, realtime: Any = None) -> None:
    """Publish ``event`` on the event bus, then to the realtime hub when one is installed.

    Failures are logged, never raised: the item is already stored and the publisher has succeeded.
    """
    try:
        await events.publish(event)
    except Exception:
        log.exception("could not publish %s for feed item %s", event.name, event.item_id)
    if realtime is None:
        return
    # Ids and labels only, never text: a client re-reads the item through the API, which applies
    # the audience and targeting rules to whoever asks.
    payload: dict[str, Any] = {"type": "feed", "item_id": event.item_id}
    if isinstance(event, FeedItemPublished):
        payload.update(event="published", kind=event.kind.value, severity=event.severity.value,
                       audience=event.audience.value)
    else:
        payload["event"] = "withdrawn"
    for channel in channels_for(event.city_wide, event.unit_ids):
        try:
            await realtime.publish(channel, payload)
        except Exception:
            log.exception("could not push feed item %s to realtime channel %s", event.item_id, channel)


async def publish_from_miniapp(host: HostContext, *, miniapp: str, notified: bool = False, **fields: Any) -> int:
    """For mini-apps reacting to their own events: publish an item as ``miniapp`` and announce it; returns its id.

    ``fields`` are ``publish_item``'s (``author_unit_id`` defaults to the city). The domain event
    goes out through ``host.publish_event``; the realtime hub hears of it by subscribing to
    ``FeedItemPublished``. ``notified=True`` says the mini-app has already notified the residents of a
    warning itself, so the host does not notify them a second time.
    """
    fields.setdefault("author_unit_id", CITY_ID)
    fields.setdefault("author_user_id", None)

    def store() -> tuple[FeedItem, list[str]]:
        with host.session() as db:
            item = publish_item(db, miniapp=miniapp, **fields)
            return item, target_units(db, item.id or 0)

    item, units = await run_in_threadpool(store)
    await host.publish_event(published_event(item, units, notified=notified))
    return item.id or 0


# --- Mini-apps' cards ------------------------------------------------------------------------------------


async def contributed_cards(contributors: Sequence[FeedContributor], context: FeedContext, *,
                            budget: float = CONTRIBUTOR_BUDGET) -> list[dict[str, Any]]:
    """Ask every contributor; what answers within ``budget`` seconds becomes cards tagged by mini-app.

    Plain functions run in worker threads, all at once; coroutine functions are awaited in turn on
    the event loop while the threads work. Awaiting them directly rather than as tasks keeps the
    common case (a contributor answering from memory) from adding scheduling rounds, and with them
    latency, to every first page; the price is that a slow coroutine leaves less of the budget to
    the coroutines after it. A contributor that raises, returns something that is not a list of
    cards, or is still working when the budget is spent is logged and left out; the feed answers
    anyway. (A late thread is abandoned, not stopped: Python cannot stop a thread.)
    """
    if not contributors:
        return []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget
    threads = {n: asyncio.ensure_future(_in_thread(c, context)) for n, c in enumerate(contributors)
               if not inspect.iscoroutinefunction(c.contribute)}
    answers: dict[int, Any] = {}
    for n, contributor in enumerate(contributors):
        if n in threads:
            continue
        try:
            async with asyncio.timeout_at(deadline):
                answers[n] = await contributor.contribute(context)
        except TimeoutError:
            _late(contributor, budget)
        except Exception:
            log.exception("feed contributor of mini-app %r failed", contributor.miniapp)
    if threads:
        done, _pending = await asyncio.wait(threads.values(), timeout=max(0.0, deadline - loop.time()))
        for n, task in threads.items():
            if task not in done:
                task.cancel()  # the thread is abandoned; its answer, when it comes, is dropped
                _late(contributors[n], budget)
            elif task.exception() is not None:
                log.error("feed contributor of mini-app %r failed", contributors[n].miniapp,
                          exc_info=task.exception())
            else:
                answers[n] = task.result()
    cards: list[dict[str, Any]] = []
    for n, contributor in enumerate(contributors):  # registration order, so the cards' order is stable
        if n not in answers:
            continue
        try:
            got = [c if isinstance(c, FeedCard) else FeedCard.model_validate(c) for c in answers[n] or []]
        except (ValidationError, TypeError) as exc:
            log.warning("feed contributor of mini-app %r returned something that is not a list of FeedCard: %s",
                        contributor.miniapp, exc)
            continue
        for card in got[: context.limit]:
            cards.append({"miniapp": contributor.miniapp, **card.model_dump(mode="json")})
    return cards


class CardCache:
    """The mini-apps' cards asked a moment ago, per reader and language, so a first page never waits for them twice.

    Cards depend on who reads (``FeedContext.principal``), so they are kept per person (every anonymous
    reader is the same person) and language. A reader's first ask waits for the contributors, within
    their budget, as before. Afterwards the kept cards are served at once; once they are older than
    ``ttl`` seconds they are still served, and one refresh per reader is started in the background, so
    a slow contributor costs the feed's readers nothing after the first page: cards are at most one
    refresh behind. At most ``max_entries`` readers are remembered, the least recently seen going first.
    """

    def __init__(self, ttl: float = 2.0, max_entries: int = 4096) -> None:
        self.ttl = ttl
        self._cards: LRUCache[Hashable, tuple[float, list[dict[str, Any]]]] = LRUCache(maxsize=max_entries)
        self._refreshing: dict[Hashable, asyncio.Task[None]] = {}

    async def cards(self, key: Hashable, ask: Callable[[], Awaitable[list[dict[str, Any]]]]) -> list[dict[str, Any]]:
        """The cards kept for ``key`` (refreshed in the background when older than ``ttl``), else ``await ask()``."""
        if self.ttl <= 0:
            return await ask()
        kept = self._cards.get(key)
        if kept is None:
            cards = await ask()
            self._cards[key] = (time.monotonic() + self.ttl, cards)
            return cards
        if kept[0] <= time.monotonic() and key not in self._refreshing:
            task = asyncio.get_running_loop().create_task(self._refresh(key, ask))
            self._refreshing[key] = task
        return kept[1]

    async def _refresh(self, key: Hashable, ask: Callable[[], Awaitable[list[dict[str, Any]]]]) -> None:
        try:
            self._cards[key] = (time.monotonic() + self.ttl, await ask())
        except Exception:  # contributed_cards logs its contributors' failures; this is the host's own
            log.exception("could not refresh the mini-apps' feed cards")
        finally:
            self._refreshing.pop(key, None)


def _late(contributor: FeedContributor, budget: float) -> None:
    log.warning("feed contributor of mini-app %r took longer than %.0f ms; left out", contributor.miniapp,
                budget * 1000)


async def _in_thread(contributor: FeedContributor, context: FeedContext) -> Any:
    # abandon_on_cancel: a late thread must not hold the response until it returns.
    result = await anyio.to_thread.run_sync(contributor.contribute, context, abandon_on_cancel=True)
    return await result if inspect.isawaitable(result) else result
