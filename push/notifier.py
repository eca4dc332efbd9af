"""The notifier: the one way core and mini-apps reach people.

``Notifier.send(db, ...)`` writes a notification **in the caller's transaction**: the notification,
one ``notification_audience`` row per broadcast audience (the residents of a unit, the holders of a
role in a unit, the whole city), one ``inbox_item`` per person named directly, and the push outbox
rows. It never touches each recipient of a broadcast: people read broadcasts from their own audiences
(see ``push.inbox``), and the outbox worker plans push per device later (``push.planner``), so a
city-wide notice costs the sender the same as a ward notice. When the caller commits, the worker is
woken and the notice is announced live on the realtime hub; when the caller rolls back, nothing was
sent. ``await Notifier.notify(...)`` does the same in a transaction of its own, for callers that have
no domain change to commit with it.

Push respects each person's muted topics and quiet hours (critical notices pass both); a critical
notice to whole units (or the city) goes out as one FCM topic message per unit instead of per device.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, ClassVar

from pydantic import Field
from sqlalchemy import event, insert, literal, select, true
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from core.feed.models import Severity
from core.identity.models import Membership, User, utcnow
from core.units.models import OrgUnit, UnitKind
from core.worktime import HUE_TIME
from plugins.events import DomainEvent
from plugins.manifest import LocalizedText
from push.inbox_cache import user_key
from push.models import (
    CITY_AUDIENCE,
    InboxItem,
    Notification,
    NotificationAudience,
    OutboxKind,
    PushOutbox,
    role_audience,
    unit_audience,
)

log = logging.getLogger(__name__)
TOPIC_ID = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
# People named directly are written this many at a time (bounded statements whatever the list).
PERSONAL_CHUNK = 1000
_PENDING = "superapp.notifier.pending"
_LISTENING = "superapp.notifier.listening"
_COLLECT = "superapp.notifier.collect"


def unit_topic(unit_id: str) -> str:
    """The FCM topic of a unit's residents (FCM allows [a-zA-Z0-9-_.~%] in topic names)."""
    return f"unit_{unit_id}"


class NotificationSent(DomainEvent):
    """Published after a notification is committed (audiences and personal inboxes written, push queued)."""

    name: ClassVar[str] = "core.notification_sent"
    notification_id: int
    miniapp: str
    topic: str
    severity: str
    recipients: int  # people named directly; broadcast audiences are in ``audiences``
    audiences: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class Audience:
    """Who a notification is for: people named directly, the residents of units, role holders, the city."""

    users: tuple[int, ...] = ()
    units: tuple[str, ...] = ()
    roles: tuple[tuple[str, str], ...] = ()  # (role, unit_id)
    city: bool = False

    def keys(self) -> list[str]:
        """The broadcast audience keys (``notification_audience.audience``) of this audience."""
        keys = [CITY_AUDIENCE] if self.city else []
        return keys + [unit_audience(u) for u in self.units] + [role_audience(r, u) for r, u in self.roles]

    def describe(self) -> dict[str, Any]:
        """A JSON description for the notification's record."""
        return {"users": len(self.users), "units": list(self.units), "roles": [list(r) for r in self.roles],
                "city": self.city}


@dataclass
class Receipt:
    """What ``send`` stored: the notification, its broadcast audiences, the people named, the push jobs.

    Push planning per device happens later in the outbox worker; its figures (devices, muted, held
    for quiet hours) are written to ``notification.delivery`` when it is done.
    """

    notification_id: int
    audiences: list[str]
    personal: int
    push_jobs: int


@dataclass
class _Announcement:
    notification_id: int
    miniapp: str
    topic: str
    severity: Severity
    audience: Audience
    personal: int


class NotifierError(ValueError):
    """A notification that cannot be sent as asked; ``field`` names the input at fault."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


def _text(value: LocalizedText | Mapping[str, str], what: str, limit: int) -> LocalizedText:
    text = value if isinstance(value, LocalizedText) else LocalizedText.model_validate(dict(value))
    if len(text.vi) > limit or len(text.en) > limit:
        raise NotifierError(f"{what} must be at most {limit} characters in each language", field=what)
    return text


def in_quiet_hours(prefs: Mapping[str, Any], moment: datetime) -> datetime | None:
    """When ``moment`` falls in the user's quiet hours (Hue time), the moment they end; else None."""
    quiet = prefs.get("quiet_hours") if prefs else None
    if not quiet:
        return None
    start = time.fromisoformat(quiet["start"])
    end = time.fromisoformat(quiet["end"])
    local = moment.astimezone(HUE_TIME)
    now = local.time()
    inside = (start <= now < end) if start < end else (now >= start or now < end)
    if not inside:
        return None
    end_day = local.date() if now < end else local.date() + timedelta(days=1)
    return datetime.combine(end_day, end, tzinfo=HUE_TIME).astimezone(UTC)


