"""Rendered answers (map layers, Open311 listings, dashboards, queue pages) kept while the reports are unchanged.

An answer is keyed by the reports' data version (newest report id, latest ``updated_at``: every filing and
every move of a report changes one of them) and by everything that shaped it (filters, the caller's
units). A stored answer is served until a report changes or it has lived ``ttl`` seconds, whichever is
first: answers that say "overdue" depend on the clock too. Memory is bounded in bytes, least recently
used answers going first. One cache per host (``answer_cache(host)``), so two apps in one process never share
answers.

Reading the data version is itself a database round trip, which would cost more than the answer it
guards; so the version read last is trusted for ``VERSION_SECONDS`` (``fresh`` then serves without the
database), and forgotten at once when this process commits anything on the engine. A change committed
by another worker is seen within ``VERSION_SECONDS``. When the trusted version lapses, one request reads
it again and the others keep being served the stored answer meanwhile (for at most another
``VERSION_SECONDS``), so a busy map does not send every request in flight to the thread pool and the
database at once. While one request renders an answer, others asking for the same one wait for it
instead of rendering it too.

Map layers are kept encoded (``EncodedAnswer``: the JSON, the same gzipped, an ETag), so a cache hit
costs no serialising, no compressing and, for a phone that already holds the layer, no body at all.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from cachetools import TLRUCache
from sqlalchemy import event, func
from sqlmodel import Session, select

from miniapps.feedback.models import FeedbackReport

MINIAPP = "feedback"
MAX_BYTES = 64 * 2**20  # rendered answers kept per process; a 5,000-feature layer is about 2 MB
TTL_SECONDS = 60.0
VERSION_SECONDS = 1.0

Version = tuple[Any, Any]


@dataclass(frozen=True, slots=True)
class EncodedAnswer:
    """An answer ready to send: its bytes, the same gzipped, and the strong ETag of the bytes."""

    body: bytes
    gzipped: bytes
    etag: str

    @classmethod
    def of(cls, body: bytes) -> EncodedAnswer:
        """Encode ``body`` once (gzip level 5: most of level 9's size at a fraction of its time)."""
        return cls(body, gzip.compress(body, compresslevel=5), '"' + hashlib.sha256(body).hexdigest()[:32] + '"')


def _size(answer: bytes | EncodedAnswer) -> int:
    return len(answer) if isinstance(answer, bytes) else len(answer.body) + len(answer.gzipped)


def data_version(session: Session) -> Version:
    """(newest report id, latest update): two index look-ups, changed by every filing and every move."""
    newest, updated = session.exec(select(func.max(FeedbackReport.id), func.max(FeedbackReport.updated_at))).one()
    return newest, updated


class AnswerCache:
    """Answers rendered from the reports (bytes or EncodedAnswer), by (data version, key); bounded in bytes and in age."""

    def __init__(self, max_bytes: int = MAX_BYTES, ttl: float = TTL_SECONDS,
                 version_seconds: float = VERSION_SECONDS) -> None:
        self._answers: TLRUCache[Hashable, Any] = TLRUCache(
            maxsize=max_bytes, ttu=lambda _key, _value, now: now + ttl, getsizeof=_size)
        self._lock = threading.Lock()  # cachetools caches are not thread-safe; routes run in the thread pool
        self._rendering: dict[Hashable, threading.Lock] = {}
        self._version: Version | None = None
        self._version_read = -math.inf
        self._version_seconds = version_seconds
        self._rechecking = -math.inf  # when a request last set out to read a lapsed version again

    def forget_version(self) -> None:
        """Something was committed here: no stored answer is served until the data version is read again."""
        self._version = None  # no answer is stored under None, so nothing older is served meanwhile
        self._version_read = self._rechecking = -math.inf

    def fresh(self, key: Hashable) -> Any:
        """The stored answer for ``key`` when the data version read last is still trusted; no database.

        Once that trust lapses, the first caller gets None (it reads the version through ``answer``)
        and callers after it are served the stored answer while that read is under way.
        """
        now = time.monotonic()
        if now - self._version_read > self._version_seconds:
            with self._lock:
                if now - self._rechecking > self._version_seconds:
                    self._rechecking = now  # this caller reads the version; the others need not
                    return None
        return self._stored(key)

    def trusted(self, key: Hashable) -> Any:
        """The stored answer for ``key`` only while the data version read last is trusted; else None, without
        claiming the version's re-read as ``fresh`` does (answers before routing: the route then reads it)."""
        if time.monotonic() - self._version_read > self._version_seconds:
            return None
        return self._stored(key)

    def _stored(self, key: Hashable) -> Any:
        with self._lock:
            return self._answers.get((self._version, key))

    def answer(self, session: Session, key: Hashable, render: Callable[[], Any]) -> Any:
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
                if _size(body) <= self._answers.maxsize:
                    self._answers[versioned] = body
                self._rendering.pop(versioned, None)
        return body

    def clear(self) -> None:
        """Forget every stored answer."""
        with self._lock:
            self._answers.clear()
        self.forget_version()


def answer_cache(host: Any) -> AnswerCache:
    """The host's answer cache (in feedback's state slot), made on first use; any commit on the host's
    engine in this process makes it read the data version again."""
    state = vars(host.state(MINIAPP))
    found = state.get("answers")
    if found is not None:
        return found  # type: ignore[no-any-return]
    made = AnswerCache()
    found = state.setdefault("answers", made)  # one per host even when two threads get here at once
    if found is made:
        event.listen(host.engine, "commit", lambda _connection: made.forget_version())
    return found  # type: ignore[no-any-return]
