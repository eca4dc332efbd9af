"""Domain events: typed facts that core and mini-apps publish and others subscribe to."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field


class DomainEvent(BaseModel):
    """Base of every domain event; subclasses set ``name`` (``<owner>.<what_happened>``) and fields."""

    model_config = ConfigDict(frozen=True)
    name: ClassVar[str] = "domain_event"

    id: UUID = Field(default_factory=uuid4)
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class MiniAppsLoaded(DomainEvent):
    """Published by the host once every mini-app is registered and the app is about to serve."""

    name: ClassVar[str] = "core.miniapps_loaded"
    miniapp_ids: list[str]
