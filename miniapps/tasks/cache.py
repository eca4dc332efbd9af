"""A short-lived, per-process cache of computed rankings, dropped whenever this process changes the data.

Evaluating twelve months for 40 units reads every assignment and report of the year; the ranking page
asks for that on each view. Writes in this process (tasks, reports, reviews, imports, closing a month)
drop the cache at once; writes in another worker show here within ``TTL_SECONDS`` (plus the time one
recomputation takes: see below).

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
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

TTL_SECONDS = 10.0
MISSING: Any = object()  # what ``peek`` answers when the caller has to compute (or wait)
_lock = threading.Lock()
_entries: weakref.WeakKeyDictionary[Any, dict[Hashable, tuple[float, int, Any]]] = weakref.WeakKeyDictionary()
_versions: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
_flights: weakref.WeakKeyDictionary[Any, dict[Hashable, _Flight]] = weakref.WeakKeyDictionary()


@dataclass
class _Flight:
    """One computation in progress, for the callers waiting on it."""

    version: int
    done: threading.Event = field(default_factory=threading.Event)
    value: Any = None
    error: BaseException | None = None


def changed(engine: Any) -> None:
    """Forget what was computed from ``engine``'s data (call after committing a change)."""
    with _lock:
        _versions[engine] = _versions.get(engine, 0) + 1
        _entries.pop(engine, None)


def version(engine: Any) -> int:
    """How many times this process has changed ``engine``'s data (part of a key for derived values)."""
    with _lock:
        return _versions.get(engine, 0)


def peek(engine: Any, key: Hashable) -> Any:
    """The cached value when it can be served without computing (fresh, or aged while a refresh runs),
    else ``MISSING``; never blocks, so the event loop may call it."""
    with _lock:
        hit = _entries.get(engine, {}).get(key)
        if hit is None or hit[1] != _versions.get(engine, 0):
            return MISSING
        if hit[0] > time.monotonic() or key in _flights.get(engine, {}):
            return hit[2]
    return MISSING


def cached(engine: Any, key: Hashable, compute: Callable[[], Any]) -> Any:
    """``compute()``, or its result from the last ``TTL_SECONDS`` if the data has not changed since."""
    with _lock:
        current = _versions.get(engine, 0)
        hit = _entries.get(engine, {}).get(key)
        flights = _flights.setdefault(engine, {})
        flight = flights.get(key)
        usable = hit is not None and hit[1] == current
        if usable and hit[0] > time.monotonic():
            return hit[2]
        if flight is not None and flight.version == current:
            if usable:
                return hit[2]  # aged only: someone is already refreshing it
            leader = False
        else:
            flight = flights[key] = _Flight(current)
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
        with _lock:
            if _versions.get(engine, 0) == current:  # nothing changed while computing
                _entries.setdefault(engine, {})[key] = (time.monotonic() + TTL_SECONDS, current, value)
        return value
    finally:
        with _lock:
            if _flights.get(engine, {}).get(key) is flight:
                del _flights[engine][key]
        flight.done.set()
