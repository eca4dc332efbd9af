"""Observation retention: readings older than ``raw_readings_days`` are folded into hourly lowest /
mean / highest (``floodmap_observation_hourly``) and deleted; hourly summaries older than
``hourly_readings_days`` (when not 0) are deleted too. MultiDatastream readings (lists of values) older
than ``raw_readings_days`` are deleted without a summary.

Work goes in bounded batches, each its own short transaction: one datastream's readings of at most
``BATCH_HOURS`` hours (864 rows at 10-minute readings), summarised by the database in one statement and
deleted by range in the next. Windows start on whole hours, so an hour is never split between two
batches; a reading that arrives late for an hour already summarised is merged into that hour's figures.
A run stops after ``budget_seconds`` and the next run goes on from the oldest readings left, so the
first run over five years of history spreads over several periods instead of holding one transaction.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session

from miniapps.floodmap.models import (
    FloodDatastream,
    FloodMultiDatastream,
    FloodObservation,
    FloodObservationHourly,
)

BATCH_HOURS = 144  # six days of one datastream per transaction
HOURLY_BATCH_ROWS = 5000


@dataclass
class RetentionOutcome:
    """What one run did: readings folded and deleted, hourly rows written and deleted, and whether it finished."""

    folded: int = 0
    hours_written: int = 0
    hours_deleted: int = 0
    finished: bool = True
    batches: list[tuple[int, datetime, datetime]] = field(default_factory=list)  # (datastream, from, to)
    multi_deleted: int = 0  # MultiDatastream readings past raw_readings_days (no hourly summary of lists)


def _hour_of(dialect: str):
    """The SQL for the start of a reading's hour, in the form the hourly table stores."""
    column = FloodObservation.phenomenon_time
    if dialect == "postgresql":
        # timestamptz truncated in UTC whatever the session's time zone
        return func.timezone("UTC", func.date_trunc("hour", func.timezone("UTC", column)))
    return func.strftime("%Y-%m-%d %H:00:00.000000", column)  # SQLAlchemy's SQLite datetime text


def apply_retention(engine: Engine, *, raw_days: int, hourly_days: int, now: datetime | None = None,
                    budget_seconds: float = 50.0) -> RetentionOutcome:
    """Fold and delete what the settings say is too old, batch by batch, for at most ``budget_seconds``."""
    now = now or datetime.now(UTC)
    cutoff = (now - timedelta(days=raw_days)).replace(minute=0, second=0, microsecond=0)
    deadline = time.monotonic() + budget_seconds
    outcome = RetentionOutcome()
    with Session(engine) as db:
        streams = list(db.scalars(select(FloodDatastream.id).order_by(FloodDatastream.id)))
    for stream_id in streams:
        while True:
            if time.monotonic() > deadline:
                outcome.finished = False
                return outcome
            if not _fold_batch(engine, stream_id, cutoff, outcome):
                break
    if not _drop_old_multi(engine, cutoff, deadline, outcome):
        return outcome
    if hourly_days:
        _drop_old_hours(engine, now - timedelta(days=hourly_days), deadline, outcome)
    return outcome


def _fold_batch(engine: Engine, stream_id: int, cutoff: datetime, outcome: RetentionOutcome) -> bool:
    """Fold the oldest window of ``stream_id``'s readings before ``cutoff``; False when none are left."""
    with Session(engine) as db:
        oldest = db.scalar(select(func.min(FloodObservation.phenomenon_time)).where(
            FloodObservation.datastream_id == stream_id, FloodObservation.phenomenon_time < cutoff))
        if oldest is None:
            return False
        start = oldest.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        end = min(start + timedelta(hours=BATCH_HOURS), cutoff)
        in_window = (FloodObservation.datastream_id == stream_id, FloodObservation.phenomenon_time >= start,
                     FloodObservation.phenomenon_time < end)
        dialect_name = db.get_bind().dialect.name
        hour = _hour_of(dialect_name).label("hour")
        summary = (select(FloodObservation.datastream_id, hour, func.count().label("count"),
                          func.min(FloodObservation.result), func.avg(FloodObservation.result),
                          func.max(FloodObservation.result))
                   .where(*in_window).group_by(FloodObservation.datastream_id, hour))
        table = FloodObservationHourly.__table__  # type: ignore[attr-defined]
        dialect = postgresql if dialect_name == "postgresql" else sqlite
        statement = dialect.insert(table).from_select(
            ["datastream_id", "hour", "count", "minimum", "mean", "maximum"], summary)
        # a late reading for an hour already summarised joins its figures instead of replacing them
        new = statement.excluded
        least, greatest = (func.least, func.greatest) if dialect_name == "postgresql" else (func.min, func.max)
        statement = statement.on_conflict_do_update(index_elements=["datastream_id", "hour"], set_={
            "count": table.c.count + new.count,
            "minimum": least(table.c.minimum, new.minimum),
            "maximum": greatest(table.c.maximum, new.maximum),
            "mean": (table.c.mean * table.c.count + new.mean * new.count) / (table.c.count + new.count),
        })
        # at most BATCH_HOURS rows come back; counted this way on both databases (rowcount is not)
        written = len(db.execute(statement.returning(table.c.hour)).all())
        folded = db.execute(delete(FloodObservation).where(*in_window)).rowcount
        db.commit()
    outcome.folded += folded
    outcome.hours_written += written
    outcome.batches.append((stream_id, start, end))
    return True


