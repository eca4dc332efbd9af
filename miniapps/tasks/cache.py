"""A short-lived, per-process cache of computed rankings, dropped whenever this process changes the data.

Evaluating twelve months for 40 units reads every assignment and report of the year; the ranking page
asks for that on each view. Writes in this process (tasks, reports, reviews, imports, closing a month)
drop the cache at once; writes in another worker show here within ``TTL_SECONDS``."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Hashable
from typing import Any

TTL_SECONDS = 10.0
_lock = threading.Lock()
_entries: weakref.WeakKeyDictionary[Any, dict[Hashable, tuple[float, int, Any]]] = weakref.WeakKeyDictionary()
_versions: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def changed(engine: Any) -> None:
    """Forget what was computed from ``engine``'s data (call after committing a change)."""
    with _lock:
        _versions[engine] = _versions.get(engine, 0) + 1
        _entries.pop(engine, None)


def cached(engine: Any, key: Hashable, compute: Callable[[], Any]) -> Any:
    """``compute()``, or its result from the last ``TTL_SECONDS`` if the data has not changed since."""
    with _lock:
        version = _versions.get(engine, 0)
        hit = _entries.get(engine, {}).get(key)
    if hit is not None and hit[0] > time.monotonic() and hit[1] == version:
        return hit[2]
    value = compute()
    with _lock:
        if _versions.get(engine, 0) == version:  # nothing changed while computing
            _entries.setdefault(engine, {})[key] = (time.monotonic() + TTL_SECONDS, version, value)
    return value
