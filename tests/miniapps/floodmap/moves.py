"""A station's level moved, written as the ingest writes it (the station's level and its level-change row, in
one transaction), for tests that drive the warnings without posting readings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session

from miniapps.floodmap.ingest import LevelChange, StationUpdate
from miniapps.floodmap.models import FloodLevelChange, FloodThing


def record_move(
    engine: Any, thing_id: int, from_level: int, to_level: int, value: float, reason: str | None = None
) -> list[StationUpdate]:
    """Commit the move as the ingest does; the update it reports after its commit."""
    reason = reason or ("fell" if to_level < from_level else "threshold")
    at = datetime.now(UTC)
    with Session(engine) as db:
        thing = db.get(FloodThing, thing_id)
        thing.level, thing.level_since = to_level, at
        db.add(thing)
        db.add(
            FloodLevelChange(
                thing_id=thing_id, at=at, from_level=from_level, to_level=to_level, reason=reason, value=value
            )
        )
        db.commit()
    return [StationUpdate(thing_id, LevelChange(from_level, to_level, reason, value, at), False)]
