"""Task monitoring of a synthetic Hue: 24 months of tasks for the 40 communes and wards (assignments,
progress reports, reviews, indicator values), every finished month but the last closed into a ranking
snapshot, and 24 months of administrative-procedure records with their imports.

Shape, at scale 1.0 (``City.size`` scales the counts):

- 30 tasks a month from the city and its departments; 40 % for all 40 units, the others for 1 to 8;
  80 % one-off, 15 % monthly and 5 % quarterly reports; half carry a reported indicator, one in ten the
  online-submission rate taken from the procedure statistics;
- each unit's work: 70 % completed on time, 15 % late, the rest still open (in progress or overdue); a
  progress report half-way, one report in twenty returned and sent again, every accepted report with
  its indicator values;
- closed months: every month up to the one before last, stored as the mini-app stores them
  (``evaluation.close_period``), so the rankings page reads ten stored months and evaluates two;
- procedure records: about 460,000 a year (Hue received 17,710 in the first two weeks of July 2025),
  busy wards several times more than quiet communes, 76 % online, one import per month, and the daily
  per-unit figures the statistics read (``procedures.add_to_days``).

Task titles and notes start with ``[synthetic]``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from bench.city.base import SYNTHETIC, City
from miniapps.tasks import evaluation, procedures
from miniapps.tasks.models import Recurrence, Task
from miniapps.tasks.service import period_bounds, report_periods

MONTHS = 24
TASKS_PER_MONTH = 30
RECORDS_PER_YEAR = 460_000
TITLES = ("Rà soát hồ sơ đất đai tồn đọng", "Nâng tỷ lệ hồ sơ nộp trực tuyến", "Triển khai chuyển đổi số cấp xã",
          "Báo cáo công tác phòng chống thiên tai", "Kiểm tra an toàn thực phẩm", "Vận động thu gom rác thải nhựa",
          "Cập nhật dữ liệu dân cư", "Sửa chữa trường học trước mùa mưa")


def _stamp(city: City, moment: datetime | None) -> Any:
    """A datetime as the product stores it: aware on PostgreSQL, SQLAlchemy's UTC text on SQLite."""
    if moment is None or city.postgres:
        return moment
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _months(now: datetime) -> list[str]:
    """The ``MONTHS`` months up to the one ``now`` falls in, oldest first."""
    return evaluation.recent_months(now, MONTHS)


def _bodies(city: City) -> tuple[list[str], list[str], int | None]:
    """(the 40 communes and wards, the city and its departments, an official's account for the reviews)."""
    with city.engine.connect() as connection:
        units = connection.execute(text("SELECT id, kind FROM org_unit ORDER BY id")).all()
        official = connection.execute(text("SELECT MIN(id) FROM user_account WHERE kind = 'official'")).scalar()
    local = [i for i, k in units if k in ("ward", "commune")]
    assigners = [i for i, k in units if k in ("city", "department")]
    if len(local) < 2 or not assigners:
        raise ValueError("no communes or wards: run `superapp seed demo` before loading the city")
    return local, assigners, official


def load(city: City) -> dict[str, int]:
    """Write tasks, indicators, assignments, reports, closed months and procedure records; rows per table."""
    written = _load_tasks(city)
    written["tasks_period_snapshot"] = _close_months(city)
    written.update(_load_procedures(city))
    return written


