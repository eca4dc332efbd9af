"""A person's inbox, read on demand: their personal notices plus the broadcasts of their audiences.

Broadcasts are stored once (``notification_audience``) and never copied per person, so what a
person's inbox costs depends on what reached *them*, not on the size of the city: each audience they
belong to (their home unit, the units they follow, the roles they hold, the city) is one short index
range scan (``audience, notification_id``), and a page merges those few ranges with their personal
notices. A person sees a broadcast stored after they joined its audience (moved into the unit, began
following it, took the role, opened their account).

Read state: a personal notice carries ``read_at``; a broadcast is read when the person has a read
mark for it (an ``inbox_item`` with ``personal`` false) or its id is at or below their "all read" mark
(``inbox_state.read_through``), so "mark all read" writes one row whatever the number of broadcasts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, and_, cast, exists, func, literal, or_, select, union, union_all, update
from sqlmodel import Session

from core.identity.models import Membership, User, UserKind, utcnow
from push.models import (
    CITY_AUDIENCE,
    InboxItem,
    InboxState,
    Notification,
    NotificationAudience,
    UnitFollow,
    role_audience,
    unit_audience,
)

# The badge counts at most this many unread notifications ("999+"): its cost stays bounded for a
# person who never opens their inbox.
UNREAD_CAP = 999


@dataclass(frozen=True)
class JoinedAudience:
    """One audience a person belongs to and since when."""

    audience: str
    since: datetime


@dataclass(frozen=True)
class Entry:
    """A notification in a person's inbox (its columns: id, title_vi, severity, ...) and whether they have read it."""

    notification: Any
    read: bool


@dataclass(frozen=True)
class Reader:
    """Who is reading: the audiences they belong to and their "all read" mark (one query to learn)."""

    user_id: int
    audiences: list[JoinedAudience]
    read_through: int


def reader(db: Session, user_id: int) -> Reader:
    """The audiences ``user_id`` belongs to (home unit, followed units, roles, the city) and since when."""
    resident = select(literal("user").label("tag"), cast(User.kind, String).label("a"),
                      User.home_unit_id.label("b"),
                      func.coalesce(User.home_unit_since, User.created_at).label("since"),
                      User.created_at.label("joined"),
                      select(InboxState.read_through).where(InboxState.user_id == user_id)
                      .scalar_subquery().label("mark")).where(User.id == user_id, User.is_active)
    follows = select(literal("follow"), literal(None, String), UnitFollow.unit_id, UnitFollow.created_at,
                     literal(None, UnitFollow.created_at.type), literal(None, Integer)).where(UnitFollow.user_id == user_id)
    roles = select(literal("role"), cast(Membership.role, String), Membership.unit_id, Membership.created_at,
                   literal(None, Membership.created_at.type), literal(None, Integer)).where(Membership.user_id == user_id)
    rows = db.execute(union_all(resident, follows, roles)).all()
    found: dict[str, datetime] = {}
    mark = 0
    if not rows or rows[0].tag != "user":
        return Reader(user_id, [], 0)  # unknown or deactivated: an empty inbox
    for row in rows:
        if row.tag == "user":
            mark = row.mark or 0
            if row.a == UserKind.resident.value:
                found[CITY_AUDIENCE] = row.joined
                if row.b:
                    found[unit_audience(row.b)] = row.since
        elif row.tag == "follow":
            key = unit_audience(row.b)
            found[key] = min(row.since, found.get(key, row.since))
        else:
            found[role_audience(row.a, row.b)] = row.since
    return Reader(user_id, [JoinedAudience(a, since) for a, since in sorted(found.items())], mark)


def audiences_of(db: Session, user_id: int) -> list[JoinedAudience]:
    """The audiences ``user_id`` belongs to and since when."""
    return reader(db, user_id).audiences


