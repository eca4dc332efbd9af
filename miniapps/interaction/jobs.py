"""Scheduled work: escalate questions whose first answer is late."""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool

from miniapps.interaction import notices, service

log = logging.getLogger(__name__)


def _mark_overdue(host) -> list:
    with host.session() as session:
        return service.escalate_overdue(session)


async def escalate_overdue(host) -> int:
    """Every 15 minutes: mark newly overdue questions escalated and tell operators and the department."""
    overdue = await run_in_threadpool(_mark_overdue, host)
    for question in overdue:
        await notices.question_overdue(host.notifier, question)
    if overdue:
        log.info("interaction: %d question(s) escalated as overdue", len(overdue))
    return len(overdue)
