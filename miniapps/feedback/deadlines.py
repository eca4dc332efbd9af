"""Deadlines in working time: hours counted on weekdays only, in Hue's time zone."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, timezone

# Hue keeps Indochina Time all year (UTC+7, no daylight saving).
HUE_TIME = timezone(timedelta(hours=7), "ICT")


def _next_weekday_start(moment: datetime) -> datetime:
    """``moment`` itself on a weekday, else the Monday 00:00 after the weekend."""
    while moment.weekday() >= 5:
        moment = datetime.combine(moment.date() + timedelta(days=1), time(), tzinfo=HUE_TIME)
    return moment


def working_deadline(start: datetime, hours: int) -> datetime:
    """``start`` plus ``hours`` of weekday time (Saturdays and Sundays do not count), in UTC."""
    moment = _next_weekday_start(start.astimezone(HUE_TIME))
    remaining = timedelta(hours=hours)
    while True:
        midnight = datetime.combine(moment.date() + timedelta(days=1), time(), tzinfo=HUE_TIME)
        if moment + remaining <= midnight:
            return (moment + remaining).astimezone(UTC)
        remaining -= midnight - moment
        moment = _next_weekday_start(midnight)


def hue_time(moment: datetime | None) -> str:
    """``dd/mm/yyyy HH:MM`` in Hue time, or '' for None (for pages and exports)."""
    return moment.astimezone(HUE_TIME).strftime("%d/%m/%Y %H:%M") if moment else ""
