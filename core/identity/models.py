"""Accounts, memberships (roles scoped to units), sessions and consents."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, UniqueConstraint, event
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """Now, in UTC (every table stores aware UTC datetimes)."""
    return datetime.now(UTC)


class UserKind(StrEnum):
    """Residents sign in with Firebase; officials with a password."""

    resident = "resident"
    official = "official"


class Role(StrEnum):
    """Roles, each held in one org unit."""

    commune_official = "commune_official"
    department_official = "department_official"
    operator = "operator"
    admin = "admin"


class User(SQLModel, table=True):
    """A resident or an official."""

    __tablename__ = "user_account"
    id: int | None = Field(default=None, primary_key=True)
    kind: UserKind = Field(index=True)
    display_name: str = Field(max_length=120)
    phone: str | None = Field(default=None, max_length=20, unique=True)
    firebase_uid: str | None = Field(default=None, max_length=128, unique=True)
    username: str | None = Field(default=None, max_length=64, unique=True)
    password_hash: str | None = Field(default=None, max_length=255)
    home_unit_id: str | None = Field(default=None, foreign_key="org_unit.id", index=True)
    # Since when the resident lives in ``home_unit_id``: they see their unit's broadcasts from then on.
    home_unit_since: datetime | None = None
    locale: str | None = Field(default=None, max_length=5)
    # {"muted": {"<miniapp>": ["<topic>", ...]}, "quiet_hours": {"start": "22:00", "end": "06:00"}}
    notification_prefs: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    is_active: bool = True
    created_at: datetime = Field(default_factory=utcnow)


@event.listens_for(User.home_unit_id, "set")
def _moved_home(target: User, value: str | None, old: Any, _initiator: Any) -> None:
    """Whoever changes a resident's home unit, the move is dated (the inbox reads from that moment)."""
    if value != old:
        target.home_unit_since = utcnow() if value else None


class Membership(SQLModel, table=True):
    """A role an official holds in one unit."""

    __tablename__ = "membership"
    __table_args__ = (UniqueConstraint("user_id", "role", "unit_id"),)
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    role: Role
    unit_id: str = Field(foreign_key="org_unit.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)


class MiniAppConsent(SQLModel, table=True):
    """A scope a resident granted to one mini-app."""

    __tablename__ = "miniapp_consent"
    user_id: int = Field(foreign_key="user_account.id", primary_key=True, ondelete="CASCADE")
    miniapp_id: str = Field(primary_key=True, max_length=40)
    scope: str = Field(primary_key=True, max_length=20)
    granted_at: datetime = Field(default_factory=utcnow)


class AuthSession(SQLModel, table=True):
    """One signed-in device or browser: the family of its rotating refresh tokens."""

    __tablename__ = "auth_session"
    id: str = Field(primary_key=True, max_length=36)
    user_id: int = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None
    revoked_reason: str | None = Field(default=None, max_length=60)
    client: str | None = Field(default=None, max_length=200, description="User agent at sign-in.")
    sign_in_method: str = Field(max_length=20)


class RefreshToken(SQLModel, table=True):
    """A refresh token, stored only as its SHA-256; used once, then replaced by the next one."""

    __tablename__ = "refresh_token"
    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(foreign_key="auth_session.id", index=True, ondelete="CASCADE")
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    used_at: datetime | None = None


class DevSignInCode(SQLModel, table=True):
    """A one-time code for the development sign-in, stored hashed."""

    __tablename__ = "dev_sign_in_code"
    phone: str = Field(primary_key=True, max_length=20)
    code_hash: str = Field(max_length=64)
    expires_at: datetime
    attempts: int = 0


class AuditEvent(SQLModel, table=True):
    """A security-relevant action; never holds a password, code or token."""

    __tablename__ = "audit_event"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    action: str = Field(max_length=40, index=True)
    actor_id: int | None = Field(default=None, foreign_key="user_account.id", index=True, ondelete="SET NULL")
    subject_id: int | None = Field(default=None, foreign_key="user_account.id", ondelete="SET NULL")
    address: str | None = Field(default=None, max_length=64)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
