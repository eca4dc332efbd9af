"""The notifier: the one way core and mini-apps reach people.

``notify`` persists the notification once, puts it in every recipient's inbox, queues FCM delivery in
the durable outbox in the same transaction, and then announces it live on the realtime hub. Push
respects each resident's muted topics and quiet hours; critical warnings pass quiet hours, and a
critical warning for whole units also goes out as one FCM topic message per unit.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, ClassVar

from sqlalchemy import insert, or_
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from core.feed.models import Severity
from core.identity.models import Membership, Role, User, UserKind
from core.worktime import HUE_TIME
from plugins.events import DomainEvent
from plugins.manifest import LocalizedText
from push.models import (
    Device,
    InboxItem,
    Notification,
    OutboxKind,
    PushOutbox,
    UnitFollow,
)

log = logging.getLogger(__name__)
FCM_BATCH = 500  # the most tokens firebase-admin sends in one batch
TOPIC_ID = re.compile(r"^[a-z][a-z0-9_]{1,39}$")


def unit_topic(unit_id: str) -> str:
    """The FCM topic of a unit's residents (FCM allows [a-zA-Z0-9-_.~%] in topic names)."""
    return f"unit_{unit_id}"


class NotificationSent(DomainEvent):
    """Published after a notification is committed (inboxes written, push queued)."""

    name: ClassVar[str] = "core.notification_sent"
    notification_id: int
    miniapp: str
    topic: str
    severity: str
    recipients: int


@dataclass(frozen=True)
class Audience:
    """Who a notification is for: users, the residents of units, officials holding roles."""

    users: tuple[int, ...] = ()
    units: tuple[str, ...] = ()
    roles: tuple[tuple[str, str], ...] = ()  # (role, unit_id)

    def describe(self) -> dict[str, Any]:
        """A JSON description for the notification's record."""
        return {"users": list(self.users), "units": list(self.units), "roles": [list(r) for r in self.roles]}


@dataclass
class Receipt:
    """What ``notify`` did: the notification id, how many inboxes, how many push jobs."""

    notification_id: int
    recipients: int
    push_jobs: int
    held_for_quiet_hours: int = 0
    muted: int = 0
    user_ids: list[int] = field(default_factory=list, repr=False)
    # Recipients named directly or by role (not by unit): they are told on their own channel.
    direct_ids: list[int] = field(default_factory=list, repr=False)


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


