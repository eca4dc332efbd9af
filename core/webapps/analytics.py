"""Web mini-apps' analytics: opens, unique residents and errors per day (Hue time), 90 days at most."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.webapps.models import WebAppUsage
from core.worktime import HUE_TIME

MAX_DAYS = 90


def today() -> date:
    """Today in Hue."""
    return datetime.now(UTC).astimezone(HUE_TIME).date()


def record(db: Session, webapp_id: str, pairwise_id: str, *, opens: int = 0, errors: int = 0) -> None:
    """Count an open or an error for one resident today (the caller commits)."""
    day = today()
    key = (WebAppUsage.webapp_id == webapp_id, WebAppUsage.day == day, WebAppUsage.pairwise_id == pairwise_id)
    bump = update(WebAppUsage).where(*key).values(opens=WebAppUsage.opens + opens, errors=WebAppUsage.errors + errors)
    if db.execute(bump).rowcount:
        return
    try:
        with db.begin_nested():  # two first opens at once: the loser counts on the winner's row
            db.add(WebAppUsage(webapp_id=webapp_id, day=day, pairwise_id=pairwise_id, opens=opens, errors=errors))
    except IntegrityError:
        db.execute(bump)


def daily(db: Session, webapp_id: str, days: int = MAX_DAYS) -> list[dict[str, Any]]:
    """One row per day of the last ``days`` (at most 90), oldest first, days without use included as zeros."""
    days = max(1, min(days, MAX_DAYS))
    last = today()
    first = last - timedelta(days=days - 1)
    rows = db.exec(select(WebAppUsage.day, func.sum(WebAppUsage.opens), func.count(), func.sum(WebAppUsage.errors))
                   .where(WebAppUsage.webapp_id == webapp_id, WebAppUsage.day >= first)
                   .group_by(WebAppUsage.day)).all()
    found = {row[0]: row for row in rows}
    out = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        row = found.get(day)
        out.append({"day": day.isoformat(), "opens": int(row[1] or 0) if row else 0,
                    "residents": int(row[2]) if row else 0, "errors": int(row[3] or 0) if row else 0})
    return out


def as_csv(rows: list[dict[str, Any]]) -> str:
    """The daily rows as CSV with a header."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["day", "opens", "residents", "errors"])
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
