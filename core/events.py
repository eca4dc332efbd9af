"""The domain event bus: delivers each published event to the subscribers registered for its class."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter
from starlette.concurrency import run_in_threadpool

from plugins.events import DomainEvent
from plugins.registry import EventSubscriber

log = logging.getLogger(__name__)

DELIVERED = Counter("superapp_events_delivered", "Domain events delivered to a subscriber", ["event"])
FAILED = Counter(
    "superapp_event_subscriber_failures", "Subscriber calls that raised", ["event", "subscriber"]
)


class EventBus:
    """Calls every subscriber of an event's class (and its base classes) concurrently.

    A subscriber that raises is logged and counted; the others still run and the publisher never
    sees the error, so one broken mini-app cannot fail another's request.
    """

    def __init__(self, subscribers: Iterable[EventSubscriber] = (), *, host: Any = None) -> None:
        self.host = host
        self._by_event: dict[type[DomainEvent], list[EventSubscriber]] = defaultdict(list)
        self.failures: dict[str, int] = defaultdict(int)
        for subscriber in subscribers:
            self.subscribe(subscriber)

    def subscribe(self, subscriber: EventSubscriber) -> None:
        """Add a subscriber (the host does this for everything registered through the contract)."""
        self._by_event[subscriber.event].append(subscriber)

    def subscribers_for(self, event: DomainEvent) -> list[EventSubscriber]:
        """The subscribers that receive ``event``, in registration order."""
        found: list[EventSubscriber] = []
        for cls in type(event).__mro__:
            if isinstance(cls, type) and issubclass(cls, DomainEvent):
                found.extend(self._by_event.get(cls, ()))
        return found

    async def publish(self, event: DomainEvent) -> int:
        """Deliver ``event``; returns how many subscribers handled it without error."""
        subscribers = self.subscribers_for(event)
        if not subscribers:
            return 0
        results = await asyncio.gather(*(self._deliver(s, event) for s in subscribers))
        return sum(results)

    async def _deliver(self, subscriber: EventSubscriber, event: DomainEvent) -> bool:
        try:
            if inspect.iscoroutinefunction(subscriber.handler):
                await subscriber.handler(event, self.host)
            else:
                result = await run_in_threadpool(subscriber.handler, event, self.host)
                if inspect.isawaitable(result):
                    await result
        except Exception:
            self.failures[subscriber.qualname] += 1
            FAILED.labels(event.name, subscriber.qualname).inc()
            log.exception(
                "event subscriber failed",
                extra={"event": event.name, "event_id": str(event.id), "subscriber": subscriber.qualname},
            )
            return False
        DELIVERED.labels(event.name).inc()
        return True
