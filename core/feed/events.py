"""Domain events of the feed, for realtime delivery and notifications to subscribe to."""

from __future__ import annotations

from typing import ClassVar

from core.feed.models import FeedAudience, FeedKind, Severity
from plugins.events import DomainEvent


class FeedItemPublished(DomainEvent):
    """A feed item was published (by an official, through the API or page, or by a mini-app)."""

    name: ClassVar[str] = "core.feed_item_published"
    item_id: int
    kind: FeedKind
    severity: Severity
    audience: FeedAudience
    city_wide: bool
    unit_ids: list[str]
    author_unit_id: str
    miniapp: str | None = None
    # True when the publisher has already told the residents through the notifier (a mini-app's own
    # warning): the host's warning subscriber then stays quiet, so nobody is told twice.
    notified: bool = False


class FeedItemWithdrawn(DomainEvent):
    """A feed item was withdrawn; clients showing it should drop it."""

    name: ClassVar[str] = "core.feed_item_withdrawn"
    item_id: int
    city_wide: bool
    unit_ids: list[str]
