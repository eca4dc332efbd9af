"""Fan-out broker with bounded per-channel history: in-process for one worker, Redis for several.

Every published message gets an event id ``"<milliseconds>-<sequence>"``. Ids of one channel only
grow, and two ids compare as the pair of integers (``parse_id``), so a client's cursor means the same
thing on every worker:

- **Redis** (``SUPERAPP_REDIS_URL``): the id is the entry id ``XADD`` gives in the channel's stream
  (``<prefix>stream:<channel>``, ``MAXLEN ~ history_size``, expiring ``history_ttl`` seconds after
  the last message). The same Lua call publishes ``"<id> <json>"`` on the pub/sub channel
  ``<prefix><channel>`` for live delivery (the prefix names the database number when it is not 0, since
  pub/sub channels are server-wide, and the deployment's own database, ``deployment_namespace``, since two
  deployments sharing one Redis database, a benchmark's and a test run's for instance, would otherwise
  hear each other's events: a resident's app got a warning of the other deployment with the same
  notification id, then its own, and counted one twice), so live messages arrive in id order. Subscribers read
  history with ``XRANGE``/``XREVRANGE`` and, after a lost connection, re-subscribe and read the
  messages they missed from the streams (``XRANGE`` after the last id they saw).
- **In-process** (the default): ids come from one counter per broker (per process), seeded with the
  clock so a restarted process keeps issuing larger ids; history is a bounded deque per channel for
  the most recently used channels. A cursor from before a restart is reported as not recoverable.

A Redis outage loses nothing published in a process that lives through it: a publish Redis cannot
take is held in a bounded buffer in this process (``outage_buffer`` events, oldest dropped beyond, each
drop counted in ``dropped``) and ``publish`` returns ``""`` instead of an id. A background task sends
the held events in order once Redis answers again; there they get their ids and reach every
subscriber like any other event (live, or through the subscriptions' catch-up from the streams), so
a client's cursor keeps working. While anything is held, new events queue behind it, so each channel
keeps its order.

Live reading uses pub/sub rather than ``XREAD``: one worker may follow tens of thousands of channels
(one per connected user), and a blocking ``XREAD`` would resend every stream key on each call.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

EVENT_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")
# How long ``subscribe()`` waits for Redis to confirm a subscription before carrying on regardless
# (the subscription is retried in the background, so a Redis outage never blocks the caller for good).
CONFIRM_TIMEOUT = 5.0
# A new Redis subscription counts as having seen everything up to this long before it started, so
# the catch-up after a reconnect also covers clocks a little apart between this host and Redis.
CLOCK_MARGIN_MS = 2000

OnEvent = Callable[["Event"], None]


def parse_id(value: str) -> tuple[int, int]:
    """An event id ``"<ms>-<seq>"`` as a comparable pair; ValueError for anything else."""
    if not isinstance(value, str) or not EVENT_ID.match(value):
        raise ValueError(f"not an event id: {value!r} (expected '<milliseconds>-<sequence>')")
    ms, _, seq = value.partition("-")
    return int(ms), int(seq)


def format_id(key: tuple[int, int]) -> str:
    """The string form of an id pair."""
    return f"{key[0]}-{key[1]}"


@dataclass(frozen=True, slots=True)
class Event:
    """One published message: its channel, its id and its JSON text (decoded on demand)."""

    channel: str
    id: str
    raw: str

    @property
    def data(self) -> dict[str, Any]:
        """The message as published."""
        return json.loads(self.raw)


@dataclass(frozen=True, slots=True)
class History:
    """Events after a cursor, oldest first; ``complete`` is False when some may have been lost."""

    events: list[Event]
    complete: bool


class Subscription(Protocol):
    """A changing set of channels whose events are handed to one callback, in id order per channel."""

    def add(self, *channels: str) -> Awaitable[None]:
        """Start receiving ``channels``; awaiting the result waits until delivery is live."""

    def remove(self, *channels: str) -> None:
        """Stop receiving ``channels``."""

    async def close(self) -> None:
        """Stop receiving anything."""


class Broker(Protocol):
    """Publish a JSON message to a channel; every subscriber of that channel, in any worker, gets it."""

    async def publish(self, channel: str, message: dict[str, Any]) -> str:
        """Send ``message`` to the channel's subscribers and keep it in its history; returns its id."""

    def subscribe(self, *channels: str) -> Any:
        """An async context manager yielding an async iterator of the channels' messages."""

    def subscription(self, on_event: OnEvent) -> Subscription:
        """A subscription whose events are passed to ``on_event`` (which must not block)."""

    async def history(self, channel: str, after: str, limit: int | None = None) -> History:
        """The channel's events after the id ``after`` (at most ``limit``, the newest ones)."""

    async def ping(self) -> None:
        """Raise if the broker cannot be used."""

    async def close(self) -> None:
        """Release connections."""


