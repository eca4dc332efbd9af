"""Fan-out broker: in-process for one worker, Redis when several workers or machines serve the same users."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

log = logging.getLogger(__name__)


class Broker(Protocol):
    """Publish a JSON message to a channel; every subscriber of that channel, in any worker, gets it."""

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        """Send ``message`` to the channel's subscribers."""

    def subscribe(self, channel: str) -> Any:
        """An async context manager yielding an async iterator of the channel's messages."""

    async def ping(self) -> None:
        """Raise if the broker cannot be used."""

    async def close(self) -> None:
        """Release connections."""


class InProcessBroker:
    """The embedded default: subscribers are queues in this process."""

    def __init__(self, queue_size: int = 1000) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = defaultdict(set)
        self._queue_size = queue_size

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        """Put ``message`` on every subscriber's queue; a full queue drops the message for that one."""
        for queue in list(self._subscribers.get(channel, ())):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                log.warning("broker subscriber queue full; message dropped", extra={"channel": channel})

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """Receive the channel's messages for as long as the context is open."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self._queue_size)
        self._subscribers[channel].add(queue)

        async def messages() -> AsyncIterator[dict[str, Any]]:
            while True:
                yield await queue.get()

        try:
            yield messages()
        finally:
            self._subscribers[channel].discard(queue)
            if not self._subscribers[channel]:
                del self._subscribers[channel]

    async def ping(self) -> None:
        """Always ready."""

    async def close(self) -> None:
        """Nothing to release."""


class RedisBroker:
    """Redis pub/sub shared by every worker; redis-py reconnects by itself after a dropped connection."""

    def __init__(self, url: str, *, prefix: str = "superapp:") -> None:
        import redis.asyncio as redis

        self._redis = redis.Redis.from_url(
            url, decode_responses=True, health_check_interval=15, socket_connect_timeout=5, retry_on_timeout=True
        )
        self._prefix = prefix

    async def publish(self, channel: str, message: dict[str, Any]) -> None:
        """Publish ``message`` as JSON on the prefixed channel."""
        await self._redis.publish(self._prefix + channel, json.dumps(message, separators=(",", ":")))

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """Receive the channel's messages for as long as the context is open."""
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self._prefix + channel)

        async def messages() -> AsyncIterator[dict[str, Any]]:
            async for raw in pubsub.listen():
                if raw.get("type") == "message":
                    yield json.loads(raw["data"])

        try:
            yield messages()
        finally:
            await pubsub.unsubscribe()
            await pubsub.aclose()

    async def ping(self) -> None:
        """Raise if Redis does not answer."""
        await self._redis.ping()

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()


def make_broker(redis_url: str | None) -> InProcessBroker | RedisBroker:
    """Redis when a URL is configured, otherwise the in-process broker."""
    return RedisBroker(redis_url) if redis_url else InProcessBroker()