def _reach(audiences: list[JoinedAudience]) -> Any:
    """The broadcasts rows of ``audiences``, each from the moment the person joined it."""
    return or_(*(and_(NotificationAudience.audience == a.audience, NotificationAudience.created_at >= a.since)
                 for a in audiences))


def page(db: Session, user_id: int, *, before: int | None = None, limit: int = 20,
         who: Reader | None = None) -> tuple[list[Entry], bool]:
    """Up to ``limit`` notifications of ``user_id``, newest first, older than id ``before``; and whether more exist.

    ``who`` (from ``reader``) saves a round trip when the caller also asks for ``unread``.
    """
    who = who or reader(db, user_id)
    want = limit + 1
    personal = select(InboxItem.notification_id.label("id")).where(InboxItem.user_id == user_id, InboxItem.personal)
    if before is not None:
        personal = personal.where(InboxItem.notification_id < before)
    ranges = [personal.order_by(InboxItem.notification_id.desc()).limit(want).subquery()]
    for audience in who.audiences:
        # One index range per audience, bounded by the page size, whatever the city's size.
        query = select(NotificationAudience.notification_id.label("id")).where(
            NotificationAudience.audience == audience.audience, NotificationAudience.created_at >= audience.since)
        if before is not None:
            query = query.where(NotificationAudience.notification_id < before)
        ranges.append(query.order_by(NotificationAudience.notification_id.desc()).limit(want).subquery())
    merged = union(*(select(r.c.id) for r in ranges)).subquery()
    ids = list(db.execute(select(merged.c.id).order_by(merged.c.id.desc()).limit(want)).scalars())
    more = len(ids) > limit
    ids = ids[:limit]
    if not ids:
        return [], False
    # Columns, not ORM objects: a page is read far more often than anything else in the app.
    rows = db.execute(select(*Notification.__table__.c, InboxItem.read_at.label("read_at"),
                             InboxItem.personal.label("personal_notice"))
                      .outerjoin(InboxItem, and_(InboxItem.notification_id == Notification.id,
                                                 InboxItem.user_id == user_id))
                      .where(Notification.id.in_(ids)).order_by(Notification.id.desc())).all()
    entries = []
    for note in rows:
        if note.personal_notice:
            read = note.read_at is not None
        else:  # a broadcast: read when marked one by one, or covered by "all read"
            read = note.read_at is not None or note.id <= who.read_through
        entries.append(Entry(note, read))
    return entries, more


def unread(db: Session, user_id: int, *, who: Reader | None = None) -> int:
    """How many notifications ``user_id`` has not read (at most UNREAD_CAP)."""
    who = who or reader(db, user_id)
    personal = (select(InboxItem.id).where(InboxItem.user_id == user_id, InboxItem.personal,
                                           InboxItem.read_at.is_(None)).limit(UNREAD_CAP).subquery())
    counts = [select(func.count()).select_from(personal).scalar_subquery()]
    if who.audiences:
        marked = exists().where(InboxItem.user_id == user_id,
                                InboxItem.notification_id == NotificationAudience.notification_id)
        broadcasts = (select(NotificationAudience.notification_id).distinct()
                      .where(_reach(who.audiences), NotificationAudience.notification_id > who.read_through, ~marked)
                      .limit(UNREAD_CAP).subquery())
        counts.append(select(func.count()).select_from(broadcasts).scalar_subquery())
    # Both counts in one round trip; each is bounded by the cap, whatever the city's size.
    return min(sum(db.execute(select(*counts)).one()), UNREAD_CAP)


