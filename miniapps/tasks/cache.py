"""A short-lived cache of computed rankings, one per host, dropped whenever this process changes the data.

Evaluating twelve months for 40 units reads every assignment and report of the year; the ranking page
asks for that on each view. Writes in this process (tasks, reports, reviews, imports, closing a month)
drop the cache as they commit: the use case calls ``changed(session)`` before its commit, which marks
the transaction, and the host's cache forgets everything when a marked transaction commits on its
engine. Writes in another worker show here within ``TTL_SECONDS`` (plus the time one recomputation
takes: see below). The cache lives in the host's state slot (``rankings_cache(host)``), so two apps in
one process never share rankings.

Two things keep a busy page from stalling when an entry has to be computed again:

- **one computation per key**: callers who find nothing usable while another thread is already computing
  that key for the same data version wait for its result instead of computing it again (32 connections
  each evaluating a year at once took over a second each, all holding the GIL);
- **stale while refreshing**: an entry that only aged past ``TTL_SECONDS`` (no write in this process since)
  is still served to everyone else while one caller computes its replacement. An entry made stale by a
  write in this process is never served again."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlmodel import Session

MINIAPP = "tasks"
TTL_SECONDS = 10.0
MISSING: Any = object()  # what ``peek`` answers when the caller has to compute (or wait)
_CHANGED = "tasks.rankings_changed"  # the mark on a connection whose transaction changes ranked data


@dataclass
class _Flight:
    """One computation in progress, for the callers waiting on it."""

    version: int
    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: BaseException | None = None


class Rankings:
    """Computed rankings (and pages rendered from them) by key, each kept ``TTL_SECONDS`` and forgotten at
    once by ``forget`` (a write committed in this process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[Hashable, tuple[float, int, Any]] = {}
        self._version = 0
        self._flights: dict[Hashable, _Flight] = {}

    def forget(self) -> None:
        """Forget what was computed (the data changed)."""
        with self._lock:
            self._version += 1
            self._entries.clear()

    def version(self) -> int:
        """How many times this process has changed the data (part of a key for derived values)."""
        with self._lock:
            return self._version

    def peek(self, key: Hashable) -> Any:
        """The cached value when it can be served without computing (fresh, or aged while a refresh runs),
        else ``MISSING``; never blocks, so the event loop may call it."""
        with self._lock:
            hit = self._entries.get(key)
            if hit is None or hit[1] != self._version:
                return MISSING
            if hit[0] > time.monotonic() or key in self._flights:
                return hit[2]
        return MISSING

    def cached(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()``, or its result from the last ``TTL_SECONDS`` if the data has not changed since."""
        with self._lock:
            current = self._version
            hit = self._entries.get(key)
            flight = self._flights.get(key)
            usable = hit is not None and hit[1] == current
            if usable and hit[0] > time.monotonic():  # type: ignore[index]
                return hit[2]  # type: ignore[index]
            if flight is not None and flight.version == current:
                if usable:
                    return hit[2]  # type: ignore[index]  # aged only: someone is already refreshing it
                leader = False
            else:
                flight = self._flights[key] = _Flight(current)
                leader = True
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.value
        try:
            value = compute()
        except BaseException as exc:
            flight.error = exc
            raise
        else:
            flight.value = value
            with self._lock:
                if self._version == current:  # nothing changed while computing
                    self._entries[key] = (time.monotonic() + TTL_SECONDS, current, value)
            return value
        finally:
            with self._lock:
                if self._flights.get(key) is flight:
                    del self._flights[key]
            flight.done.set()


def rankings_cache(host: Any) -> Rankings:
    """The host's ranking cache, made on first use and told of every marked commit on the host's engine."""
    state = vars(host.state(MINIAPP))
    found = state.get("rankings")
    if found is not None:
        return found  # type: ignore[no-any-return]
    made = Rankings()
    found = state.setdefault("rankings", made)  # one per host even when two threads get here at once
    if found is made:
        def committed(connection: Any) -> None:
            if connection.info.pop(_CHANGED, False):
                made.forget()

        def rolled_back(connection: Any) -> None:
            connection.info.pop(_CHANGED, None)

        event.listen(host.engine, "commit", committed)
        event.listen(host.engine, "rollback", rolled_back)
    return found  # type: ignore[no-any-return]


def changed(session: Session) -> None:
    """Mark ``session``'s transaction as changing ranked data (call before its commit): the host's ranking
    cache forgets what it computed when the transaction commits."""
    session.connection().info[_CHANGED] = True
