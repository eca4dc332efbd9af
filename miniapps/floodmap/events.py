"""The flood map's domain events: every change of a station's level, a sensor falling silent, a warning."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from plugins.events import DomainEvent


class StationLevelChanged(DomainEvent):
    """A station's alert level went up or down (``reason``: threshold, rate_of_rise, fell)."""

    name: ClassVar[str] = "floodmap.station_level_changed"
    station_id: int
    station_code: str
    from_level: int
    to_level: int
    reason: str
    value: float | None
    observed_at: datetime
    units: list[str]


class StationWentStale(DomainEvent):
    """A station's sensor fell silent; its level is kept (missing data never clears an alert)."""

    name: ClassVar[str] = "floodmap.station_went_stale"
    station_id: int
    station_code: str
    level: int
    last_observed_at: datetime | None


class FloodWarningIssued(DomainEvent):
    """A warning went to the residents of ``units`` (automatic on a rise, or by an operator)."""

    name: ClassVar[str] = "floodmap.warning_issued"
    warning_id: int
    station_id: int | None
    level: int
    severity: str
    manual: bool
    units: list[str]
    notification_id: int | None
