"""Each worker's memory of people's inbox first pages and badges, kept fresh by change notes on the broker.

A resident's app asks for the badge and the first inbox page far more often than anything reaches
them. Reading them costs three queries (``push.inbox``); remembering the answer costs a dictionary
look-up. What makes a remembered answer wrong is known exactly: a notification to one of the person's
audiences (their unit, a role they hold, the city), a notice naming them, or a change of their own
(read marks, follows, home unit, roles, sign-out). Each such change is a *change note* naming the keys
it touches (``unit:hue-kim-long``, ``city``, ``user:42``); notes are applied in this worker at once and
published on the broker channel ``inbox:changed`` so every other worker applies them too (role,
home-unit and session changes arrive through the authentication invalidations every worker already
follows: ``Authenticator.on_forget``).

Freshness rule: every note gets the next number of a per-worker counter and is recorded against its
keys; an answer remembers the counter's value taken *before* its queries ran and is served only while
no note on the person's own key or on any of their audiences is newer. A note that arrives after the
queries began therefore discards the answer, never the reverse. Entries also expire after
``ttl`` seconds, which bounds what a lost note (a broker outage, a script that sends without a
server loop) can cost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from threading import Lock
from typing import Any

from cachetools import TTLCache

from push.inbox_answers import RememberedInboxAnswers

log = logging.getLogger(__name__)
CHANNEL = "inbox:changed"
EVERYONE = "*"
# A note naming more people than this is published as "everyone changed": a bounded message.
MAX_KEYS_PER_NOTE = 1000


def user_key(user_id: int) -> str:
    """The change key of one person's own inbox (personal notices, read marks, their audiences)."""
    return f"user:{user_id}"


@dataclass(frozen=True)
class _Remembered:
    stamp: int
    keys: tuple[str, ...]
    value: Any


class InboxCache:
    """Remembered inbox answers per person, discarded by change notes (see the module docstring)."""

    def __init__(self, broker: Any = None, *, max_entries: int = 200_000, ttl: float = 30.0,
                 max_notes: int = 500_000) -> None:
        self._broker = broker
        self._entries: TTLCache[Hashable, _Remembered] = TTLCache(maxsize=max_entries, ttl=ttl)
        self._notes: dict[str, int] = {}  # key -> number of its newest note
        self._max_notes = max_notes
        self._counter = 0
        self._floor = 0  # answers stamped before this are discarded (notes were forgotten to stay bounded)
        self._lock = Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- reading -------------------------------------------------------------------------------------

    def stamp(self) -> int:
        """The counter now; take it before querying and pass it to ``remember``."""
        return self._counter

    def recall(self, key: Hashable) -> Any:
        """The remembered answer under ``key`` if no newer note touches it, else None."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            if found.stamp < self._floor or any(self._notes.get(k, 0) > found.stamp for k in found.keys):
                self._entries.pop(key, None)
                return None
            return found.value

    def remember(self, key: Hashable, value: Any, *, stamp: int, user_id: int, audiences: Iterable[str]) -> None:
        """Keep ``value`` under ``key``; it depends on ``user_id``'s own key and on ``audiences``."""
        keys = (EVERYONE, user_key(user_id), *audiences)
        with self._lock:
            if stamp < self._floor or any(self._notes.get(k, 0) > stamp for k in keys):
                return  # a change arrived while the answer was being read: it may already be stale
            self._entries[key] = _Remembered(stamp, keys, value)

    # -- changing ------------------------------------------------------------------------------------

    def apply(self, keys: Iterable[str]) -> None:
        """Record a change note in this worker (answers depending on any of ``keys`` are discarded)."""
        with self._lock:
            self._counter += 1
            for key in keys:
                self._notes[key] = self._counter
            if len(self._notes) > self._max_notes:
                # Forget every note and every answer older than now: correct, and bounded memory.
                self._notes.clear()
                self._floor = self._counter
                self._entries.clear()

    def changed(self, keys: Iterable[str]) -> None:
        """A change committed in this worker: apply it here now, and tell the other workers.

        Callable from any thread (the endpoints run in the thread pool); publishing runs on the loop.
        """
        keys = list(dict.fromkeys(keys))
        if len(keys) > MAX_KEYS_PER_NOTE:
            keys = [EVERYONE]
        self.apply(keys)
        loop = self._loop
        if self._broker is None or loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        coroutine = self._publish(keys)
        if running is loop:
            loop.create_task(coroutine)
        else:
            asyncio.run_coroutine_threadsafe(coroutine, loop)

    async def _publish(self, keys: list[str]) -> None:
        try:
            await self._broker.publish(CHANNEL, {"keys": keys})
        except Exception:  # entries expire after ttl; a lost note costs at most that much staleness
            log.exception("could not publish an inbox change note")

    # -- following the other workers -----------------------------------------------------------------

    async def listen(self) -> None:
        """Apply the change notes of every worker until cancelled (run by the server's lifespan)."""
        self._loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    async with self._broker.subscribe(CHANNEL) as messages:
                        # Notes missed while (re)subscribing are unknown: start from a clean slate.
                        self.apply([EVERYONE])
                        async for message in messages:
                            self.apply(str(k) for k in message.get("keys", ()))
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("inbox change listener failed; retrying")
                    self.apply([EVERYONE])
                    await asyncio.sleep(1)
        finally:
            self._loop = None


def install(app: Any) -> list[Callable[[], Awaitable[None]]]:
    """Attach ``app.state.inbox_cache`` (on the app's broker) and return its listener for the lifespan.

    Also ``app.state.followed_units(user_id)``, what core's warnings banner uses of a person's follows
    (core never imports push), remembered in the same cache.
    """
    from push.inbox import followed_units

    seconds = app.state.settings.inbox_cache_seconds
    app.state.followed_units = lambda user_id: followed_units(app.state.engine, app.state.inbox_cache, user_id)
    if seconds <= 0:  # switched off: every request reads the database
        app.state.inbox_cache = None
        return []
    cache = InboxCache(app.state.broker, ttl=seconds)
    app.state.inbox_cache = cache
    # Innermost layer (added before the host's own middleware): remembered answers skip routing.
    app.add_middleware(RememberedInboxAnswers, host=app)
    # Sign-outs, role and home-unit changes reach every worker as authentication invalidations already.
    app.state.authenticator.on_forget(lambda user_id: cache.apply([user_key(user_id)]))
    return [cache.listen]
