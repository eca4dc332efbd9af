"""What a person finds in their inbox, read through the product's own read path (``push.inbox``).

Broadcasts (to units, roles, the city) are stored once and read per person, so tests ask the inbox,
not the ``inbox_item`` table, whether someone was told.
"""

from __future__ import annotations

from sqlmodel import Session

from push import inbox
from push.models import Notification


def inbox_of(db: Session, user_id: int | None, *, miniapp: str | None = None,
             topic: str | None = None) -> list[Notification]:
    """The notifications in ``user_id``'s inbox (oldest first), optionally of one mini-app and topic."""
    found: list[Notification] = []
    before = None
    while True:
        entries, more = inbox.page(db, user_id or 0, before=before, limit=50)
        found += [e.notification for e in entries]
        if not more:
            break
        before = entries[-1].notification.id
    return [n for n in reversed(found)
            if (miniapp is None or n.miniapp == miniapp) and (topic is None or n.topic == topic)]
