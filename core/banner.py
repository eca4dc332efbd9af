"""The warnings banner on every page: active warnings, for signed-out visitors too.

Every page shows the warnings that are in force (feed items of kind ``warning`` with severity
``warning`` or ``critical``, for everyone or residents, neither withdrawn nor expired), each linking
to the warning. Who sees which: a visitor or resident with a place (their home ward and the units they
follow, or the place a visitor chose on the home screen, kept in a cookie) sees the city-wide warnings
and those for these places; someone with no place sees every warning in the city, with its places named, because a
warning that reaches nobody is the failure this banner exists to prevent.

The active warnings are read once per few seconds per worker (``BannerCache``), not per page: two
bounded index reads (warnings that expire, through ``ix_feed_item_expires_at``, and the newest items
by id), whatever the size of the feed.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from core.feed.models import FeedAudience, FeedItem, FeedItemUnit, FeedKind, Severity
from core.units.models import OrgUnit

log = logging.getLogger(__name__)
PLACE_COOKIE = "superapp_place"
# How long a worker reuses what it read: a new warning shows on every page within this many seconds.
CACHE_SECONDS = 5.0
# Non-expiring warnings are looked for among this many newest feed items (warnings are short-lived
# and recent; flood warnings always carry an expiry and are found through the expiry index).
RECENT_ITEMS = 300
MAX_SHOWN = 3


@dataclass(frozen=True)
class ActiveWarning:
    """A warning in force, in both languages, with the units it targets (empty when city-wide)."""

    id: int
    severity: str
    title: dict[str, str]
    body: dict[str, str]
    published_at: datetime
    expires_at: datetime | None
    url: str
    city_wide: bool
    unit_ids: tuple[str, ...]
    unit_names: dict[str, tuple[str, ...]]


def read_active(db: Session, *, now: datetime | None = None) -> list[ActiveWarning]:
    """The warnings in force now, most severe then newest first (at most a few dozen)."""
    now = now or datetime.now(UTC)
    shown = (FeedItem.kind == FeedKind.warning, FeedItem.severity.in_([Severity.warning, Severity.critical]),
             FeedItem.audience.in_([FeedAudience.everyone, FeedAudience.residents]), FeedItem.withdrawn_at.is_(None))
    expiring = list(db.execute(select(FeedItem).where(FeedItem.expires_at > now, *shown)
                            .order_by(FeedItem.expires_at).limit(50)).scalars())
    newest = select(FeedItem.id).order_by(FeedItem.id.desc()).limit(RECENT_ITEMS).subquery()
    lasting = list(db.execute(select(FeedItem).where(FeedItem.id.in_(select(newest.c.id)),
                                                     FeedItem.expires_at.is_(None),
                                                  *shown)).scalars())
    items = {item.id: item for item in [*expiring, *lasting]}
    targets: dict[int, list[tuple[str, str, str]]] = {}
    targeted = [i for i, item in items.items() if not item.city_wide]
    if targeted:
        rows = db.execute(select(FeedItemUnit.feed_item_id, OrgUnit.id, OrgUnit.name_vi, OrgUnit.name_en)
                       .join(OrgUnit, OrgUnit.id == FeedItemUnit.unit_id)
                       .where(FeedItemUnit.feed_item_id.in_(targeted)).order_by(OrgUnit.name_vi))
        for item_id, unit_id, name_vi, name_en in rows:
            targets.setdefault(item_id, []).append((unit_id, name_vi, name_en))
    rank = {Severity.critical.value: 0, Severity.warning.value: 1}
    found = [
        ActiveWarning(id=item.id or 0, severity=str(getattr(item.severity, "value", item.severity)),
                      title={"vi": item.title_vi, "en": item.title_en},
                      body={"vi": item.body_vi, "en": item.body_en}, published_at=item.published_at,
                      expires_at=item.expires_at,
                      url=item.url or f"/warnings/{item.id}", city_wide=item.city_wide,
                      unit_ids=tuple(t[0] for t in targets.get(item.id or 0, [])),
                      unit_names={"vi": tuple(t[1] for t in targets.get(item.id or 0, [])),
                                  "en": tuple(t[2] for t in targets.get(item.id or 0, []))})
        for item in items.values()
    ]
    return sorted(found, key=lambda w: (rank.get(w.severity, 2), -w.id))


class BannerCache:
    """The active warnings of one worker, read again after ``CACHE_SECONDS``."""

    def __init__(self, engine: Any, seconds: float = CACHE_SECONDS) -> None:
        self._engine = engine
        self._seconds = seconds
        self._lock = threading.Lock()
        self._read_at = -1e9
        self._warnings: list[ActiveWarning] = []

    def active(self) -> list[ActiveWarning]:
        """The warnings in force (from the cache when it is fresh)."""
        if time.monotonic() - self._read_at < self._seconds:
            return self._warnings
        with self._lock:
            if time.monotonic() - self._read_at >= self._seconds:
                with Session(self._engine) as db:
                    self._warnings = read_active(db)
                self._read_at = time.monotonic()
        return self._warnings

    def clear(self) -> None:
        """Read again on the next page (after a warning is published or withdrawn here)."""
        self._read_at = -1e9


def active_for(request: Any) -> list[ActiveWarning]:
    """The warnings in force that concern this caller: by their place when they have one, else all of them."""
    state = request.app.state
    cache = getattr(state, "warning_banner", None)
    if cache is None:
        engine = getattr(state, "engine", None)
        if engine is None:
            return []
        cache = state.warning_banner = BannerCache(engine)
    try:
        warnings = cache.active()
    except Exception:  # the banner never takes a page down with it
        log.exception("the warnings banner could not be read")
        return []
    principal = request.scope.get("superapp.principal")
    places = {p for p in (getattr(principal, "home_unit_id", None), request.cookies.get(PLACE_COOKIE)) if p}
    places |= _followed(request, principal)
    if places:
        warnings = [w for w in warnings if w.city_wide or places.intersection(w.unit_ids)]
    return warnings


def _followed(request: Any, principal: Any) -> frozenset[str]:
    """The units a signed-in resident follows: their warnings concern them as their home ward's do."""
    followed = getattr(request.app.state, "followed_units", None)  # handed in by push (which keeps follows)
    if followed is None or getattr(principal, "kind", None) != "resident" or not getattr(principal, "user_id", None):
        return frozenset()
    try:
        return followed(principal.user_id)
    except Exception:  # the banner never takes a page down with it
        log.exception("the followed units could not be read for the warnings banner")
        return frozenset()


def banner_for(request: Any, locale: str) -> list[dict[str, Any]]:
    """The banner's lines for this page: the first few warnings that concern the caller."""
    shown = []
    for warning in active_for(request)[:MAX_SHOWN]:
        names = warning.unit_names[locale]
        shown.append({"id": warning.id, "severity": warning.severity, "title": warning.title[locale],
                      "url": warning.url, "city_wide": warning.city_wide,
                      "places": ", ".join(names[:3]) + ("…" if len(names) > 3 else "")})
    return shown
