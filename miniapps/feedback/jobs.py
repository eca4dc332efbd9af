"""Scheduled work: escalation of overdue reports, closing of stale resolutions."""

from __future__ import annotations

from typing import Any

from miniapps.feedback import handling


def escalate_overdue(host: Any) -> None:
    """Flag reports past their deadline and tell the operators (once per report, in the same transaction)."""
    with host.session() as session:
        handling.escalate_overdue(session, notifier=host.notifier)


def close_stale(host: Any) -> None:
    """Close resolved reports not reopened within the window."""
    with host.session() as session:
        handling.close_stale_resolutions(session)