def _load_tasks(city: City) -> dict[str, int]:
    rng = city.rng
    local, assigners, official = _bodies(city)
    ids = {name: city.max_id(name) for name in ("tasks_task", "tasks_indicator", "tasks_assignment", "tasks_report")}
    tasks: list[tuple[Any, ...]] = []
    indicators: list[tuple[Any, ...]] = []
    assignments: list[tuple[Any, ...]] = []
    reports: list[tuple[Any, ...]] = []
    per_month = city.size(TASKS_PER_MONTH)
    for month in _months(city.now):
        first, last = period_bounds(month)
        for _ in range(per_month):
            ids["tasks_task"] += 1
            task_id = ids["tasks_task"]
            roll = rng.random()
            recurrence = Recurrence.once if roll < 0.8 else Recurrence.monthly if roll < 0.95 else Recurrence.quarterly
            starts = datetime.combine(first + timedelta(days=rng.randrange((last - first).days + 1)),
                                      datetime.min.time(), UTC) + timedelta(hours=1)
            span = {Recurrence.once: rng.randint(10, 60), Recurrence.monthly: 30 * rng.randint(3, 6),
                    Recurrence.quarterly: 90 * rng.randint(2, 4)}[recurrence]
            deadline = starts + timedelta(days=span)
            title = f"{SYNTHETIC} {TITLES[task_id % len(TITLES)]} ({month}, số {task_id})"
            task = Task(id=task_id, title=title, assigner_unit_id=rng.choice(assigners), starts_at=starts,
                        deadline=deadline, recurrence=recurrence)
            tasks.append((task_id, title, "", title.lower(), task.assigner_unit_id, None, _stamp(city, starts),
                          _stamp(city, deadline), recurrence.name, _stamp(city, starts)))
            reported: list[int] = []
            if rng.random() < 0.5:
                ids["tasks_indicator"] += 1
                reported.append(ids["tasks_indicator"])
                indicators.append((ids["tasks_indicator"], task_id, "Tỷ lệ hoàn thành", "%", 0.0, 100.0,
                                   "at_least", "report"))
            if rng.random() < 0.1:
                ids["tasks_indicator"] += 1
                indicators.append((ids["tasks_indicator"], task_id, "Tỷ lệ hồ sơ trực tuyến", "%", 60.0, 90.0,
                                   "at_least", "online_rate"))
            chosen = local if rng.random() < 0.4 else rng.sample(local, rng.randint(1, 8))
            periods = report_periods(task)
            for unit_id in chosen:
                ids["tasks_assignment"] += 1
                assignment_id = ids["tasks_assignment"]
                outcome = rng.random()
                # when the unit handed in the accepted result: before, after, or not at all
                if outcome < 0.7:
                    done: datetime | None = starts + (deadline - starts) * rng.uniform(0.5, 0.98)
                elif outcome < 0.85:
                    done = deadline + timedelta(days=rng.randint(1, 20))
                else:
                    done = None
                if done is not None and done > city.now:
                    done = None  # not handed in yet
                progress = 100 if done else rng.choice((0, 30, 50, 80))
                late = outcome >= 0.7
                final_at: datetime | None = None
                for n, (key, due) in enumerate(periods):
                    if not key:  # one-off: the result when handed in, else a progress report half-way
                        at = done if done else starts + (deadline - starts) / 2
                        if at <= city.now and (done or progress):
                            reports.append(_report(city, ids, assignment_id, "", progress, done is not None,
                                                   reported, at, official, "accepted"))
                        continue
                    # one report per period, a few days before it is due (after, for a unit that runs late)
                    at = due + timedelta(days=rng.randint(1, 10)) if late else due - timedelta(days=rng.randint(0, 5))
                    final = n == len(periods) - 1
                    if at > city.now or (final and done is None):
                        continue
                    if rng.random() < 0.05:  # sent back once, then sent again
                        reports.append(_report(city, ids, assignment_id, key, 60, False, reported,
                                               at - timedelta(days=2), official, "returned"))
                    reports.append(_report(city, ids, assignment_id, key, 100 if final else 60, final, reported, at,
                                           official, "accepted"))
                    final_at = at if final else None
                if periods[-1][0]:  # a recurring task is completed by its last period's accepted report
                    done, progress = final_at, 100 if final_at else progress
                assignments.append((assignment_id, task_id, unit_id, progress, _stamp(city, done)))
    return {
        "tasks_task": city.copy("tasks_task", ("id", "title", "description", "search_text", "assigner_unit_id",
                                               "created_by", "starts_at", "deadline", "recurrence", "created_at"),
                                tasks),
        "tasks_indicator": city.copy("tasks_indicator", ("id", "task_id", "name", "unit_of_measure", "baseline",
                                                         "target", "direction", "source"), indicators),
        "tasks_assignment": city.copy("tasks_assignment", ("id", "task_id", "unit_id", "progress", "completed_at"),
                                      assignments),
        "tasks_report": city.copy("tasks_report", ("id", "assignment_id", "period", "percent", "complete", "note",
                                                   "values", "evidence", "submitted_by", "submitted_at", "state",
                                                   "reviewed_by", "reviewed_at", "reason"), reports),
    } | _reset(city, ("tasks_task", "tasks_indicator", "tasks_assignment", "tasks_report"))


