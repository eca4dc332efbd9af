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

import heapq
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
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
    """A notification in a person's inbox and whether they have read it."""

    notification: Notification
    read: bool


def audiences_of(db: Session, user_id: int) -> list[JoinedAudience]:
    """The audiences ``user_id`` belongs to (home unit, followed units, roles, the city) and since when."""
    user = db.get(User, user_id)
    if user is None or not user.is_active:
        return []
    found: dict[str, datetime] = {}
    if user.kind == UserKind.resident:
        found[CITY_AUDIENCE] = user.created_at
        if user.home_unit_id:
            found[unit_audience(user.home_unit_id)] = user.home_unit_since or user.created_at
        for unit_id, since in db.execute(select(UnitFollow.unit_id, UnitFollow.created_at)
                                         .where(UnitFollow.user_id == user_id)):
            key = unit_audience(unit_id)
            found[key] = min(since, found.get(key, since))
    for role, unit_id, since in db.execute(select(Membership.role, Membership.unit_id, Membership.created_at)
                                           .where(Membership.user_id == user_id)):
        found[role_audience(str(role), unit_id)] = since
    return [JoinedAudience(audience, since) for audience, since in sorted(found.items())]


def _reach(audiences: list[JoinedAudience]) -> Any:
    """The broadcasts rows of ``audiences``, each from the moment the person joined it."""
    return or_(*(and_(NotificationAudience.audience == a.audience, NotificationAudience.created_at >= a.since)
                 for a in audiences))


def _read_through(db: Session, user_id: int) -> int:
    return db.execute(select(InboxState.read_through).where(InboxState.user_id == user_id)).scalar() or 0


def page(db: Session, user_id: int, *, before: int | None = None, limit: int = 20) -> tuple[list[Entry], bool]:
    """Up to ``limit`` notifications of ``user_id``, newest first, older than id ``before``; and whether more exist."""
    audiences = audiences_of(db, user_id)
    want = limit + 1
    ranges: list[list[int]] = []
    personal = select(InboxItem.notification_id).where(InboxItem.user_id == user_id, InboxItem.personal)
    if before is not None:
        personal = personal.where(InboxItem.notification_id < before)
    ranges.append(list(db.execute(personal.order_by(InboxItem.notification_id.desc()).limit(want)).scalars()))
    for audience in audiences:
        # One index range per audience: bounded by the page size, whatever the city's size.
        query = select(NotificationAudience.notification_id).where(
            NotificationAudience.audience == audience.audience, NotificationAudience.created_at >= audience.since)
        if before is not None:
            query = query.where(NotificationAudience.notification_id < before)
        ranges.append(list(db.execute(query.order_by(NotificationAudience.notification_id.desc()).limit(want))
                           .scalars()))
    ids: list[int] = []
    for notification_id in heapq.merge(*ranges, reverse=True):
        if not ids or ids[-1] != notification_id:
            ids.append(notification_id)
        if len(ids) == want:
            break
    more = len(ids) > limit
    ids = ids[:limit]
    if not ids:
        return [], False
    notes = {n.id: n for n in db.execute(select(Notification).where(Notification.id.in_(ids))).scalars()}
    marks = {row.notification_id: row for row in db.execute(
        select(InboxItem.notification_id, InboxItem.read_at, InboxItem.personal)
        .where(InboxItem.user_id == user_id, InboxItem.notification_id.in_(ids)))}
    read_through = _read_through(db, user_id)
    entries = []
    for notification_id in ids:
        mark = marks.get(notification_id)
        if mark is not None and mark.personal:
            read = mark.read_at is not None
        else:
            read = mark is not None or notification_id <= read_through
        entries.append(Entry(notes[notification_id], read))
    return entries, more


def unread(db: Session, user_id: int) -> int:
    """How many notifications ``user_id`` has not read (at most UNREAD_CAP)."""
    personal = db.execute(select(func.count()).select_from(
        select(InboxItem.id).where(InboxItem.user_id == user_id, InboxItem.personal, InboxItem.read_at.is_(None))
        .limit(UNREAD_CAP).subquery())).scalar_one()
    audiences = audiences_of(db, user_id)
    if not audiences or personal >= UNREAD_CAP:
        return min(personal, UNREAD_CAP)
    marked = exists().where(InboxItem.user_id == user_id,
                            InboxItem.notification_id == NotificationAudience.notification_id)
    broadcasts = (select(NotificationAudience.notification_id).distinct()
                  .where(_reach(audiences), NotificationAudience.notification_id > _read_through(db, user_id),
                         ~marked)
                  .limit(UNREAD_CAP - personal))
    return personal + db.execute(select(func.count()).select_from(broadcasts.subquery())).scalar_one()


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
