"""Rendered answers (map layers, Open311 listings, dashboards, queue pages) kept while the reports are unchanged.

An answer is keyed by the reports' data version (newest report id, latest ``updated_at``: every filing and
every move of a report changes one of them) and by everything that shaped it (filters, the caller's
units). A stored answer is served until a report changes or it has lived ``ttl`` seconds, whichever is
first: answers that say "overdue" depend on the clock too. Memory is bounded in bytes, least recently
used answers going first. One cache per database engine, so two apps in one process never share answers.

Reading the data version is itself a database round trip, which would cost more than the answer it
guards; so the version read last is trusted for ``VERSION_SECONDS`` (``fresh`` then serves without the
database), and forgotten at once when this process commits anything on the engine. A change committed
by another worker is seen within ``VERSION_SECONDS``. While one request renders an answer, others asking
for the same one wait for it instead of rendering it too.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from typing import Any

from cachetools import TLRUCache
from sqlalchemy import event, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from miniapps.feedback.models import FeedbackReport

MAX_BYTES = 64 * 2**20  # rendered answers kept per process; a 5,000-feature layer is about 2 MB
TTL_SECONDS = 60.0
VERSION_SECONDS = 1.0

Version = tuple[Any, Any]


def data_version(session: Session) -> Version:
    """(newest report id, latest update): two index look-ups, changed by every filing and every move."""
    newest, updated = session.exec(select(func.max(FeedbackReport.id), func.max(FeedbackReport.updated_at))).one()
    return newest, updated


class AnswerCache:
    """Bytes rendered from the reports, by (data version, key); bounded in bytes and in age."""

    def __init__(self, max_bytes: int = MAX_BYTES, ttl: float = TTL_SECONDS,
                 version_seconds: float = VERSION_SECONDS) -> None:
        self._answers: TLRUCache[Hashable, bytes] = TLRUCache(
            maxsize=max_bytes, ttu=lambda _key, _value, now: now + ttl, getsizeof=len)
        self._lock = threading.Lock()  # cachetools caches are not thread-safe; routes run in the thread pool
        self._rendering: dict[Hashable, threading.Lock] = {}
        self._version: Version | None = None
        self._version_read = -math.inf
        self._version_seconds = version_seconds

    def forget_version(self) -> None:
        """Something was committed here: the next answer reads the data version again."""
        self._version_read = -math.inf

    def fresh(self, key: Hashable) -> bytes | None:
        """The stored answer for ``key`` when the data version read last is still trusted; no database."""
        if time.monotonic() - self._version_read > self._version_seconds:
            return None
        with self._lock:
            return self._answers.get((self._version, key))

    def answer(self, session: Session, key: Hashable, render: Callable[[], bytes]) -> bytes:
        """The stored answer for ``key`` at the current data version, else ``render()`` stored and returned."""
        read_at = time.monotonic()
        version = data_version(session)
        self._version, self._version_read = version, read_at
        versioned = (version, key)
        with self._lock:
            found = self._answers.get(versioned)
            if found is not None:
                return found
            rendering = self._rendering.setdefault(versioned, threading.Lock())
        with rendering:  # one render per answer; the others wait, then find it stored
            with self._lock:
                found = self._answers.get(versioned)
            if found is not None:
                return found
            body = render()
            with self._lock:
                if len(body) <= self._answers.maxsize:
                    self._answers[versioned] = body
                self._rendering.pop(versioned, None)
        return body

    def clear(self) -> None:
        """Forget every stored answer."""
        with self._lock:
            self._answers.clear()
        self.forget_version()


_caches: weakref.WeakKeyDictionary[Engine, AnswerCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def for_engine(engine: Engine) -> AnswerCache:
    """The answer cache of the database behind ``engine``."""
    with _caches_lock:
        cache = _caches.get(engine)
        if cache is None:
            cache = _caches[engine] = AnswerCache()
            event.listen(engine, "commit", lambda _connection, forget=cache.forget_version: forget())
        return cache
