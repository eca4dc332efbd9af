"""Scheduled work: escalation of overdue reports, closing of stale resolutions."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool

from miniapps.feedback import service


async def escalate_overdue(host: Any) -> None:
    """Flag reports past their deadline and tell the operators (once per report)."""
    def work() -> list[service.Notice]:
        with host.session() as session:
            return service.escalate_overdue(session)

    await service.send(host.notifier, await run_in_threadpool(work))


def close_stale(host: Any) -> None:
    """Close resolved reports not reopened within the window."""
    with host.session() as session:
        service.close_stale_resolutions(session)