def _encode(message: dict[str, Any]) -> str:
    if not isinstance(message, dict):
        raise TypeError(f"a broker message must be a dict, not {type(message).__name__}")
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def _done() -> asyncio.Future[None]:
    future = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


class _SubscribeMixin:
    """``subscribe()`` for both brokers, built on ``subscription()``."""

    _queue_size: int

    def subscription(self, on_event: OnEvent) -> Subscription:  # pragma: no cover - overridden
        raise NotImplementedError

    @asynccontextmanager
    async def subscribe(self, *channels: str) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """Receive the channels' messages for as long as the context is open."""
        queue: asyncio.Queue[Event] = asyncio.Queue(self._queue_size)

        def put(event: Event) -> None:
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                log.warning("broker subscriber queue full; message dropped", extra={"channel": event.channel})

        subscription = self.subscription(put)

        async def messages() -> AsyncIterator[dict[str, Any]]:
            while True:
                yield (await queue.get()).data

        try:
            try:
                await asyncio.wait_for(asyncio.shield(subscription.add(*channels)), CONFIRM_TIMEOUT)
            except TimeoutError:
                log.warning("broker subscription not confirmed yet; it will be retried", extra={"channel": channels})
            yield messages()
        finally:
            await subscription.close()


# --- In-process ---------------------------------------------------------------------------------------


@dataclass
class _ChannelHistory:
    # Ids at or below ``floor`` may have been dropped; a cursor at or above it recovers everything.
    floor: tuple[int, int]
    entries: deque[tuple[tuple[int, int], Event]] = field(default_factory=deque)


class _LocalSubscription:
    """A subscription to an ``InProcessBroker``: events are handed over synchronously by ``publish``."""

    def __init__(self, broker: InProcessBroker, on_event: OnEvent) -> None:
        self._broker = broker
        self._on_event = on_event
        self.channels: set[str] = set()

    def add(self, *channels: str) -> Awaitable[None]:
        """Start receiving ``channels`` (live at once)."""
        for channel in channels:
            if channel not in self.channels:
                self.channels.add(channel)
                self._broker._subscribers.setdefault(channel, set()).add(self)
        return _done()

    def remove(self, *channels: str) -> None:
        """Stop receiving ``channels``."""
        for channel in channels:
            if channel in self.channels:
                self.channels.discard(channel)
                subscribers = self._broker._subscribers.get(channel)
                if subscribers is not None:
                    subscribers.discard(self)
                    if not subscribers:
                        del self._broker._subscribers[channel]

    def deliver(self, event: Event) -> None:
        """Hand ``event`` to the callback; its failure is the subscriber's, never the publisher's."""
        try:
            self._on_event(event)
        except Exception:
            log.exception("broker subscriber failed", extra={"channel": event.channel})

    async def close(self) -> None:
        """Stop receiving anything."""
        self.remove(*list(self.channels))


