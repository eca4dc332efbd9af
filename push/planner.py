"""Push planning: from one notification to ``devices`` outbox rows, in the outbox worker, never in the sender.

A ``plan`` row names a notification. The worker that leases it streams the active devices of the
notification's audience (its broadcast audiences from ``notification_audience`` and the people named
in ``inbox_item``) from a server-side cursor in batches of 500, ordered by device id, and drops the
devices of people who muted the topic, dates those in quiet hours to when their quiet hours end
(critical notices pass both), and writes ``devices`` rows of at most 500 device ids. Every
``COMMIT_EVERY`` batches, the rows are committed together with the plan row's progress (the last
device id planned and the running totals), under the worker's lease: a worker that dies mid-plan
leaves a plan another worker resumes where the last commit stopped, so no device is planned twice
or skipped. Memory is bounded by the batch, not
by the audience; the sending workers start on the first rows while planning goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.engine import Connection, Engine

from core.feed.models import Severity
from core.identity.models import Membership, User, UserKind
from push.models import (
    CITY_AUDIENCE,
    Device,
    InboxItem,
    Notification,
    NotificationAudience,
    OutboxKind,
    OutboxStatus,
    PushOutbox,
    UnitFollow,
)
from push.notifier import in_quiet_hours, topic_muted

log = logging.getLogger(__name__)
PLAN_BATCH = 500  # devices read and judged at a time (and the most devices in one row)
# Batches committed together with the plan's progress: fewer, larger transactions (10 x 500 devices,
# a few KiB each) while memory stays bounded and the sending workers start within a second.
COMMIT_EVERY = 10


class LeaseLost(RuntimeError):
    """Another worker took the plan row over (our lease expired): stop without writing more."""


@dataclass
class PlanProgress:
    """Where a plan stands: the last device id planned and what was decided so far."""

    after: int = 0
    devices: int = 0
    muted: int = 0
    held: int = 0
    jobs: int = 0

    @classmethod
    def of(cls, payload: dict[str, Any]) -> PlanProgress:
        """The progress recorded in a plan row's payload (zero for a fresh plan)."""
        saved = payload.get("progress") or {}
        return cls(**{k: int(saved.get(k, 0)) for k in ("after", "devices", "muted", "held", "jobs")})

    def as_dict(self) -> dict[str, int]:
        """For the plan row's payload and the notification's delivery record."""
        return {"after": self.after, "devices": self.devices, "muted": self.muted, "held": self.held,
                "jobs": self.jobs}


def audience_filter(connection: Connection, notification_id: int, *, units_by_topic: bool) -> Any:
    """The SQL condition on ``user_account`` selecting the people a notification is for."""
    keys = list(connection.execute(select(NotificationAudience.audience)
                                   .where(NotificationAudience.notification_id == notification_id)).scalars())
    units = [k.removeprefix("unit:") for k in keys if k.startswith("unit:")]
    roles = [tuple(k.removeprefix("role:").split(":", 1)) for k in keys if k.startswith("role:")]
    clauses = [exists().where(InboxItem.user_id == User.id, InboxItem.notification_id == notification_id,
                              InboxItem.personal)]
    if not units_by_topic:
        if CITY_AUDIENCE in keys:
            clauses.append(User.kind == UserKind.resident)
        elif units:
            clauses.append(and_(User.kind == UserKind.resident, or_(
                User.home_unit_id.in_(units),
                exists().where(UnitFollow.user_id == User.id, UnitFollow.unit_id.in_(units)))))
    if roles:
        clauses.append(exists().where(Membership.user_id == User.id, or_(
            *(and_(Membership.role == role, Membership.unit_id == unit) for role, unit in roles))))
    return or_(*clauses)


def plan(engine: Engine, *, row_id: int, notification_id: int, payload: dict[str, Any], worker_id: str,
         clock: Callable[[], datetime], wake: Callable[[], None] = lambda: None) -> PlanProgress:
    """Plan (or resume planning) the push of ``notification_id``; returns the final totals."""
    progress = PlanProgress.of(payload)
    with engine.connect() as connection:
        note = connection.execute(select(Notification.miniapp, Notification.topic, Notification.severity)
                                  .where(Notification.id == notification_id)).first()
        if note is None:
            return progress  # deleted meanwhile (retention): nothing to plan
        severity = Severity(note.severity)
        critical = severity is Severity.critical
        who = audience_filter(connection, notification_id, units_by_topic=bool(payload.get("units_by_topic")))
    query = (select(Device.id, User.notification_prefs)
             .join(User, User.id == Device.user_id)
             .where(Device.active, User.is_active, Device.id > progress.after, who)
             .order_by(Device.id))
    base = {"notification_id": notification_id, "severity": severity.value}
    now = clock()
    pending: list[dict[str, Any]] = []
    with engine.connect() as reader:
        result = reader.execution_options(stream_results=True, yield_per=PLAN_BATCH).execute(query)
        for number, batch in enumerate(result.partitions(PLAN_BATCH), start=1):
            by_due: dict[datetime, list[int]] = {}
            for device_id, prefs in batch:
                prefs = prefs or {}
                if not critical and topic_muted(prefs, note.miniapp, note.topic):
                    progress.muted += 1
                    continue
                due = None if critical else in_quiet_hours(prefs, now)
                if due is not None:
                    progress.held += 1
                by_due.setdefault(due or now, []).append(device_id)
                progress.devices += 1
            progress.after = batch[-1][0]
            pending += [{"kind": OutboxKind.devices, "notification_id": notification_id, "next_attempt_at": due,
                         "created_at": now, "status": OutboxStatus.pending, "attempts": 0,
                         "payload": {**base, "devices": ids}} for due, ids in by_due.items()]
            if number % COMMIT_EVERY == 0:
                progress.jobs += len(pending)
                _commit_batch(engine, row_id, worker_id, pending, payload, progress)
                pending = []
                wake()
    progress.jobs += len(pending)
    _commit_batch(engine, row_id, worker_id, pending, payload, progress)
    wake()
    with engine.begin() as connection:
        connection.execute(update(Notification).where(Notification.id == notification_id).values(
            delivery={"status": "planned", **progress.as_dict(), "planned_at": clock().isoformat()}))
    return progress


def _commit_batch(engine: Engine, row_id: int, worker_id: str, rows: list[dict[str, Any]],
                  payload: dict[str, Any], progress: PlanProgress) -> None:
    """Write one batch's rows and the plan's progress in one transaction, only while we hold the lease."""
    with engine.begin() as connection:
        held = connection.execute(
            update(PushOutbox)
            .where(PushOutbox.id == row_id, PushOutbox.leased_by == worker_id,
                   PushOutbox.status == OutboxStatus.pending)
            .values(payload={**payload, "progress": progress.as_dict()})
        ).rowcount
        if held != 1:
            raise LeaseLost(f"plan row {row_id} was taken over by another worker")
        if rows:
            connection.execute(PushOutbox.__table__.insert(), rows)
