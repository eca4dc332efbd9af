"""What the host hands to mini-app code that runs outside a request: jobs and event subscribers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

if TYPE_CHECKING:
    from plugins.events import DomainEvent


@dataclass(frozen=True)
class HostContext:
    """The host's services: database, settings, events, notifier, mini-app settings, realtime hub, media store."""

    engine: Engine
    settings: Any
    publish_event: Callable[["DomainEvent"], Any]
    # ``await host.notifier.notify(miniapp=..., topic=..., title=..., body=..., users=/units=/roles=)``;
    # None only in contexts that must not notify (demo seeding).
    notifier: Any = None
    # ``host.miniapp_settings.get("<id>")``: the mini-app's settings model as an admin last saved it.
    miniapp_settings: Any = None
    # ``await host.realtime.publish("miniapp:<id>:<name>", {...})``: live messages from jobs and subscribers.
    realtime: Any = None
    # ``host.media``: the host's MediaStore (core.media) for files a job or subscriber reads or writes.
    media: Any = None

    def session(self) -> Session:
        """A new database session (use it as a context manager)."""
        return Session(self.engine, expire_on_commit=False)