class InProcessBroker(_SubscribeMixin):
    """The embedded default: subscribers and history live in this process (one worker only)."""

    def __init__(self, queue_size: int = 1000, *, history_size: int = 100, history_channels: int = 10_000) -> None:
        self._subscribers: dict[str, set[_LocalSubscription]] = {}
        self._queue_size = queue_size
        self.history_size = history_size
        # Least recently published channel first; the oldest is forgotten beyond ``history_channels``.
        self._histories: OrderedDict[str, _ChannelHistory] = OrderedDict()
        self._history_channels = history_channels
        now = time.time_ns() // 1_000_000
        # Cursors from before this process started cannot be recovered: nothing here remembers them.
        self._start_floor = (now, 0)
        self._forgotten = (0, 0)
        self._last = (now, 0)

    def _next_id(self) -> tuple[int, int]:
        now = time.time_ns() // 1_000_000
        last_ms, seq = self._last
        # A clock that steps back keeps the last millisecond and counts on, so ids never go down.
        self._last = (now, 0) if now > last_ms else (last_ms, seq + 1)
        return self._last

    def _gap_floor(self) -> tuple[int, int]:
        return max(self._start_floor, self._forgotten)

    async def publish(self, channel: str, message: dict[str, Any]) -> str:
        """Keep ``message`` in the channel's history and hand it to every subscriber; returns its id."""
        raw = _encode(message)
        key = self._next_id()
        event = Event(channel, format_id(key), raw)
        if self.history_size > 0:
            self._remember(channel, key, event)
        for subscription in tuple(self._subscribers.get(channel, ())):
            subscription.deliver(event)
        return event.id

    def _remember(self, channel: str, key: tuple[int, int], event: Event) -> None:
        record = self._histories.get(channel)
        if record is None:
            record = self._histories[channel] = _ChannelHistory(floor=self._gap_floor())
            if len(self._histories) > self._history_channels:
                _, dropped = self._histories.popitem(last=False)
                self._forgotten = max(self._forgotten, dropped.entries[-1][0])
        else:
            self._histories.move_to_end(channel)
        while len(record.entries) >= self.history_size:
            record.floor = record.entries.popleft()[0]
        record.entries.append((key, event))

    async def history(self, channel: str, after: str, limit: int | None = None) -> History:
        """The channel's events after ``after``; incomplete when older ones were dropped or predate us."""
        cursor = parse_id(after)
        if self.history_size <= 0:
            return History([], False)  # nothing is kept, so nothing can be promised
        limit = limit or self.history_size
        record = self._histories.get(channel)
        if record is None:
            return History([], cursor >= self._gap_floor())
        newer = [event for key, event in record.entries if key > cursor]
        complete = cursor >= record.floor
        if len(newer) > limit:
            newer, complete = newer[-limit:], False
        return History(newer, complete)

    def subscription(self, on_event: OnEvent) -> _LocalSubscription:
        """A subscription whose events ``publish`` hands to ``on_event`` synchronously."""
        return _LocalSubscription(self, on_event)

    async def ping(self) -> None:
        """Always ready."""

    async def close(self) -> None:
        """Nothing to release."""


# --- Redis ----------------------------------------------------------------------------------------------

