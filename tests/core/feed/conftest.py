"""Feed fixtures: the identity personas, a host whose feed pages are read fresh, and item factories."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from core.feed import service
from core.feed.models import FeedItem

Publish = Callable[..., FeedItem]


@pytest.fixture
def feed_api(api: TestClient) -> TestClient:
    """The dev host with its feed page cache off: tests insert items behind its back and read at once."""
    api.app.state.feed_cache = service.PageCache(ttl=0)
    return api


def publish_in(engine: Any, **fields: Any) -> FeedItem:
    """Publish an item straight through the service (news for everyone from the city unless told)."""
    values: dict[str, Any] = {
        "author_unit_id": "hue", "author_user_id": None, "kind": "news", "severity": None, "audience": "everyone",
        "title": {"vi": "Tin", "en": "News"}, "body": {"vi": "Nội dung", "en": "Text"},
    }
    values.update(fields)
    with Session(engine, expire_on_commit=False) as db:
        return service.publish_item(db, **values)


@pytest.fixture
def publish(api: TestClient) -> Publish:
    """``publish(**fields)``: an item in the host's database, published through the service."""

    def make(**fields: Any) -> FeedItem:
        return publish_in(api.app.state.engine, **fields)

    return make


def now() -> datetime:
    """Now, in UTC."""
    return datetime.now(UTC)
