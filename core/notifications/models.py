"""Notification tables: notifications, their audiences, inboxes, devices, followed units and the push outbox.

They are core's (its migrations create them, its retention prunes them, the feed and the resident's
pages read them); ``push`` writes and delivers them.

A notification is stored once. Its audiences (``notification_audience``: a unit's residents, the
holders of a role in a unit, the whole city) are read per person when they open their inbox (fan-out
on read), so a city-wide notice writes a handful of rows however many people it reaches. Notices to
named people keep one ``inbox_item`` per person; the same table records a person's read mark on a
broadcast, and ``inbox_state`` their "all read up to here" mark.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.feed.models import Severity
from core.identity.models import utcnow


class Notification(SQLModel, table=True):
    """What was sent: one row however many people receive it."""

    __tablename__ = "notification"
    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow)
    miniapp: str = Field(max_length=40, description="'core' for the host's own notifications.")
    topic: str = Field(max_length=40)
    severity: Severity = Severity.info
    title_vi: str = Field(max_length=200)
    title_en: str = Field(max_length=200)
    body_vi: str = Field(max_length=2000)
    body_en: str = Field(max_length=2000)
    url: str | None = Field(default=None, max_length=500)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # How the recipients were chosen (users, units, roles, FCM topic), for operators reading history.
    target: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # What the outbox worker's push planning did (devices planned, muted, held for quiet hours, jobs).
    delivery: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


def unit_audience(unit_id: str) -> str:
    """The audience key of a commune's or ward's residents (and of those following it)."""
    return f"unit:{unit_id}"


def role_audience(role: str, unit_id: str) -> str:
    """The audience key of the officials holding ``role`` in ``unit_id``."""
    return f"role:{role}:{unit_id}"


CITY_AUDIENCE = "city"  # every resident


class NotificationAudience(SQLModel, table=True):
    """One audience a broadcast notification is for; each person reads it from their own audiences."""

    __tablename__ = "notification_audience"
    __table_args__ = (Index("ix_notification_audience_audience_id", "audience", "notification_id"),)
    id: int | None = Field(default=None, primary_key=True)
    notification_id: int = Field(foreign_key="notification.id", ondelete="CASCADE", index=True)
    audience: str = Field(max_length=80, description="'unit:<unit>', 'role:<role>:<unit>' or 'city'.")
    # When it was stored (not the sender's clock): a person sees broadcasts from when they joined.
    created_at: datetime = Field(default_factory=utcnow)


class InboxState(SQLModel, table=True):
    """A person's "everything up to this notification is read" mark (set by 'mark all read')."""

    __tablename__ = "inbox_state"
    user_id: int = Field(foreign_key="user_account.id", primary_key=True, ondelete="CASCADE")
    read_through: int = 0
    updated_at: datetime = Field(default_factory=utcnow)


class InboxItem(SQLModel, table=True):
    """A notice to one named person, or that person's read mark on a broadcast (``personal`` false)."""

    __tablename__ = "inbox_item"
    __table_args__ = (
        UniqueConstraint("user_id", "notification_id"),
        Index("ix_inbox_item_user_id_id", "user_id", "id"),
        Index("ix_inbox_item_user_unread", "user_id", "read_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", ondelete="CASCADE")
    # Indexed: retention and the cascade from a deleted notification find its rows without a scan.
    notification_id: int = Field(foreign_key="notification.id", ondelete="CASCADE", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    read_at: datetime | None = None
    personal: bool = True


class Platform(StrEnum):
    """Where a device token came from."""

    android = "android"
    ios = "ios"
    web = "web"


class Device(SQLModel, table=True):
    """An FCM registration token of a signed-in app install."""

    __tablename__ = "device"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    token: str = Field(max_length=4096, unique=True)
    platform: Platform
    app_version: str = Field(max_length=40)
    locale: str = Field(default="vi", max_length=5)
    created_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime = Field(default_factory=utcnow)
    active: bool = Field(default=True, index=True)
    deactivated_reason: str | None = Field(default=None, max_length=60)


class UnitFollow(SQLModel, table=True):
    """A unit a resident follows besides their home unit (warnings for it reach them too)."""

    __tablename__ = "unit_follow"
    user_id: int = Field(foreign_key="user_account.id", primary_key=True, ondelete="CASCADE")
    unit_id: str = Field(foreign_key="org_unit.id", primary_key=True, index=True)
    created_at: datetime = Field(default_factory=utcnow)


class OutboxKind(StrEnum):
    """What an outbox row asks the delivery worker to do."""

    plan = "plan"  # find the devices of a notification's audiences and queue ``devices`` rows for them
    devices = "devices"  # a data message to up to 500 devices (tokens looked up when sending)
    tokens = "tokens"  # a data message to up to 500 registration tokens
    topic = "topic"  # one message to an FCM topic (area-wide warnings)
    subscribe = "subscribe"  # subscribe tokens to a topic
    unsubscribe = "unsubscribe"


class OutboxStatus(StrEnum):
    """Where an outbox row is in its life."""

    pending = "pending"
    sent = "sent"
    dead = "dead"  # gave up after the last attempt; kept for operators


class PushOutbox(SQLModel, table=True):
    """Work for the delivery worker, written in the same transaction as the notification.

    A worker leases a row (``leased_by``/``lease_until``) before sending, so several workers never
    send the same row at once; a worker that dies mid-batch loses its lease and another takes over.
    """

    __tablename__ = "push_outbox"
    __table_args__ = (Index("ix_push_outbox_due", "status", "next_attempt_at"),)
    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow)
    kind: OutboxKind
    notification_id: int | None = Field(default=None, foreign_key="notification.id", ondelete="CASCADE", index=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: OutboxStatus = OutboxStatus.pending
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    leased_by: str | None = Field(default=None, max_length=120)
    lease_until: datetime | None = None
    sent_at: datetime | None = None
    last_error: str | None = Field(default=None, max_length=500)
