"""The host as mini-app code sees it: ``Host`` (sessions, transactions, authorisation, notices, feed, realtime,
media, units, settings, caches, state), handed to jobs and subscribers and to routes through ``HostDep``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from plugins._cache import Cache, Caches

if TYPE_CHECKING:
    from plugins.events import DomainEvent


class HostServiceMissing(RuntimeError):
    """A mini-app asked a host built without that service (a demo seeding or a bare test host)."""


@dataclass(frozen=True)
class Host:
    """The host's services for mini-app code: one per app, at ``app.state.host``, ``HostDep`` in routes.

    Every attribute other than ``engine``, ``settings`` and ``publish_event`` may be None on a host built
    for a narrow purpose (demo seeding, a unit test); the methods then raise ``HostServiceMissing``.
    """

    engine: Engine
    settings: Any
    publish_event: Callable[[DomainEvent], Any]
    # push.notifier.Notifier: ``send(session, ...)`` writes a notice in the caller's transaction.
    notifier: Any = None
    # core.miniapp_settings.MiniAppSettingsStore: ``get("<id>")`` is the model an admin last saved.
    miniapp_settings: Any = None
    # push.realtime hub: ``await publish("miniapp:<id>:<name>", {...})``.
    realtime: Any = None
    # core.media.MediaStore: bytes by key (local disk or an S3-compatible store).
    media: Any = None
    # core.identity.authz.Authorizer: who may do what in which unit.
    authorizer: Any = None
    # core.units.directory.UnitsDirectory: the city and its units.
    units: Any = None
    # core.feed.publisher.FeedPublisher: feed items written in the caller's transaction.
    feed: Any = None
    caches: Caches = field(default_factory=Caches)
    _states: dict[str, SimpleNamespace] = field(default_factory=dict, repr=False)

    # -- database ------------------------------------------------------------------------------------

    def session(self) -> Session:
        """A new database session (use it as a context manager)."""
        return Session(self.engine, expire_on_commit=False)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One use case's transaction: everything added (domain rows, notices, feed items) commits or rolls back together."""
        with Session(self.engine, expire_on_commit=False) as db:
            try:
                yield db
                db.commit()
            except BaseException:
                db.rollback()
                raise

    # -- authorisation -------------------------------------------------------------------------------

    def allows(self, principal: Any, permission: str, unit_id: str | None = None) -> bool:
        """Whether ``principal`` holds ``permission`` (in ``unit_id``, or anywhere when None)."""
        return bool(self._need("authorizer").allows(principal, permission, unit_id))

    def units_for(self, principal: Any, permission: str) -> set[str] | None:
        """The units where ``principal`` holds ``permission``; None means every unit (held in the city)."""
        result: set[str] | None = self._need("authorizer").units_for(principal, permission)
        return result

    # -- notices, feed, realtime, events ----------------------------------------------------------------

    def notify(self, db: Session, *, miniapp: str, topic: str, **fields: Any) -> Any:
        """Add a notice to ``db``'s transaction (``push.notifier.Notifier.send``): sent on commit, never on rollback."""
        return self._need("notifier").send(db, miniapp=miniapp, topic=topic, **fields)

    async def publish_realtime(self, channel: str, message: dict[str, Any]) -> str | None:
        """Publish a live message on ``channel`` (``miniapp:<id>:<name>``); None when the host has no hub."""
        if self.realtime is None:
            return None
        result: str = await self.realtime.publish(channel, message)
        return result

    # -- settings, caches, state ---------------------------------------------------------------------

    def settings_for(self, miniapp: str) -> Any:
        """The settings model of ``miniapp`` as an admin last saved it (defaults until then)."""
        return self._need("miniapp_settings").get(miniapp)

    def cache(self, miniapp: str, name: str, *, ttl: float, max_entries: int) -> Cache[Any]:
        """The bounded, expiring cache ``name`` of ``miniapp`` on this host (made on first use)."""
        return self.caches.get(miniapp, name, ttl=ttl, max_entries=max_entries)

    def state(self, miniapp: str) -> SimpleNamespace:
        """The mutable state slot of ``miniapp`` on this host, instead of module-level globals."""
        slot = self._states.get(miniapp)
        if slot is None:
            slot = self._states.setdefault(miniapp, SimpleNamespace())
        return slot

    @property
    def city_id(self) -> str:
        """The id of the city's own unit (``hue``)."""
        city: str = self._need("units").city_id
        return city

    def _need(self, service: str) -> Any:
        value = getattr(self, service)
        if value is None:
            raise HostServiceMissing(f"this host was built without {service}")
        return value


# Contract 1.1's name for the host; kept so packages written against it still load.
HostContext = Host
