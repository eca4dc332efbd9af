"""Evaluation of the 40 communes and wards per month: on-time completion and indicator attainment,
weighted into a score and a ranking; a closed month's ranking is stored and never recomputed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from miniapps.tasks import cache, procedures
from miniapps.tasks.models import (
    Assignment,
    Direction,
    Indicator,
    IndicatorSource,
    PeriodSnapshot,
    Report,
    ReviewState,
    Task,
)
from miniapps.tasks.service import (
    TaskError,
    as_utc,
    assignee_units,
    end_of_day,
    hue_date,
    month_of,
    period_bounds,
    report_periods,
)

# How the score weighs its parts (a unit with only one part is scored on that part alone).
ON_TIME_WEIGHT = 0.7
ATTAINMENT_WEIGHT = 0.3


@dataclass
class UnitScore:
    """One unit's evaluation for one month."""

    unit_id: str
    period: str
    due: int = 0
    on_time: int = 0
    overdue: int = 0
    attainment: float | None = None
    score: float | None = None
    rank: int | None = None

    @property
    def on_time_rate(self) -> float | None:
        """Share of the items due this month that were completed by their deadline."""
        return self.on_time / self.due if self.due else None

    def as_json(self) -> dict[str, Any]:
        """The stored and served form."""
        return {"unit_id": self.unit_id, "period": self.period, "due": self.due, "on_time": self.on_time,
                "overdue": self.overdue,
                "on_time_rate": round(self.on_time_rate, 4) if self.on_time_rate is not None else None,
                "attainment": round(self.attainment, 4) if self.attainment is not None else None,
                "score": round(self.score, 2) if self.score is not None else None, "rank": self.rank}


def attainment(indicator: Indicator, value: float) -> float:
    """How far ``value`` has gone from the baseline to the target, between 0 and 1."""
    span = indicator.target - indicator.baseline
    if indicator.direction is Direction.at_most:
        span = -span
        gained = indicator.baseline - value
    else:
        gained = value - indicator.baseline
    return max(0.0, min(1.0, gained / span)) if span else float(gained >= 0)


def evaluate(session: Session, periods: Sequence[str], *, now: datetime | None = None) -> dict[str, list[UnitScore]]:
    """Scores of every commune and ward for each month in ``periods``, ranked, computed from the data."""
    now = now or datetime.now(UTC)
    if not periods:
        return {}
    units = [u.id for u in assignee_units(session)]
    windows = {p: period_bounds(p) for p in periods}
    earliest = end_of_day(min(first for first, _ in windows.values())) - timedelta(days=1)
    latest = end_of_day(max(last for _, last in windows.values()))
    # Every query below selects through the same window on tasks (a join, not a list of ids): a year of
    # tasks for 40 units is thousands of assignments, and one bind parameter each would not scale.
    window = (col(Task.starts_at) <= latest, col(Task.deadline) >= earliest)
    tasks = {t.id: t for t in session.exec(select(Task).where(*window))}
    # plain columns, not ORM objects: thousands of rows per request
    rows = session.exec(select(Assignment.id, Assignment.unit_id, Assignment.task_id, Assignment.completed_at)
                        .join(Task, col(Task.id) == Assignment.task_id).where(*window)).all()
    accepted: dict[int, list[tuple[str, datetime, dict[str, float]]]] = defaultdict(list)
    indicators: dict[int, list[Indicator]] = defaultdict(list)
    for assignment_id, key, submitted_at, values in session.exec(
            select(Report.assignment_id, Report.period, Report.submitted_at, Report.values)
            .join(Assignment, col(Assignment.id) == Report.assignment_id)
            .join(Task, col(Task.id) == Assignment.task_id)
            .where(*window, Report.state == ReviewState.accepted)):
        accepted[assignment_id].append((key, as_utc(submitted_at), values or {}))
    for indicator in session.exec(select(Indicator).join(Task, col(Task.id) == Indicator.task_id).where(*window)):
        indicators[indicator.task_id].append(indicator)
    needs_stats = any(i.source is not IndicatorSource.report for group in indicators.values() for i in group)
    stats = {p: procedures.unit_stats(session, *windows[p]) for p in periods} if needs_stats else {}

    wanted = set(periods)
    due_items = {tid: [(key, due, f"{hue_date(due):%Y-%m}") for key, due in report_periods(t)] for tid, t in tasks.items()}
    spans = {tid: (hue_date(t.starts_at), hue_date(t.deadline)) for tid, t in tasks.items()}
    scores = {p: {u: UnitScore(unit_id=u, period=p) for u in units} for p in periods}
    gains: dict[tuple[str, str], list[float]] = defaultdict(list)
    for assignment_id, unit_id, task_id, completed_at in rows:
        if unit_id not in scores[periods[0]]:
            continue
        reports = accepted.get(assignment_id, [])
        completed = as_utc(completed_at) if completed_at else None
        for key, due, month in due_items[task_id]:
            if month not in wanted:
                continue
            if key:
                done = [at for period_key, at, _ in reports if period_key == key]
                done_at = min(done) if done else completed
            else:
                done_at = completed
            if done_at is None and due > now:
                continue  # not due yet and not done: counts once it is either
            score = scores[month][unit_id]
            score.due += 1
            if done_at is not None and done_at <= due:
                score.on_time += 1
            elif done_at is None:
                score.overdue += 1
        starts, ends = spans[task_id]
        for period in periods:
            first, last = windows[period]
            if starts > last or ends < first:
                continue
            for indicator in indicators.get(task_id, []):
                value = _indicator_value(indicator, reports, unit_id, stats.get(period, {}), last)
                if value is not None:
                    gains[(period, unit_id)].append(attainment(indicator, value))
    result: dict[str, list[UnitScore]] = {}
    for period in periods:
        for unit_id, score in scores[period].items():
            found = gains.get((period, unit_id))
            if found:
                score.attainment = sum(found) / len(found)
            parts = [(ON_TIME_WEIGHT, score.on_time_rate), (ATTAINMENT_WEIGHT, score.attainment)]
            present = [(w, v) for w, v in parts if v is not None]
            if present:
                score.score = 100 * sum(w * v for w, v in present) / sum(w for w, _ in present)
        result[period] = rank(list(scores[period].values()))
    return result


