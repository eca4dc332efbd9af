"""Scheduled work, each once per period across workers: stations whose sensor fell silent turn stale
(every minute); warnings a committed level change still owes are issued (every minute); old readings are
folded into hourly summaries (every 10 minutes, in bounded batches)."""

from __future__ import annotations

import logging
from datetime import datetime

from starlette.concurrency import run_in_threadpool

from miniapps.floodmap import sta_mqtt
from miniapps.floodmap.ingest import mark_stale
from miniapps.floodmap.retention import RetentionOutcome, apply_retention
from miniapps.floodmap.warnings import announce_stale, settle_owed

MINIAPP = "floodmap"
log = logging.getLogger(__name__)


async def mark_silent_stations_stale(host, *, now: datetime | None = None) -> list[int]:
    """Mark silent stations stale and tell the map; their level stays (missing data never clears an alert)."""
    went = await run_in_threadpool(lambda: mark_stale(host.engine, now=now))
    base = sta_mqtt.base_of(host)
    if base is not None and went:
        sta_mqtt.announce(host, sta_mqtt.after_stale(base, went))
    await announce_stale(host, went)
    return went


async def settle_owed_warnings(host, *, now: datetime | None = None) -> list[int]:
    """Issue the warnings and closings that committed level changes still owe (their request died or failed
    before issuing them); each once, whichever worker or run gets there first."""
    return await settle_owed(host, now=now)


async def fold_old_readings(host, *, now: datetime | None = None) -> RetentionOutcome:
    """Apply the retention settings: old readings become hourly summaries, very old summaries go."""
    settings = await run_in_threadpool(host.miniapp_settings.get, MINIAPP)
    outcome = await run_in_threadpool(lambda: apply_retention(
        host.engine, raw_days=settings.raw_readings_days, hourly_days=settings.hourly_readings_days, now=now))
    log.info("flood readings retention", extra={"folded": outcome.folded, "hours_written": outcome.hours_written,
                                                "hours_deleted": outcome.hours_deleted, "finished": outcome.finished})
    return outcome
