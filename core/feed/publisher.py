"""Feed publishing as a mini-app sees it (``host.feed``): items written in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import Session

from core.feed import service
from core.feed.events import FeedItemPublished
from core.feed.models import FeedItem
from core.units.service import CITY_ID


class FeedPublisher:
    """Publish feed items for a mini-app; ``publish`` commits the caller's session with the item."""

    Error = service.FeedError

    def publish(self, db: Session, *, miniapp: str, **fields: Any) -> FeedItem:
        """Store a feed item as ``miniapp`` and commit ``db`` (so the caller's rows land with it); FeedError names a bad field."""
        fields.setdefault("author_unit_id", CITY_ID)
        fields.setdefault("author_user_id", None)
        return service.publish_item(db, miniapp=miniapp, **fields)

    def target_units(self, db: Session, item_id: int) -> list[str]:
        """The units an item is for (empty when city-wide)."""
        return service.target_units(db, item_id)

    def published_event(self, item: FeedItem, unit_ids: Sequence[str], *, notified: bool = False) -> FeedItemPublished:
        """The domain event announcing ``item`` (``notified``: the residents were already notified)."""
        return service.published_event(item, unit_ids, notified=notified)
