"""The host's one cache facility: bounded, expiring, thread-safe maps a mini-app asks the host for by name."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from cachetools import TTLCache

V = TypeVar("V")
_MISSING = object()


class Cache(Generic[V]):
    """At most ``max_entries`` values, each forgotten ``ttl`` seconds after it was kept (per process).

    Routes run in the thread pool, so every read and write holds a lock (cachetools' caches are not
    thread-safe). ``get_or_set`` computes outside the lock: two threads may both compute a missing value.
    """

    def __init__(self, *, ttl: float, max_entries: int) -> None:
        if ttl <= 0 or max_entries <= 0:
            raise ValueError("a cache needs a positive ttl and max_entries")
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: TTLCache[Hashable, V] = TTLCache(maxsize=max_entries, ttl=ttl)
        self._lock = threading.Lock()

    def get(self, key: Hashable, default: V | None = None) -> V | None:
        """The value kept under ``key``, or ``default`` when there is none or it expired."""
        with self._lock:
            return self._entries.get(key, default)

    def set(self, key: Hashable, value: V) -> None:
        """Keep ``value`` under ``key`` for the cache's ttl."""
        with self._lock:
            self._entries[key] = value

    def get_or_set(self, key: Hashable, compute: Callable[[], V]) -> V:
        """The value under ``key``, computing and keeping it when missing."""
        with self._lock:
            value = self._entries.get(key, _MISSING)
        if value is not _MISSING:
            return value  # type: ignore[return-value]
        value = compute()
        self.set(key, value)
        return value

    def discard(self, key: Hashable) -> None:
        """Forget ``key`` (after a write that changes what it holds)."""
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


class Caches:
    """The named caches of one host: ``caches.get("feedback", "stats", ttl=30, max_entries=256)``."""

    def __init__(self) -> None:
        self._caches: dict[tuple[str, str], Cache[object]] = {}
        self._lock = threading.Lock()

    def get(self, miniapp: str, name: str, *, ttl: float, max_entries: int) -> Cache[object]:
        """The cache ``name`` of ``miniapp``, made on first use; asking again with other bounds is an error."""
        with self._lock:
            cache = self._caches.get((miniapp, name))
            if cache is None:
                cache = self._caches[(miniapp, name)] = Cache(ttl=ttl, max_entries=max_entries)
            elif (cache.ttl, cache.max_entries) != (ttl, max_entries):
                raise ValueError(f"cache {miniapp}:{name} already exists with ttl={cache.ttl}, "
                                 f"max_entries={cache.max_entries}")
            return cache

    def clear(self) -> None:
        """Empty every cache (tests, and after a bulk import)."""
        with self._lock:
            for cache in self._caches.values():
                cache.clear()
