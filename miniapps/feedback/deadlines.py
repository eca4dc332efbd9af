"""Deadlines of field reports are hours of working time (core.worktime); times shown in Hue's time zone."""

from __future__ import annotations

from datetime import datetime

from plugins import HUE_TIME


def hue_time(moment: datetime | None) -> str:
    """``dd/mm/yyyy HH:MM`` in Hue time, or '' for None (for pages and exports)."""
    return moment.astimezone(HUE_TIME).strftime("%d/%m/%Y %H:%M") if moment else ""
