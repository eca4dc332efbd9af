"""Scheduled work: escalate questions whose first answer is late."""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool

from miniapps.interaction import service

log = logging.getLogger(__name__)


def _mark_overdue(host) -> list:
    with host.session() as session:
        return service.escalate_overdue(session, notifier=host.notifier)


async def escalate_overdue(host) -> int:
    """Every 15 minutes: mark newly overdue questions escalated and tell operators and the department, in one
    transaction (a failed notice leaves them unescalated, so the next run tries again)."""
    overdue = await run_in_threadpool(_mark_overdue, host)
    if overdue:
        log.info("interaction: %d question(s) escalated as overdue", len(overdue))
    return len(overdue)
