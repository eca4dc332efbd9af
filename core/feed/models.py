"""Feed tables: items, and the units each is targeted at."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from core.identity.models import utcnow


class FeedKind(StrEnum):
    """News is informative; a warning carries a severity and may be pushed."""

    news = "news"
    warning = "warning"


class Severity(StrEnum):
    """How urgent a warning or notification is; critical ones pass quiet hours."""

    info = "info"
    warning = "warning"
    critical = "critical"


class FeedAudience(StrEnum):
    """Who sees an item: everyone, residents only, or officials only."""

    everyone = "everyone"
    residents = "residents"
    officials = "officials"


class FeedItem(SQLModel, table=True):
    """One post in the feed. Ids only grow, which is what the cursor pagination relies on."""

    __tablename__ = "feed_item"
    # (author_unit_id, id): "what our unit published", newest first, reads a page, not the id index.
    __table_args__ = (Index("ix_feed_item_pinned_id", "pinned", "id"),
                      Index("ix_feed_item_author_unit_id_id", "author_unit_id", "id"))
    id: int | None = Field(default=None, primary_key=True)
    published_at: datetime = Field(default_factory=utcnow)
    kind: FeedKind = FeedKind.news
    severity: Severity = Severity.info
    audience: FeedAudience = FeedAudience.everyone
    author_unit_id: str = Field(foreign_key="org_unit.id")
    author_user_id: int | None = Field(default=None, foreign_key="user_account.id", ondelete="SET NULL")
    miniapp: str | None = Field(default=None, max_length=40, description="Set when a mini-app posted it.")
    title_vi: str = Field(max_length=200)
    title_en: str = Field(max_length=200)
    body_vi: str = Field(max_length=5000)
    body_en: str = Field(max_length=5000)
    url: str | None = Field(default=None, max_length=500)
    city_wide: bool = Field(default=True, description="False: only the units in feed_item_unit see it.")
    pinned: bool = False
    expires_at: datetime | None = Field(default=None, index=True)
    withdrawn_at: datetime | None = None


class FeedItemUnit(SQLModel, table=True):
    """A unit a targeted feed item is for."""

    __tablename__ = "feed_item_unit"
    __table_args__ = (Index("ix_feed_item_unit_unit_item", "unit_id", "feed_item_id"),)
    feed_item_id: int = Field(foreign_key="feed_item.id", primary_key=True, ondelete="CASCADE")
    unit_id: str = Field(foreign_key="org_unit.id", primary_key=True)