def _report(city: City, ids: dict[str, int], assignment_id: int, period: str, percent: int, complete: bool,
            indicators: list[int], at: datetime, reviewer: int | None, state: str) -> tuple[Any, ...]:
    """One report row, reviewed a few hours after it was submitted."""
    ids["tasks_report"] += 1
    values = {str(i): round(city.rng.uniform(40, 100), 1) for i in indicators}
    reason = f"{SYNTHETIC} Thiếu số liệu minh chứng" if state == "returned" else ""
    return (ids["tasks_report"], assignment_id, period, percent, complete, f"{SYNTHETIC} Báo cáo tiến độ",
            json.dumps(values), "[]", None, _stamp(city, at), state, reviewer,
            _stamp(city, at + timedelta(hours=4)), reason)


def _reset(city: City, tables: tuple[str, ...]) -> dict[str, int]:
    for table in tables:
        city.reset_sequence(table)
    return {}


def _close_months(city: City) -> int:
    """Close every finished month but the last, as an operator does once a month is over."""
    months = _months(city.now)[:-2]
    closed = 0
    with Session(city.engine) as session:
        known = set(evaluation.snapshots(session, months))
        for month in months:
            if month not in known:
                evaluation.close_period(session, period=month, closed_by=None, now=city.now)
                closed += 1
    return closed


def _load_procedures(city: City) -> dict[str, int]:
    """One import per month of records received that month, and the daily figures built from them."""
    rng = city.rng
    local, _assigners, _official = _bodies(city)
    weights = [rng.uniform(0.3, 3.0) for _ in local]
    per_month = city.size(RECORDS_PER_YEAR) // 12
    record_id, import_id = city.max_id("tasks_procedure_record"), city.max_id("tasks_procedure_import")
    imports: list[tuple[Any, ...]] = []
    for month in _months(city.now):
        import_id += 1
        imports.append((import_id, "csv", f"synthetic-{month}.csv", "keep_good", "imported", per_month, per_month, 0,
                        "[]", None, _stamp(city, datetime.combine(period_bounds(month)[1], datetime.min.time(), UTC))))
    written = {"tasks_procedure_import": city.copy(
        "tasks_procedure_import", ("id", "source", "filename", "mode", "status", "rows_total", "rows_good",
                                   "rows_bad", "errors", "created_by", "created_at"), imports)}

    def records() -> Iterator[tuple[Any, ...]]:
        nonlocal record_id
        for (import_id, *_rest), month in zip(imports, _months(city.now), strict=True):
            first, last = period_bounds(month)
            days = (last - first).days + 1
            units = rng.choices(range(len(local)), weights, k=per_month)
            for n, unit in enumerate(units):
                record_id += 1
                procedure, allowed = procedures.PROCEDURES[n % len(procedures.PROCEDURES)]
                received = first + timedelta(days=n % days)
                due = received + timedelta(days=allowed)
                roll = rng.random()
                resolved: date | None = (None if roll < 0.03 or due > city.now.date()
                                         else received + timedelta(days=int(roll * (allowed + 3))))
                yield (record_id, import_id, local[unit], procedure, received, roll < 0.76, due, resolved)

    written["tasks_procedure_record"] = city.copy(
        "tasks_procedure_record", ("id", "import_id", "unit_id", "procedure", "received_on", "online", "due_on",
                                   "resolved_on"), records())
    _reset(city, ("tasks_procedure_import", "tasks_procedure_record"))
    with Session(city.engine) as session:
        written["tasks_procedure_day"] = sum(procedures.add_to_days(session, n) for n, *_ in imports)
        session.commit()
        session.execute(text("ANALYZE"))
    return written