class Notifier:
    """Notify users, a unit's residents, a role, or an FCM topic (see the module docstring)."""

    def __init__(self, *, engine: Engine, events: Any = None, realtime_of: Any = None, wake: Any = None,
                 topics_of: Any = None) -> None:
        self._engine = engine
        self._events = events
        self._realtime_of = realtime_of or (lambda: None)
        self._wake = wake or (lambda: None)
        # miniapp id -> {topic id: critical?}; unknown topics are refused so preferences stay meaningful
        self._topics_of = topics_of or (lambda: {})

    async def notify(
        self, *, miniapp: str, topic: str, title: LocalizedText | Mapping[str, str],
        body: LocalizedText | Mapping[str, str], severity: Severity | str = Severity.info,
        users: Iterable[int] = (), units: Iterable[str] = (), roles: Iterable[tuple[str, str]] = (),
        url: str | None = None, data: Mapping[str, Any] | None = None, now: datetime | None = None,
    ) -> Receipt:
        """Send a notification; returns once it is committed (push happens in the outbox worker)."""
        severity = Severity(severity)
        known = self._topics_of().get(miniapp)
        if miniapp != "core" and (known is None or topic not in known):
            raise NotifierError(f"mini-app {miniapp!r} declares no notification topic {topic!r}", field="topic")
        if not TOPIC_ID.match(topic):
            raise NotifierError(f"topic {topic!r} must be a lower-case id", field="topic")
        audience = Audience(tuple(dict.fromkeys(users)), tuple(dict.fromkeys(units)), tuple(dict.fromkeys(roles)))
        if not (audience.users or audience.units or audience.roles):
            raise NotifierError("name at least one user, unit or role", field="audience")
        if url is not None and not url.startswith("/"):
            raise NotifierError("url must be a path in this app, such as /m/feedback/reports/12", field="url")
        receipt = await run_in_threadpool(
            self._persist, miniapp=miniapp, topic=topic, title=_text(title, "title", 200),
            body=_text(body, "body", 2000), severity=severity, audience=audience, url=url,
            data=dict(data or {}), now=now or datetime.now(UTC),
        )
        self._wake()
        await self._announce(receipt, audience, severity)
        if self._events is not None:
            await self._events.publish(NotificationSent(
                notification_id=receipt.notification_id, miniapp=miniapp, topic=topic, severity=severity.value,
                recipients=receipt.recipients))
        return receipt

    # -- persistence (one transaction) ------------------------------------------------------------

    def _persist(self, *, miniapp: str, topic: str, title: LocalizedText, body: LocalizedText, severity: Severity,
                 audience: Audience, url: str | None, data: dict[str, Any], now: datetime) -> Receipt:
        with Session(self._engine) as db:
            note = Notification(miniapp=miniapp, topic=topic, severity=severity, title_vi=title.vi,
                                title_en=title.en, body_vi=body.vi, body_en=body.en, url=url, data=data,
                                target=audience.describe(), created_at=now)
            db.add(note)
            db.flush()
            by_unit, direct = self._recipients(db, audience)
            recipients = by_unit | direct
            if recipients:
                db.execute(insert(InboxItem), [
                    {"user_id": uid, "notification_id": note.id, "created_at": now} for uid in sorted(recipients)])
            receipt = Receipt(notification_id=note.id, recipients=len(recipients), push_jobs=0,
                              user_ids=sorted(recipients), direct_ids=sorted(direct))
            self._queue_push(db, note, recipients, audience, severity, now, receipt)
            db.commit()
        return receipt

    @staticmethod
    def _recipients(db: Session, audience: Audience) -> tuple[set[int], set[int]]:
        """(residents reached through their units, people named directly or by role)."""
        found: set[int] = set()
        direct: set[int] = set()
        if audience.users:
            direct.update(db.exec(select(User.id).where(User.id.in_(audience.users), User.is_active)))
        if audience.units:
            residents = select(User.id).where(User.kind == UserKind.resident, User.is_active,
                                              or_(User.home_unit_id.in_(audience.units),
                                                  User.id.in_(select(UnitFollow.user_id)
                                                              .where(UnitFollow.unit_id.in_(audience.units)))))
            found.update(db.exec(residents))
        for role, unit_id in audience.roles:
            direct.update(db.exec(select(Membership.user_id).where(Membership.role == Role(role),
                                                                   Membership.unit_id == unit_id)))
        return found, direct

    def _queue_push(self, db: Session, note: Notification, recipients: set[int], audience: Audience,
                    severity: Severity, now: datetime, receipt: Receipt) -> None:
        payload_base = {"notification_id": note.id, "severity": severity.value}
        via_topic: set[int] = set()
        if audience.units and severity is Severity.critical:
            # An area-wide critical warning: one topic message per unit reaches every device subscribed
            # to it, which is how a flood warning reaches 15 units within a minute.
            for unit_id in audience.units:
                db.add(PushOutbox(kind=OutboxKind.topic, notification_id=note.id, next_attempt_at=now,
                                  payload={**payload_base, "topic": unit_topic(unit_id)}))
                receipt.push_jobs += 1
            via_topic = set(db.exec(select(User.id).where(User.home_unit_id.in_(audience.units))))
        direct = recipients - via_topic
        if not direct:
            return
        users = {u.id: u for u in db.exec(select(User).where(User.id.in_(direct)))}
        tokens_by_time: dict[datetime, list[str]] = {}
        for device in db.exec(select(Device).where(Device.user_id.in_(direct), Device.active)):
            prefs = users[device.user_id].notification_prefs or {}
            if topic_muted(prefs, note.miniapp, note.topic) and severity is not Severity.critical:
                receipt.muted += 1
                continue
            due = now
            if severity is not Severity.critical:
                held_until = in_quiet_hours(prefs, now)
                if held_until is not None:
                    due = held_until
                    receipt.held_for_quiet_hours += 1
            tokens_by_time.setdefault(due, []).append(device.token)
        for due, tokens in tokens_by_time.items():
            for start in range(0, len(tokens), FCM_BATCH):
                db.add(PushOutbox(kind=OutboxKind.tokens, notification_id=note.id, next_attempt_at=due,
                                  payload={**payload_base, "tokens": tokens[start:start + FCM_BATCH]}))
                receipt.push_jobs += 1

    # -- live -------------------------------------------------------------------------------------

    async def _announce(self, receipt: Receipt, audience: Audience, severity: Severity) -> None:
        hub = self._realtime_of()
        if hub is None:
            return
        event = {"type": "inbox", "notification_id": receipt.notification_id, "severity": severity.value}
        try:
            for unit_id in audience.units:
                await hub.publish(f"unit:{unit_id}", event)
            # Residents reached by unit hear it on the unit channel; everyone else on their own.
            for user_id in receipt.direct_ids if audience.units else receipt.user_ids:
                await hub.publish(f"user:{user_id}", event)
        except Exception:  # the inbox has it; a live hiccup must not fail the sender
            log.exception("could not announce notification %s live", receipt.notification_id)


def topic_muted(prefs: Mapping[str, Any], miniapp: str, topic: str) -> bool:
    """True when the resident muted ``topic`` of ``miniapp``."""
    return topic in (prefs.get("muted", {}).get(miniapp) or ())
