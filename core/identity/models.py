"""Accounts, memberships (roles scoped to units), sessions and consents."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import UniqueConstraint
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
    home_unit_id: str | None = Field(default=None, foreign_key="org_unit.id")
    locale: str | None = Field(default=None, max_length=5)
    is_active: bool = True
    created_at: datetime = Field(default_factory=utcnow)


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
