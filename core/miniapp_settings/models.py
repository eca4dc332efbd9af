"""The stored settings of each mini-app: plain values as JSON, secrets as Fernet tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from core.identity.models import utcnow


class MiniAppSettingsRow(SQLModel, table=True):
    """One mini-app's settings as an admin last saved them (fields left at their default are absent)."""

    __tablename__ = "miniapp_settings"
    miniapp: str = Field(primary_key=True, max_length=40)
    values: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # field name -> Fernet token of the secret's text; the key is derived from SUPERAPP_SECRET_KEY
    secrets: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: int | None = Field(default=None, foreign_key="user_account.id", ondelete="SET NULL")