def _drop_old_multi(engine: Engine, cutoff: datetime, deadline: float, outcome: RetentionOutcome) -> bool:
    """Delete MultiDatastream readings from before ``cutoff``, HOURLY_BATCH_ROWS of one MultiDatastream a
    transaction (read through its unique (MultiDatastream, time) index); False when the budget ran out."""
    with Session(engine) as db:
        multis = list(db.scalars(select(FloodMultiDatastream.id).order_by(FloodMultiDatastream.id)))
    for multi_id in multis:
        while True:
            if time.monotonic() > deadline:
                outcome.finished = False
                return False
            with Session(engine) as db:
                window = (select(FloodObservation.phenomenon_time)
                          .where(FloodObservation.multi_datastream_id == multi_id,
                                 FloodObservation.phenomenon_time < cutoff)
                          .order_by(FloodObservation.phenomenon_time).limit(HOURLY_BATCH_ROWS).subquery())
                last = db.scalar(select(func.max(window.c.phenomenon_time)))
                if last is None:
                    break
                outcome.multi_deleted += db.execute(delete(FloodObservation).where(
                    FloodObservation.multi_datastream_id == multi_id, FloodObservation.phenomenon_time <= last)).rowcount
                db.commit()
    return True


def _drop_old_hours(engine: Engine, before: datetime, deadline: float, outcome: RetentionOutcome) -> None:
    """Delete hourly summaries from before ``before``, HOURLY_BATCH_ROWS hours of one datastream at a time."""
    with Session(engine) as db:
        streams = list(db.scalars(select(FloodDatastream.id).order_by(FloodDatastream.id)))
    for stream_id in streams:
        while True:
            if time.monotonic() > deadline:
                outcome.finished = False
                return
            with Session(engine) as db:
                # the primary key (datastream, hour) gives the window's last hour straight from the index
                window = (select(FloodObservationHourly.hour)
                          .where(FloodObservationHourly.datastream_id == stream_id, FloodObservationHourly.hour < before)
                          .order_by(FloodObservationHourly.hour).limit(HOURLY_BATCH_ROWS).subquery())
                last = db.scalar(select(func.max(window.c.hour)))
                if last is None:
                    break
                deleted = db.execute(delete(FloodObservationHourly).where(
                    FloodObservationHourly.datastream_id == stream_id, FloodObservationHourly.hour <= last)).rowcount
                db.commit()
            outcome.hours_deleted += deleted


MAX_HISTORY = timedelta(days=366)


def hourly_history(db: Session, stream_id: int, start: datetime, end: datetime) -> list[dict[str, object]]:
    """A datastream's hours in ``[start, end)`` (at most MAX_HISTORY): the folded summaries and the
    still-kept readings summarised on the fly, merged, oldest first; what history charts draw."""
    hourly = FloodObservationHourly
    hours: dict[datetime, tuple[int, float, float, float]] = {}
    folded = db.execute(select(hourly.hour, hourly.count, hourly.minimum, hourly.mean, hourly.maximum).where(
        hourly.datastream_id == stream_id, hourly.hour >= start, hourly.hour < end))
    hour = _hour_of(db.get_bind().dialect.name).label("hour")
    kept = db.execute(select(hour, func.count(), func.min(FloodObservation.result), func.avg(FloodObservation.result),
                             func.max(FloodObservation.result))
                      .where(FloodObservation.datastream_id == stream_id, FloodObservation.phenomenon_time >= start,
                             FloodObservation.phenomenon_time < end).group_by(hour))
    for at, count, low, mean, high in itertools.chain(folded, kept):
        at = at if isinstance(at, datetime) else datetime.fromisoformat(at)
        at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        if at in hours:  # an hour partly folded, partly still kept
            c0, l0, m0, h0 = hours[at]
            count, low, mean, high = c0 + count, min(l0, low), (m0 * c0 + mean * count) / (c0 + count), max(h0, high)
        hours[at] = (count, low, float(mean), high)
    return [{"hour": at.isoformat().replace("+00:00", "Z"), "count": c, "min": lo, "mean": round(m, 4), "max": hi}
            for at, (c, lo, m, hi) in sorted(hours.items())]