def _indicator_value(indicator: Indicator, reports: list[tuple[str, datetime, dict[str, float]]], unit_id: str,
                     stats: dict[str, procedures.UnitStats], last: date) -> float | None:
    """The indicator's value for a unit at the end of a month: from the procedure statistics for the
    automatic sources, else the latest accepted report up to then."""
    if indicator.source is IndicatorSource.online_rate:
        found = stats.get(unit_id)
        return 100 * found.online_rate if found and found.online_rate is not None else None
    if indicator.source is IndicatorSource.on_time_rate:
        found = stats.get(unit_id)
        return 100 * found.on_time_rate if found and found.on_time_rate is not None else None
    key = str(indicator.id)
    cutoff = end_of_day(last)
    dated = [(at, values[key]) for _, at, values in reports if key in values and at <= cutoff]
    return max(dated)[1] if dated else None


def rank(scores: list[UnitScore]) -> list[UnitScore]:
    """Scored units by score, then on-time rate, then id, ranked 1..n (ties share a rank); unscored last."""
    scored = sorted((s for s in scores if s.score is not None),
                    key=lambda s: (-round(s.score or 0, 6), -(s.on_time_rate or 0), s.unit_id))
    previous: tuple[float, float] | None = None
    for position, score in enumerate(scored, start=1):
        key = (round(score.score or 0, 6), round(score.on_time_rate or 0, 6))
        score.rank = scored[position - 2].rank if key == previous else position
        previous = key
    return scored + sorted((s for s in scores if s.score is None), key=lambda s: s.unit_id)


# --- Rankings and closed periods -----------------------------------------------------------------------------


def snapshots(session: Session, periods: Sequence[str]) -> dict[str, PeriodSnapshot]:
    """The closed periods among ``periods``."""
    return {s.period: s for s in session.exec(select(PeriodSnapshot).where(col(PeriodSnapshot.period).in_(periods)))}


def rankings(session: Session, periods: Sequence[str], *, now: datetime | None = None,
             kept: cache.Rankings | None = None) -> dict[str, dict[str, Any]]:
    """Each month's ranking: the stored snapshot of a closed month, else computed now.

    Without ``now`` and with ``kept`` (the host's ``cache.rankings_cache``) the result comes from that cache
    and is shared: callers must not modify it."""
    if now is None and kept is not None:
        # snapshots and the JSON rows too, not only the evaluation: 480 rows to convert on every view otherwise
        return kept.cached(("rankings", tuple(periods)), lambda: _rankings(session, periods, None))
    return _rankings(session, periods, now)


def _rankings(session: Session, periods: Sequence[str], now: datetime | None) -> dict[str, dict[str, Any]]:
    closed = snapshots(session, periods)
    open_periods = [p for p in periods if p not in closed]
    live = evaluate(session, open_periods, now=now)
    result: dict[str, dict[str, Any]] = {}
    for period in periods:
        if period in closed:
            snap = closed[period]
            result[period] = {"period": period, "closed": True, "closed_at": as_utc(snap.closed_at).isoformat(),
                              "rows": snap.rows}
        else:
            result[period] = {"period": period, "closed": False, "closed_at": None,
                              "rows": [s.as_json() for s in live[period]]}
    return result


def close_period(session: Session, *, period: str, closed_by: int | None, now: datetime | None = None) -> PeriodSnapshot:
    """Store a finished month's ranking for good; 409 if already closed, 422 if the month is not over."""
    now = now or datetime.now(UTC)
    if month_of(now) <= period:
        raise TaskError(422, f"{period} is not over yet; close it once it has ended", field="path.period")
    if session.get(PeriodSnapshot, period) is not None:
        raise TaskError(409, f"{period} is already closed", field="path.period")
    rows = [s.as_json() for s in evaluate(session, [period], now=now)[period]]
    snapshot = PeriodSnapshot(period=period, closed_at=now, closed_by=closed_by, rows=rows)
    session.add(snapshot)
    cache.changed(session)  # the host's ranking cache forgets as this commits
    try:
        session.commit()
    except IntegrityError:  # closed by someone else a moment ago
        session.rollback()
        raise TaskError(409, f"{period} is already closed", field="path.period") from None
    return snapshot


def recent_months(now: datetime, count: int = 12) -> list[str]:
    """The ``count`` months up to the one ``now`` falls in, oldest first."""
    day = hue_date(now)
    year, month = day.year, day.month
    months = []
    for _ in range(count):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return months[::-1]
