"""Hue's time zone and working time: deadlines that skip weekends, in one place for every mini-app.

Public holidays are not known yet and count as working days; when they are added, they are added here.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

# Indochina Time all year (UTC+7, no daylight saving).
HUE_TIME = ZoneInfo("Asia/Ho_Chi_Minh")


def add_working_days(start: datetime, days: int) -> datetime:
    """``start`` moved forward by ``days`` working days (Monday to Friday, Hue time), same time of day.

    Asked on a Saturday morning with three days to answer: due on Wednesday morning.
    """
    local = start.astimezone(HUE_TIME)
    counted = 0
    while counted < days:
        local += timedelta(days=1)
        if local.weekday() < 5:
            counted += 1
    return local.astimezone(start.tzinfo or HUE_TIME)


def _next_weekday_start(moment: datetime) -> datetime:
    """``moment`` itself on a weekday, else the Monday 00:00 after the weekend."""
    while moment.weekday() >= 5:
        moment = datetime.combine(moment.date() + timedelta(days=1), time(), tzinfo=HUE_TIME)
    return moment


def add_working_hours(start: datetime, hours: int) -> datetime:
    """``start`` plus ``hours`` of weekday time (Saturdays and Sundays do not count), in UTC."""
    moment = _next_weekday_start(start.astimezone(HUE_TIME))
    remaining = timedelta(hours=hours)
    while True:
        midnight = datetime.combine(moment.date() + timedelta(days=1), time(), tzinfo=HUE_TIME)
        if moment + remaining <= midnight:
            return (moment + remaining).astimezone(UTC)
        remaining -= midnight - moment
        moment = _next_weekday_start(midnight)
