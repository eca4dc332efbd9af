"""Warnings in the feed also reach people: inbox, push and live, through the notifier."""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from core.feed.events import FeedItemPublished
from core.feed.models import FeedAudience, FeedItem, FeedKind
from plugins.registry import EventSubscriber

log = logging.getLogger(__name__)


def warning_subscriber(app: Any) -> EventSubscriber:
    """The host's own subscriber: a published warning for residents is sent to the residents it targets."""

    async def notify_residents(event: FeedItemPublished, host: Any) -> None:
        if event.kind is not FeedKind.warning or event.audience is FeedAudience.officials or event.notified:
            return
        item = await run_in_threadpool(_load, app.state.engine, event)
        if item is None or not (event.city_wide or event.unit_ids):
            return
        await app.state.notifier.notify(
            miniapp="core", topic="warnings", severity=event.severity, units=list(event.unit_ids),
            city=event.city_wide,
            title={"vi": item.title_vi, "en": item.title_en}, body={"vi": item.body_vi, "en": item.body_en},
            url=f"/feed#item-{item.id}", data={"feed_item_id": item.id},
        )

    return EventSubscriber(FeedItemPublished, notify_residents, "core")


def _load(engine: Any, event: FeedItemPublished) -> FeedItem | None:
    with Session(engine) as db:
        return db.get(FeedItem, event.item_id)