# One round trip, atomic: append to the stream (trimmed, expiring) and announce "<id> <json>" live.
_PUBLISH_LUA = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'd', ARGV[2])
if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
redis.call('PUBLISH', ARGV[4], id .. ' ' .. ARGV[2])
return id
"""
_CATCH_UP_BATCH = 200


class _RedisSubscription:
    """A subscription over one dedicated pub/sub connection that re-establishes itself.

    A reader task owns the connection. When it breaks (Redis restarted, network cut) the task backs
    off, reconnects, re-subscribes every channel, waits for Redis to confirm, then reads from the
    streams what each channel published since the last id delivered, dropping duplicates by id.
    """

    def __init__(self, broker: RedisBroker, on_event: OnEvent) -> None:
        self._broker = broker
        self._on_event = on_event
        self.channels: set[str] = set()  # wanted
        self._sent: set[str] = set()  # SUBSCRIBE sent on the current connection
        self._live: set[str] = set()  # confirmed by Redis on the current connection
        self._last: dict[str, tuple[int, int]] = {}  # last id delivered (or the starting point)
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._pubsub: Any = None
        self._lock = asyncio.Lock()  # one (un)subscribe exchange at a time on the connection
        self._closed = False
        self.reconnects = 0
        self._task = asyncio.get_running_loop().create_task(self._run(), name="redis-subscription")

    # -- the channel set -----------------------------------------------------------------------------

    def add(self, *channels: str) -> Awaitable[None]:
        """Start receiving ``channels``; awaiting the result waits for Redis to confirm them."""
        loop = asyncio.get_running_loop()
        start = (time.time_ns() // 1_000_000 - CLOCK_MARGIN_MS, 0)
        waits = []
        for channel in channels:
            if channel not in self.channels:
                self.channels.add(channel)
                self._last.setdefault(channel, start)
            if channel in self._live:
                continue
            future = self._waiting.get(channel)
            if future is None:
                future = self._waiting[channel] = loop.create_future()
            waits.append(future)
        self._sync_soon()
        if not waits:
            return _done()
        return asyncio.gather(*waits)

    def remove(self, *channels: str) -> None:
        """Stop receiving ``channels``."""
        for channel in channels:
            self.channels.discard(channel)
            self._last.pop(channel, None)
            future = self._waiting.pop(channel, None)
            if future is not None and not future.done():
                future.set_result(None)  # nobody needs to wait for a channel no longer wanted
        self._sync_soon()

    def _sync_soon(self) -> None:
        if self._pubsub is not None and not self._closed and (self.channels != self._sent):
            asyncio.get_running_loop().create_task(self._sync())

    async def _sync(self) -> None:
        """Bring the connection's subscriptions in line with the wanted channels."""
        async with self._lock:
            pubsub = self._pubsub
            if pubsub is None:
                return  # the reader subscribes everything wanted when it reconnects
            try:
                new = self.channels - self._sent
                gone = self._sent - self.channels
                if new:
                    self._sent |= new
                    await _send(pubsub, "SUBSCRIBE", [self._broker.prefix + c for c in new])
                if gone:
                    self._sent -= gone
                    self._live -= gone
                    await _send(pubsub, "UNSUBSCRIBE", [self._broker.prefix + c for c in gone])
            except Exception as exc:  # the reader sees the broken connection and starts over
                log.warning("redis subscription update failed: %s", exc)

    # -- reading ------------------------------------------------------------------------------------

    async def _run(self) -> None:
        backoff, failures = 0.05, 0
        while not self._closed:
            try:
                await self._connect()
                if failures:
                    log.warning("redis subscription restored after %d attempt(s)", failures)
                backoff, failures = 0.05, 0
                # Checked on every turn, not only left to cancellation: redis-py's read with a timeout
                # can swallow a cancellation that lands as the timeout fires (Python 3.11), and then
                # this loop must still end.
                while not self._closed:
                    message = await self._pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._handle(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._closed:
                    return
                failures += 1
                # Loud once, then about every half minute while Redis stays away.
                log.log(logging.WARNING if failures == 1 or failures % 30 == 0 else logging.DEBUG,
                        "redis subscription lost (%s: %s); reconnecting in %.2fs", type(exc).__name__, exc, backoff)
                await self._disconnect()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                self.reconnects += 1

    async def _connect(self) -> None:
        pubsub = self._broker._pubsub_redis.pubsub()
        try:
            await pubsub.connect()
            async with self._lock:
                self._pubsub = pubsub
                self._sent, self._live = set(self.channels), set()
                if self._sent:
                    await _send(pubsub, "SUBSCRIBE", [self._broker.prefix + c for c in self._sent])
            # Catch up only once Redis confirms: from then on nothing published can fall in a gap.
            backlog: list[dict[str, Any]] = []
            deadline = time.monotonic() + CONFIRM_TIMEOUT
            while self._sent - self._live and not self._closed:
                if time.monotonic() > deadline:
                    raise TimeoutError("Redis did not confirm the subscriptions")
                message = await pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                if message.get("type") == "message":
                    backlog.append(message)
                else:
                    self._handle(message)
            await self._catch_up(list(self._live))
            for message in backlog:
                self._handle(message)
        except BaseException:
            if self._pubsub is None:
                await _quietly(pubsub.aclose())
            raise

    async def _catch_up(self, channels: list[str]) -> None:
        """Deliver what each channel published since the last id this subscription delivered."""
        redis = self._broker._redis
        for start in range(0, len(channels), _CATCH_UP_BATCH):
            batch = [c for c in channels[start:start + _CATCH_UP_BATCH] if c in self._last]
            if not batch:
                continue
            async with redis.pipeline(transaction=False) as pipe:
                for channel in batch:
                    pipe.xrange(self._broker.stream_key(channel), min=f"({format_id(self._last[channel])}",
                                count=self._broker.history_size * 2)
                results = await pipe.execute()
            for channel, entries in zip(batch, results):
                for entry_id, fields in entries:
                    self._deliver(channel, entry_id, fields.get("d", "null"))

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        name = message.get("channel")
        if not isinstance(name, str) or not name.startswith(self._broker.prefix):
            return
        channel = name[len(self._broker.prefix):]
        if kind == "message":
            entry_id, _, raw = message["data"].partition(" ")
            self._deliver(channel, entry_id, raw)
        elif kind == "subscribe":
            if channel in self._sent:
                self._live.add(channel)
            future = self._waiting.pop(channel, None)
            if future is not None and not future.done():
                future.set_result(None)

    def _deliver(self, channel: str, entry_id: str, raw: str) -> None:
        if channel not in self.channels:
            return  # unsubscribed meanwhile
        try:
            key = parse_id(entry_id)
        except ValueError:
            log.warning("malformed broker message ignored", extra={"channel": channel})
            return
        last = self._last.get(channel)
        if last is not None and key <= last:
            return  # already delivered (live and catch-up overlap after a reconnect)
        self._last[channel] = key
        try:
            self._on_event(Event(channel, entry_id, raw))
        except Exception:
            log.exception("broker subscriber failed", extra={"channel": channel})

    async def _disconnect(self) -> None:
        async with self._lock:
            pubsub, self._pubsub = self._pubsub, None
            self._sent, self._live = set(), set()
        if pubsub is not None:
            await _quietly(pubsub.aclose())

    async def close(self) -> None:
        """Stop the reader and close the connection."""
        self._closed = True
        self._task.cancel()
        await asyncio.wait({self._task}, timeout=5)  # the reader also checks _closed at least once a second
        await self._disconnect()
        for future in self._waiting.values():
            if not future.done():
                future.set_result(None)
        self._waiting.clear()
        self._broker._subscriptions.discard(self)


async def _send(pubsub: Any, command: str, names: list[str]) -> None:
    # Straight to the connection: PubSub.execute_command would run a health check that reads a reply,
    # racing the reader task for the next message, and would resubscribe by itself after reconnecting.
    await pubsub.connection.send_command(command, *names, check_health=False)


async def _quietly(awaitable: Awaitable[Any]) -> None:
    try:
        await asyncio.wait_for(awaitable, 2)
    except Exception:  # closing a connection that is already broken
        pass


class RedisBroker(_SubscribeMixin):
    """Redis streams (history) and pub/sub (live) shared by every worker; reconnects by itself."""

    def __init__(self, url: str, *, prefix: str = "superapp:", namespace: str | None = None, history_size: int = 100,
                 history_ttl: int = 86_400, queue_size: int = 1000, outage_buffer: int = 10_000) -> None:
        import redis.asyncio as redis
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
        from redis.exceptions import ConnectionError, TimeoutError

        # A few quick retries: a command during a Redis restart waits briefly, then fails loudly
        # instead of stalling its caller for the library default of ten attempts.
        self._redis = redis.Redis.from_url(
            url, decode_responses=True, health_check_interval=15, socket_connect_timeout=5,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 3),
            retry_on_error=[ConnectionError, TimeoutError],
        )
        # Subscriptions get their own client that never retries by itself: a silent reconnect inside
        # redis-py would drop our subscriptions, so every failure reaches the subscription's reader,
        # which reconnects, re-subscribes and catches up from the streams.
        self._pubsub_redis = redis.Redis.from_url(
            url, decode_responses=True, health_check_interval=15, socket_connect_timeout=5,
            retry=Retry(NoBackoff(), 0),
        )
        # Pub/sub channels belong to the whole server, not to a database: deployments (or test runs)
        # sharing one Redis server under different database numbers would hear each other's live events.
        database = int(self._redis.connection_pool.connection_kwargs.get("db") or 0)
        self.prefix = prefix if database == 0 else f"{prefix}{database}:"
        # And one Redis database may serve two deployments (a benchmark beside a test run): each keeps to its
        # own channels and streams, named after the database it serves (``deployment_namespace``).
        if namespace:
            self.prefix += f"{namespace}:"
        self.history_size = history_size
        self.history_ttl = history_ttl
        self._queue_size = queue_size
        self._publish = self._redis.register_script(_PUBLISH_LUA)
        self._subscriptions: weakref.WeakSet[_RedisSubscription] = weakref.WeakSet()
        self._unreachable = (ConnectionError, TimeoutError, OSError)
        # (channel, JSON) published while Redis could not take them, oldest first (module docstring).
        self._held: deque[tuple[str, str]] = deque()
        self.outage_buffer = outage_buffer
        self.dropped = 0
        self._flusher: asyncio.Task[None] | None = None

    def stream_key(self, channel: str) -> str:
        """The Redis key of a channel's history stream."""
        return f"{self.prefix}stream:{channel}"

    async def publish(self, channel: str, message: dict[str, Any]) -> str:
        """Append ``message`` to the channel's stream and publish it live; returns the stream id.

        While Redis is unreachable the message is held here and sent when Redis returns; the id is
        then ``""`` (it is given when Redis takes the message).
        """
        raw = _encode(message)
        if not self._held:
            try:
                return await self._send(channel, raw)
            except self._unreachable as exc:
                log.warning("redis unreachable (%s: %s); holding live events in this process until it returns",
                            type(exc).__name__, exc)
        self._hold(channel, raw)
        return ""

    async def _send(self, channel: str, raw: str) -> str:
        return await self._publish(
            keys=[self.stream_key(channel)],
            args=[max(self.history_size, 1), raw, self.history_ttl, self.prefix + channel],
        )

    @property
    def held(self) -> int:
        """Events published during an outage that Redis has not taken yet."""
        return len(self._held)

    def _hold(self, channel: str, raw: str) -> None:
        if len(self._held) >= self.outage_buffer:
            self._held.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("redis outage: %d held live event(s) dropped (buffer of %d full)",
                          self.dropped, self.outage_buffer)
        self._held.append((channel, raw))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush(), name="redis-held-events")

    async def _flush(self) -> None:
        """Send the held events in order as soon as Redis takes them again."""
        delay, sent = 0.05, 0
        while self._held:
            channel, raw = self._held[0]
            try:
                await self._send(channel, raw)
            except self._unreachable:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            except Exception:  # Redis refused this one event (not an outage): it would never go through
                log.exception("a held live event was refused by Redis and dropped", extra={"channel": channel})
            else:
                sent += 1
                delay = 0.05
            self._held.popleft()
        log.warning("redis is back: %d live event(s) held during the outage were published", sent)

    async def history(self, channel: str, after: str, limit: int | None = None) -> History:
        """The channel's events after ``after``; complete when the stream still holds ``after`` or older."""
        cursor = parse_id(after)
        limit = limit or max(self.history_size, 1)
        key = self.stream_key(channel)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xrevrange(key, max="+", min=f"({after}", count=limit + 1)
            pipe.xrange(key, min="-", max="+", count=1)
            newest_first, first = await pipe.execute()
        # Trimming removes the oldest entries, so if an entry at or before the cursor survives,
        # nothing after it was lost. A missing stream (expired, or Redis lost its data) recovers nothing.
        complete = bool(first) and parse_id(first[0][0]) <= cursor
        if len(newest_first) > limit:
            newest_first, complete = newest_first[:limit], False
        events = [Event(channel, entry_id, fields.get("d", "null")) for entry_id, fields in reversed(newest_first)]
        return History(events, complete)

    def subscription(self, on_event: OnEvent) -> _RedisSubscription:
        """A subscription on its own pub/sub connection, which it re-establishes after failures."""
        subscription = _RedisSubscription(self, on_event)
        self._subscriptions.add(subscription)
        return subscription

    async def ping(self) -> None:
        """Raise if Redis does not answer."""
        await self._redis.ping()

    async def close(self) -> None:
        """Send what is still held (a few seconds at most), close open subscriptions and the connection pool."""
        if self._flusher is not None and not self._flusher.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._flusher), 5)
            except TimeoutError:
                self._flusher.cancel()
                log.error("shutting down with %d live event(s) Redis never took", len(self._held))
        for subscription in list(self._subscriptions):
            await subscription.close()
        await self._redis.aclose()
        await self._pubsub_redis.aclose()


def deployment_namespace(database_url: str) -> str:
    """A short name for the deployment that serves ``database_url``: the same for every worker on that database
    (only the database's name or file counts, not how the host is spelt), different for another database."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    name = url.database or ""
    if url.get_backend_name() == "sqlite" and name and name != ":memory:":
        from pathlib import Path

        name = str(Path(name).resolve())
    return hashlib.blake2s(f"{url.get_backend_name()}:{name}".encode(), digest_size=4).hexdigest()


def make_broker(redis_url: str | None, *, database_url: str | None = None,
                **options: Any) -> InProcessBroker | RedisBroker:
    """Redis when a URL is configured (its channels those of the deployment on ``database_url``), otherwise the
    in-process broker."""
    if not redis_url:
        return InProcessBroker(**options)
    if database_url is not None:
        options.setdefault("namespace", deployment_namespace(database_url))
    return RedisBroker(redis_url, **options)