def readers(db: Session, notification_id: int) -> Any:
    """A SELECT of the ids of everyone whose inbox holds ``notification_id`` (the inverse of ``page``)."""
    who: list[Any] = [select(InboxItem.user_id.label("id")).where(
        InboxItem.notification_id == notification_id, InboxItem.personal)]
    active_resident = and_(User.kind == UserKind.resident, User.is_active)
    for audience, stored_at in db.execute(select(NotificationAudience.audience, NotificationAudience.created_at)
                                          .where(NotificationAudience.notification_id == notification_id)):
        if audience == CITY_AUDIENCE:
            who.append(select(User.id).where(active_resident, User.created_at <= stored_at))
        elif audience.startswith("unit:"):
            unit_id = audience.removeprefix("unit:")
            who.append(select(User.id).where(active_resident, User.home_unit_id == unit_id,
                                             func.coalesce(User.home_unit_since, User.created_at) <= stored_at))
            who.append(select(UnitFollow.user_id).join(User, User.id == UnitFollow.user_id)
                       .where(active_resident, UnitFollow.unit_id == unit_id, UnitFollow.created_at <= stored_at))
        elif audience.startswith("role:"):
            role, unit_id = audience.removeprefix("role:").split(":", 1)
            who.append(select(Membership.user_id).join(User, User.id == Membership.user_id)
                       .where(User.is_active, Membership.role == role, Membership.unit_id == unit_id,
                              Membership.created_at <= stored_at))
    return union(*who)


def reach(db: Session, notification_id: int) -> int:
    """How many people have ``notification_id`` in their inbox (a count over its audiences' members)."""
    return int(db.execute(select(func.count()).select_from(readers(db, notification_id).subquery())).scalar_one())


def can_see(db: Session, user_id: int, notification_id: int) -> bool:
    """True when ``notification_id`` is in the inbox of ``user_id`` (named personally, or a broadcast to them)."""
    if db.execute(select(InboxItem.id).where(InboxItem.user_id == user_id, InboxItem.personal,
                                             InboxItem.notification_id == notification_id)).first():
        return True
    audiences = audiences_of(db, user_id)
    return bool(audiences) and db.execute(select(NotificationAudience.id).where(
        NotificationAudience.notification_id == notification_id, _reach(audiences)).limit(1)).first() is not None


def mark_read(db: Session, user_id: int, notification_id: int) -> bool:
    """Mark one notification read for ``user_id``; False when it is not in their inbox. The caller commits."""
    item = db.execute(select(InboxItem).where(InboxItem.user_id == user_id,
                                              InboxItem.notification_id == notification_id)).scalar()
    if item is not None:
        if item.read_at is None:
            item.read_at = utcnow()
            db.add(item)
        return True
    if not can_see(db, user_id, notification_id):
        return False
    db.add(InboxItem(user_id=user_id, notification_id=notification_id, read_at=utcnow(), personal=False))
    return True


def mark_all_read(db: Session, user_id: int) -> int:
    """Mark everything in ``user_id``'s inbox read; returns how many were unread. The caller commits."""
    before = unread(db, user_id)
    now = utcnow()
    db.execute(update(InboxItem).where(InboxItem.user_id == user_id, InboxItem.read_at.is_(None))
               .values(read_at=now))
    newest = db.execute(select(func.max(Notification.id))).scalar() or 0
    state = db.get(InboxState, user_id)
    if state is None:
        db.add(InboxState(user_id=user_id, read_through=newest, updated_at=now))
    elif state.read_through < newest:
        state.read_through, state.updated_at = newest, now
        db.add(state)
    return before


def followed_units(engine: Any, cache: Any, user_id: int) -> frozenset[str]:
    """The units ``user_id`` follows (at most the city's 40), remembered in this worker's inbox cache.

    Asked on every page by the warnings banner; a follow or unfollow sends the person's change note
    (``push.routes._inbox_changed``), which discards what was remembered, on every worker.
    """
    key = ("follows", user_id)
    stamp = cache.stamp() if cache is not None else 0
    if cache is not None:
        found = cache.recall(key)
        if found is not None:
            return found
    with Session(engine) as db:
        units = frozenset(db.execute(select(UnitFollow.unit_id).where(UnitFollow.user_id == user_id)).scalars())
    if cache is not None:
        cache.remember(key, units, stamp=stamp, user_id=user_id, audiences=())
    return units
