"""Tables of web mini-apps: the registration (its client), its reviewed versions and residents' pairwise ids."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from core.identity.models import utcnow


class VersionStatus(StrEnum):
    """A version's review state: submitted, then approved or rejected; approved ones may be published."""

    submitted = "submitted"
    approved = "approved"
    rejected = "rejected"
    published = "published"
    retired = "retired"  # was published, replaced by a later publication or a rollback


class WebApp(SQLModel, table=True):
    """One outside organisation's mini-app: its server-to-server client and what residents currently get."""

    __tablename__ = "webapp"
    id: str = Field(primary_key=True, max_length=40)
    # The client secret is shown once at registration; only its SHA-256 is kept (it is 256 random bits).
    client_secret_hash: str = Field(max_length=64)
    client_revoked: bool = False
    live_version: int | None = None  # the published version residents get, None before publication
    rollout_percent: int = 0
    created_by: int | None = Field(default=None, foreign_key="user_account.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow)


class WebAppVersion(SQLModel, table=True):
    """A submitted manifest of a web mini-app and its review."""

    __tablename__ = "webapp_version"
    __table_args__ = (UniqueConstraint("webapp_id", "number"),)
    id: int | None = Field(default=None, primary_key=True)
    webapp_id: str = Field(foreign_key="webapp.id", index=True, max_length=40, ondelete="CASCADE")
    number: int
    manifest: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: VersionStatus = Field(default=VersionStatus.submitted)
    review_reason: str | None = Field(default=None, max_length=500)
    submitted_at: datetime = Field(default_factory=utcnow)
    reviewed_at: datetime | None = None
    published_at: datetime | None = None


class WebAppSubject(SQLModel, table=True):
    """The pairwise id a resident has towards one web mini-app, so its backend can address them."""

    __tablename__ = "webapp_subject"
    webapp_id: str = Field(primary_key=True, max_length=40)
    pairwise_id: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")


class WebAppUsage(SQLModel, table=True):
    """One resident's use of one web mini-app on one day (Hue time): opens and errors their frame reported.

    A row per resident a day makes "unique residents per day" a count; the dashboard reads 90 days at most.
    """

    __tablename__ = "webapp_usage"
    webapp_id: str = Field(primary_key=True, max_length=40)
    day: date = Field(primary_key=True)
    pairwise_id: str = Field(primary_key=True, max_length=64)
    opens: int = 0
    errors: int = 0


class WebAppOneTimeToken(SQLModel, table=True):
    """A one-time token for a resident's phone number or position (``kind``): the bridge hands it to the mini-app's
    page, and only the mini-app's backend exchanges it (server to server), once and within two minutes. Only its
    SHA-256 is kept; a position travels in ``payload``."""

    __tablename__ = "webapp_one_time_token"
    token_hash: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=20)
    webapp_id: str = Field(foreign_key="webapp.id", max_length=40, ondelete="CASCADE")
    user_id: int = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    payload: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    expires_at: datetime = Field(index=True)
    used_at: datetime | None = None


class WebAppWebhook(SQLModel, table=True):
    """A signed webhook waiting for the mini-app's backend to accept it (the outbox): retried with backoff, it
    survives a restart of the host and an outage of the backend."""

    __tablename__ = "webapp_webhook"
    id: int | None = Field(default=None, primary_key=True)
    webapp_id: str = Field(foreign_key="webapp.id", index=True, max_length=40, ondelete="CASCADE")
    event: str = Field(max_length=40)
    url: str = Field(max_length=500)
    # The event's claims; each attempt signs them afresh (a five-minute token), keeping the same jti.
    claims: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, index=True)
    delivered_at: datetime | None = Field(default=None, index=True)
    last_error: str | None = Field(default=None, max_length=300)
    created_at: datetime = Field(default_factory=utcnow)
