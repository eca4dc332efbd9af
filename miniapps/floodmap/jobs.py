"""Scheduled work: stations whose sensor fell silent turn stale (once a minute, once across workers)."""

from __future__ import annotations

from datetime import datetime

from starlette.concurrency import run_in_threadpool

from miniapps.floodmap.ingest import mark_stale
from miniapps.floodmap.warnings import Outlets, announce_stale


async def mark_silent_stations_stale(host, *, now: datetime | None = None) -> list[int]:
    """Mark silent stations stale and tell the map; their level stays (missing data never clears an alert)."""
    went = await run_in_threadpool(lambda: mark_stale(host.engine, now=now))
    await announce_stale(Outlets.of_host(host), went)
    return went