def topic_muted(prefs: Mapping[str, Any], miniapp: str, topic: str) -> bool:
    """True when the resident muted ``topic`` of ``miniapp``."""
    return topic in (prefs.get("muted", {}).get(miniapp) or ())


class Notifier:
    """Notify people named directly, a unit's residents, a role's holders or the city (see the module docstring)."""

    def __init__(self, *, engine: Engine, events: Any = None, realtime_of: Any = None, wake: Any = None,
                 topics_of: Any = None, inbox_cache_of: Any = None) -> None:
        self._engine = engine
        self._events = events
        self._realtime_of = realtime_of or (lambda: None)
        self._inbox_cache_of = inbox_cache_of or (lambda: None)
        self._wake = wake or (lambda: None)
        # miniapp id -> {topic id: critical?}; unknown topics are refused so preferences stay meaningful
        self._topics_of: Callable[[], dict[str, Any]] = topics_of or (lambda: {})
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """The event loop live announcements run on (the server's); ``send`` may be called from any thread."""
        self._loop = loop

    # -- sending in the caller's transaction ---------------------------------------------------------

    def send(
        self, db: Session, *, miniapp: str, topic: str, title: LocalizedText | Mapping[str, str],
        body: LocalizedText | Mapping[str, str], severity: Severity | str = Severity.info,
        users: Iterable[int] = (), units: Iterable[str] = (), roles: Iterable[tuple[str, str]] = (),
        city: bool = False, url: str | None = None, data: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> Receipt:
        """Add a notification to ``db``'s transaction; it is sent when the caller commits, never if it rolls back."""
        severity = Severity(severity)
        known = self._topics_of().get(miniapp)
        if miniapp != "core" and (known is None or topic not in known):
            raise NotifierError(f"mini-app {miniapp!r} declares no notification topic {topic!r}", field="topic")
        if not TOPIC_ID.match(topic):
            raise NotifierError(f"topic {topic!r} must be a lower-case id", field="topic")
        audience = Audience(tuple(dict.fromkeys(int(u) for u in users)), tuple(dict.fromkeys(units)),
                            tuple(dict.fromkeys((str(r), str(u)) for r, u in roles)), bool(city))
        if not (audience.users or audience.units or audience.roles or audience.city):
            raise NotifierError("name at least one user, unit or role", field="audience")
        if url is not None and not url.startswith("/"):
            raise NotifierError("url must be a path in this app, such as /m/feedback/reports/12", field="url")
        title_text, body_text = _text(title, "title", 200), _text(body, "body", 2000)
        now = now or utcnow()
        note = Notification(miniapp=miniapp, topic=topic, severity=severity, title_vi=title_text.vi,
                            title_en=title_text.en, body_vi=body_text.vi, body_en=body_text.en, url=url,
                            data=dict(data or {}), target=audience.describe(), created_at=now,
                            delivery={"status": "queued"})
        db.add(note)
        db.flush()
        stored_at = utcnow()
        keys = audience.keys()
        if keys:
            db.execute(insert(NotificationAudience), [
                {"notification_id": note.id, "audience": key, "created_at": stored_at} for key in keys])
        personal = self._write_personal(db, note.id, audience.users, now)
        push_jobs = self._queue_push(db, note, audience, severity)
        self._remember(db, _Announcement(note.id, miniapp, topic, severity, audience, personal))
        return Receipt(notification_id=note.id, audiences=keys, personal=personal, push_jobs=push_jobs)

    @staticmethod
    def _write_personal(db: Session, notification_id: int, users: tuple[int, ...], now: datetime) -> int:
        """One inbox row per active person named directly, a bounded chunk per statement."""
        written = 0
        for start in range(0, len(users), PERSONAL_CHUNK):
            chunk = users[start:start + PERSONAL_CHUNK]
            rows = select(User.id, literal(notification_id), literal(now, InboxItem.__table__.c.created_at.type),
                          true()).where(User.id.in_(chunk), User.is_active)
            written += len(db.execute(insert(InboxItem).from_select(
                ["user_id", "notification_id", "created_at", "personal"], rows).returning(InboxItem.id)).all())
        return written

    @staticmethod
    def _queue_push(db: Session, note: Notification, audience: Audience, severity: Severity) -> int:
        """Outbox rows: a topic message per unit for critical area-wide notices, and one planning job."""
        base = {"notification_id": note.id, "severity": severity.value}
        jobs = 0
        by_topic = severity is Severity.critical and (audience.units or audience.city)
        if by_topic:
            # An area-wide critical warning: one topic message per unit reaches every device subscribed
            # to it (residents and followers), which is how a flood warning reaches 15 units within a minute.
            unit_ids = audience.units or tuple(db.execute(
                select(OrgUnit.id).where(OrgUnit.kind.in_([UnitKind.ward, UnitKind.commune])).order_by(OrgUnit.id)
            ).scalars())
            for unit_id in unit_ids:
                db.add(PushOutbox(kind=OutboxKind.topic, notification_id=note.id,
                                  payload={**base, "topic": unit_topic(unit_id)}))
                jobs += 1
        if audience.users or audience.roles or not by_topic:
            # The devices are found by the outbox worker, streamed in batches, never here.
            db.add(PushOutbox(kind=OutboxKind.plan, notification_id=note.id,
                              payload={**base, "units_by_topic": bool(by_topic)}))
            jobs += 1
        return jobs

    # -- after the caller's commit -------------------------------------------------------------------

    def _remember(self, db: Session, announcement: _Announcement) -> None:
        db.info.setdefault(_PENDING, []).append(announcement)
        if not db.info.get(_LISTENING):
            db.info[_LISTENING] = True
            event.listen(db, "after_commit", self._after_commit)
            event.listen(db, "after_rollback", self._after_rollback)

    @staticmethod
    def _after_rollback(db: Session) -> None:
        db.info.pop(_PENDING, None)

    def _after_commit(self, db: Session) -> None:
        pending: list[_Announcement] = db.info.pop(_PENDING, None) or []
        if not pending:
            return
        self._wake()
        cache = self._inbox_cache_of()
        if cache is not None:
            # Remembered inbox pages and badges of the people reached are discarded here at once (in the
            # committing thread, before any live event), and in the other workers through the broker.
            for announcement in pending:
                audience = announcement.audience
                cache.changed([*audience.keys(), *(user_key(u) for u in audience.users)])
        collect = db.info.get(_COLLECT)
        if collect is not None:  # ``notify`` awaits them itself
            collect.extend(pending)
            return
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # no server loop (a script): the inbox and the outbox have it; nobody is listening live
        for announcement in pending:
            coroutine = self._announce(announcement)
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                loop.create_task(coroutine)
            else:
                asyncio.run_coroutine_threadsafe(coroutine, loop)

    # -- a transaction of its own --------------------------------------------------------------------

    async def notify(self, **fields: Any) -> Receipt:
        """``send`` in a transaction of its own; returns once it is committed and announced live."""
        receipt, announced = await run_in_threadpool(self._send_alone, fields)
        for announcement in announced:
            await self._announce(announcement)
        return receipt

    def _send_alone(self, fields: dict[str, Any]) -> tuple[Receipt, list[_Announcement]]:
        announced: list[_Announcement] = []
        with Session(self._engine) as db:
            db.info[_COLLECT] = announced
            receipt = self.send(db, **fields)
            db.commit()
        return receipt, announced

    # -- live -----------------------------------------------------------------------------------------

    async def _announce(self, note: _Announcement) -> None:
        try:
            hub = self._realtime_of()
            if hub is not None:
                event_body = {"type": "inbox", "notification_id": note.notification_id,
                              "severity": note.severity.value}
                audience = note.audience
                # Units and people named directly need no database: no hop to a worker thread, which on a
                # busy night waits behind every request's queries before the first resident hears anything.
                channels = (await run_in_threadpool(self._channels, note) if audience.city or audience.roles
                            else [f"unit:{u}" for u in audience.units] + [f"user:{u}" for u in sorted(set(audience.users))])
                # All the channels at once rather than one round trip after another (a flood warning names 15
                # units); each channel still gets its events in order, since this is its only publish here.
                await asyncio.gather(*(hub.publish(channel, event_body) for channel in channels))
            if self._events is not None:
                await self._events.publish(NotificationSent(
                    notification_id=note.notification_id, miniapp=note.miniapp, topic=note.topic,
                    severity=note.severity.value, recipients=note.personal, audiences=note.audience.keys()))
        except Exception:  # the inbox has it; a live hiccup must not fail the sender
            log.exception("could not announce notification %s live", note.notification_id)

    def _channels(self, note: _Announcement) -> list[str]:
        """Where to announce: unit channels for unit and city audiences, personal channels for the rest."""
        audience = note.audience
        units = list(audience.units)
        users = set(audience.users)
        with Session(self._engine) as db:
            if audience.city:
                units = list(db.execute(select(OrgUnit.id).where(
                    OrgUnit.kind.in_([UnitKind.ward, UnitKind.commune])).order_by(OrgUnit.id)).scalars())
            for role, unit_id in audience.roles:
                # Role holders are officials: a bounded set, told on their own channel.
                users.update(db.execute(select(Membership.user_id).where(
                    Membership.role == role, Membership.unit_id == unit_id)).scalars())
        return [f"unit:{u}" for u in dict.fromkeys(units)] + [f"user:{u}" for u in sorted(users)]
