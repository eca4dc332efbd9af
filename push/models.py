"""The delivery tables, under the name push's modules use: defined in ``core.notifications.models``.

They live in core because core migrates them, prunes them and reads them (followed units for the feed,
inboxes for the shell's badge); push builds on core and never the other way round (.importlinter).
"""

from core.notifications.models import (
    CITY_AUDIENCE,
    Device,
    InboxItem,
    InboxState,
    Notification,
    NotificationAudience,
    OutboxKind,
    OutboxStatus,
    Platform,
    PushOutbox,
    UnitFollow,
    role_audience,
    unit_audience,
)

__all__ = [
    "CITY_AUDIENCE", "Device", "InboxItem", "InboxState", "Notification", "NotificationAudience", "OutboxKind",
    "OutboxStatus", "Platform", "PushOutbox", "UnitFollow", "role_audience", "unit_audience",
]
