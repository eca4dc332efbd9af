"""Tasks, assignments and progress reports: who sees and does what, and each assignment's status as the
national task-tracking rules count it. No HTTP here; errors are ``TaskError`` naming the field."""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, case, func, or_
from sqlalchemy.sql import ColumnElement, Select
from sqlmodel import Session, col, select

from miniapps.tasks import cache
from miniapps.tasks.models import (
    Assignment,
    Indicator,
    Recurrence,
    Report,
    ReviewState,
    Task,
)
from plugins import CITY_ID, HUE_TIME, DomainError, OrgUnit, Principal, UnitKind, fold

ASSIGNEE_KINDS = (UnitKind.commune, UnitKind.ward)
# C0 control characters other than tab and line breaks (CR is kept: browsers send textarea lines as CRLF).
# PostgreSQL cannot store NUL in text at all, and the others are invisible noise on every page and export.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


class TaskError(DomainError):
    """A request the domain refuses (the host answers it); its own name so the pages can catch it and redraw a form."""


class Status(StrEnum):
    """An assignment's status as the national task-tracking rules count it."""

    completed_on_time = "completed_on_time"
    completed_late = "completed_late"
    in_progress = "in_progress"  # not completed, deadline not passed
    overdue = "overdue"  # not completed, deadline passed


STATUS_NAMES = {
    Status.completed_on_time: {"vi": "Hoàn thành đúng hạn", "en": "Completed on time"},
    Status.completed_late: {"vi": "Hoàn thành quá hạn", "en": "Completed late"},
    Status.in_progress: {"vi": "Đang thực hiện trong hạn", "en": "In progress, within deadline"},
    Status.overdue: {"vi": "Quá hạn", "en": "Overdue"},
}
# Words a searcher may type for a status, folded (no diacritics).
STATUS_WORDS = {
    "dung han": Status.completed_on_time, "on time": Status.completed_on_time,
    "tre han": Status.completed_late, "hoan thanh qua han": Status.completed_late, "late": Status.completed_late,
    "dang thuc hien": Status.in_progress, "in progress": Status.in_progress,
    "qua han": Status.overdue, "overdue": Status.overdue,
}


def status_of(deadline: datetime, completed_at: datetime | None, now: datetime) -> tuple[Status, int]:
    """(status, whole days overdue) of work due at ``deadline`` and completed at ``completed_at``."""
    if completed_at is not None:
        return (Status.completed_on_time if completed_at <= deadline else Status.completed_late), 0
    if now <= deadline:
        return Status.in_progress, 0
    return Status.overdue, max(1, (now - deadline) // timedelta(days=1))


def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime; naive values (SQLite hands them back) are taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def end_of_day(day: date) -> datetime:
    """23:59:59 Hue time on ``day``, in UTC: a deadline given as a date."""
    return datetime.combine(day, time(23, 59, 59), tzinfo=HUE_TIME).astimezone(UTC)


def hue_date(moment: datetime) -> date:
    """The calendar day in Hue of an instant."""
    return as_utc(moment).astimezone(HUE_TIME).date()


def check_text(value: str, *, field: str) -> str:
    """``value`` if it holds no control character other than tab or line breaks, else a 422 naming ``field``."""
    found = CONTROL_CHARACTERS.search(value)
    if found:
        raise TaskError(422, f"control character U+{ord(found.group()):04X} is not allowed here", field=field)
    return value


def check_number(value: float, *, field: str) -> float:
    """``value`` if it is a finite number, else a 422 naming ``field`` (NaN and infinity mean nothing here)."""
    if not math.isfinite(value):
        raise TaskError(422, "the value must be a finite number", field=field)
    return value


# --- Reporting periods -------------------------------------------------------------------------------------


def month_of(moment: datetime) -> str:
    """'2025-07': the month (Hue time) an instant falls in; evaluation periods are months."""
    day = hue_date(moment)
    return f"{day.year:04d}-{day.month:02d}"


def period_bounds(period: str) -> tuple[date, date]:
    """First and last day of a month '2025-07' or a quarter '2025-Q3'; ValueError when malformed."""
    year_text, _, rest = period.partition("-")
    year = int(year_text)
    if rest.startswith("Q"):
        quarter = int(rest[1:])
        if not 1 <= quarter <= 4:
            raise ValueError(period)
        first = date(year, 3 * quarter - 2, 1)
        months = 3
    else:
        month = int(rest)
        if not 1 <= month <= 12 or len(rest) != 2:
            raise ValueError(period)
        first = date(year, month, 1)
        months = 1
    after = date(first.year + (first.month - 1 + months) // 12, (first.month - 1 + months) % 12 + 1, 1)
    return first, after - timedelta(days=1)


def check_month(period: str, *, field: str) -> str:
    """``period`` if it is a month like '2025-07', else a 422 naming ``field``."""
    try:
        if len(period) != 7 or "Q" in period:
            raise ValueError(period)
        period_bounds(period)
    except ValueError:
        raise TaskError(422, f"{period!r} is not a month like 2025-07", field=field) from None
    return period


def report_periods(task: Task) -> list[tuple[str, datetime]]:
    """A recurring task's reporting periods and when each report is due (the period's last day, or the
    task's deadline when that comes first); a one-off task has the single period '' due at its deadline."""
    deadline = as_utc(task.deadline)
    if task.recurrence is Recurrence.once:
        return [("", deadline)]
    start = hue_date(task.starts_at)
    periods: list[tuple[str, datetime]] = []
    year, month = start.year, start.month
    if task.recurrence is Recurrence.quarterly:
        month = 3 * ((month - 1) // 3) + 1
    step = 1 if task.recurrence is Recurrence.monthly else 3
    while True:
        key = f"{year:04d}-{month:02d}" if step == 1 else f"{year:04d}-Q{(month - 1) // 3 + 1}"
        first, last = period_bounds(key)
        if end_of_day(first) > deadline + timedelta(days=1):
            break
        periods.append((key, min(end_of_day(last), deadline)))
        month += step
        if month > 12:
            year, month = year + 1, month - 12
    return periods


# --- Who sees what -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reach:
    """What a caller may see: everything (city roles), tasks their department assigned, tasks assigned to
    their commune or ward."""

    everything: bool = False
    assigner_units: frozenset[str] = frozenset()
    assignee_units: frozenset[str] = frozenset()

    def sees_task(self, task: Task, unit_ids: Iterable[str]) -> bool:
        """True when the caller may see ``task``, given the units it is assigned to."""
        return self.everything or task.assigner_unit_id in self.assigner_units or bool(
            self.assignee_units.intersection(unit_ids))

    def sees_assignment(self, task: Task, assignment: Assignment) -> bool:
        """True when the caller may see one unit's assignment of ``task``."""
        return (self.everything or task.assigner_unit_id in self.assigner_units
                or assignment.unit_id in self.assignee_units)


def reach_of(principal: Principal) -> Reach:
    """The caller's reach, from their memberships."""
    if "admin" in principal.roles or "operator" in principal.roles:
        return Reach(everything=True)
    return Reach(assigner_units=principal.units_with_role("department_official"),
                 assignee_units=principal.units_with_role("commune_official"))


def assignee_units(session: Session) -> list[OrgUnit]:
    """The 40 communes and wards, by name."""
    return list(session.exec(select(OrgUnit).where(col(OrgUnit.kind).in_(ASSIGNEE_KINDS)).order_by(OrgUnit.name_vi)))


def unit_names(session: Session) -> dict[str, dict[str, str]]:
    """Every unit's name in both languages, by id."""
    return {u.id: {"vi": u.name_vi, "en": u.name_en} for u in session.exec(select(OrgUnit))}


# --- Creating tasks ----------------------------------------------------------------------------------------


@dataclass
class IndicatorSpec:
    """An indicator as asked for when creating a task."""

    name: str
    unit_of_measure: str
    baseline: float
    target: float
    direction: str = ">="
    source: str = "report"


def default_assigner(principal: Principal) -> str | None:
    """The body a caller assigns for when they do not say: their department, or the city for operators."""
    if "operator" in principal.roles or "admin" in principal.roles:
        return CITY_ID
    departments = sorted(principal.units_with_role("department_official"))
    return departments[0] if departments else None


def create_task(
    session: Session, *, principal: Principal, allows: Any, title: str, description: str, deadline: datetime,
    unit_ids: Sequence[str] | None, all_units: bool, assigner_unit_id: str | None, recurrence: str = "once",
    indicators: Sequence[IndicatorSpec] = (), starts_at: datetime | None = None, now: datetime | None = None,
) -> Task:
    """Create a task and one assignment per unit, in one transaction; ``allows(permission, unit)`` checks
    the caller's permission in a unit."""
    now = now or datetime.now(UTC)
    assigner = assigner_unit_id or default_assigner(principal)
    if assigner is None:
        raise TaskError(422, "say which body assigns the task", field="body.assigner_unit_id")
    body = session.get(OrgUnit, assigner)
    if body is None or body.kind not in (UnitKind.city, UnitKind.department):
        raise TaskError(422, f"{assigner!r} is not the city or a department", field="body.assigner_unit_id")
    if not allows("tasks.assign", assigner):
        raise TaskError(403, f"you may not assign tasks for {assigner!r}", field="body.assigner_unit_id")
    if not title.strip():
        raise TaskError(422, "the title must not be empty", field="body.title")
    check_text(title, field="body.title")
    check_text(description, field="body.description")
    deadline = as_utc(deadline)
    if deadline <= now:
        raise TaskError(422, "the deadline must be in the future", field="body.deadline")
    starts_at = as_utc(starts_at) if starts_at else now
    if starts_at >= deadline:
        raise TaskError(422, "the task must start before its deadline", field="body.starts_at")
    units = {u.id for u in assignee_units(session)}
    if all_units:
        chosen = sorted(units)
    else:
        chosen = list(dict.fromkeys(unit_ids or ()))
        if not chosen:
            raise TaskError(422, "assign the task to at least one unit, or to all", field="body.unit_ids")
        unknown = [u for u in chosen if u not in units]
        if unknown:
            raise TaskError(422, f"not a commune or ward: {', '.join(unknown)}", field="body.unit_ids")
    for n, spec in enumerate(indicators):
        check_text(spec.name, field=f"body.indicators.{n}.name")
        check_text(spec.unit_of_measure, field=f"body.indicators.{n}.unit_of_measure")
        check_number(spec.baseline, field=f"body.indicators.{n}.baseline")
        check_number(spec.target, field=f"body.indicators.{n}.target")
        if spec.baseline == spec.target:
            raise TaskError(422, "the target must differ from the baseline", field=f"body.indicators.{n}.target")
    task = Task(title=title.strip(), description=description.strip(), assigner_unit_id=assigner,
                created_by=principal.user_id, starts_at=starts_at, deadline=deadline,
                recurrence=Recurrence(recurrence), created_at=now,
                search_text=fold(f"{title} {description}")[:5400])
    session.add(task)
    session.flush()
    for spec in indicators:
        session.add(Indicator(task_id=task.id, name=spec.name.strip(), unit_of_measure=spec.unit_of_measure.strip(),
                              baseline=spec.baseline, target=spec.target, direction=spec.direction, source=spec.source))
    for unit_id in chosen:
        session.add(Assignment(task_id=task.id, unit_id=unit_id))
    cache.changed(session)  # the host's ranking cache forgets as this commits
    session.commit()
    session.refresh(task)
    return task


# --- Reading -----------------------------------------------------------------------------------------------


@dataclass
class AssignmentView:
    """An assignment with its task and status, as lists and pages show it."""

    assignment: Assignment
    task: Task
    status: Status
    days_overdue: int

    def as_json(self, names: dict[str, dict[str, str]]) -> dict[str, Any]:
        """The API form."""
        return {
            "id": self.assignment.id, "task_id": self.task.id, "task_title": self.task.title,
            "unit_id": self.assignment.unit_id, "unit_name": names.get(self.assignment.unit_id, {}),
            "assigner_unit_id": self.task.assigner_unit_id, "deadline": as_utc(self.task.deadline).isoformat(),
            "progress": self.assignment.progress, "status": self.status.value, "days_overdue": self.days_overdue,
            "completed_at": as_utc(self.assignment.completed_at).isoformat() if self.assignment.completed_at else None,
        }


def view(task: Task, assignment: Assignment, now: datetime) -> AssignmentView:
    """An assignment's view at ``now``."""
    completed = as_utc(assignment.completed_at) if assignment.completed_at else None
    status, days = status_of(as_utc(task.deadline), completed, now)
    return AssignmentView(assignment, task, status, days)


def status_condition(status: Status, now: datetime) -> ColumnElement[bool]:
    """The SQL form of ``status_of``: the assignments (joined with their task) that have ``status`` at ``now``."""
    completed, deadline = col(Assignment.completed_at), col(Task.deadline)
    return {
        Status.completed_on_time: and_(completed.is_not(None), completed <= deadline),
        Status.completed_late: and_(completed.is_not(None), completed > deadline),
        Status.overdue: and_(completed.is_(None), deadline < now),
        Status.in_progress: and_(completed.is_(None), deadline >= now),
    }[status]


def _filtered(query: Select[Any], reach: Reach, *, task_id: int | None, unit_id: str | None, text: str | None,
              status: Status | None, now: datetime) -> Select[Any]:
    """``query`` (over assignments joined with their tasks) narrowed to what the caller may see and asked for."""
    if not reach.everything:
        query = query.where(or_(col(Task.assigner_unit_id).in_(reach.assigner_units),
                                col(Assignment.unit_id).in_(reach.assignee_units)))
    if task_id is not None:
        query = query.where(Assignment.task_id == task_id)
    if unit_id is not None:
        query = query.where(Assignment.unit_id == unit_id)
    for word in fold(text or "").split():  # every word must appear, in any order
        query = query.where(col(Task.search_text).contains(word))
    if status is not None:
        query = query.where(status_condition(status, now))
    return query


def visible_assignments(
    session: Session, reach: Reach, *, task_id: int | None = None, unit_id: str | None = None,
    text: str | None = None, status: Status | None = None, now: datetime | None = None, limit: int | None = None,
    most_overdue_first: bool = False,
) -> list[AssignmentView]:
    """The assignments the caller may see, newest deadline first (oldest first with ``most_overdue_first``),
    filtered by task, unit, text and status; at most ``limit`` of them, counted off in the database."""
    now = now or datetime.now(UTC)
    query = _filtered(select(Assignment, Task).join(Task, col(Task.id) == Assignment.task_id), reach,
                      task_id=task_id, unit_id=unit_id, text=text, status=status, now=now)
    deadline = col(Task.deadline).asc() if most_overdue_first else col(Task.deadline).desc()
    query = query.order_by(deadline, Task.id, Assignment.unit_id)
    if limit:
        query = query.limit(limit)
    return [view(task, assignment, now) for assignment, task in session.exec(query)]


def matching_tasks(session: Session, reach: Reach, *, text: str | None, limit: int) -> list[Task]:
    """At most ``limit`` tasks the caller may see whose text has every word of ``text``, newest deadline
    first (the search box: no per-status counts, unlike ``visible_tasks``)."""
    query = _filtered(select(Task).join(Assignment, col(Assignment.task_id) == Task.id), reach, task_id=None,
                      unit_id=None, text=text, status=None, now=datetime.now(UTC))
    return list(session.exec(query.group_by(col(Task.id)).order_by(col(Task.deadline).desc(), Task.id).limit(limit)))


def count_assignments(session: Session, reach: Reach, *, unit_id: str | None = None, status: Status | None = None,
                      now: datetime | None = None) -> int:
    """How many assignments the caller may see with ``status`` (one COUNT, whatever the number)."""
    query = _filtered(select(func.count()).select_from(Assignment).join(Task, col(Task.id) == Assignment.task_id),
                      reach, task_id=None, unit_id=unit_id, text=None, status=status, now=now or datetime.now(UTC))
    return int(session.exec(query).one())


TASK_PAGE = 50
_CURSOR_TAG = "t1:"


def encode_task_cursor(task: Task) -> str:
    """An opaque cursor for the task list page after ``task`` (the list is by deadline, newest first)."""
    raw = f"{_CURSOR_TAG}{as_utc(task.deadline).isoformat()}|{task.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_task_cursor(cursor: str) -> tuple[datetime, int]:
    """(deadline, id) of the last task of the previous page; 422 naming ``query.cursor`` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        deadline, _, task_id = raw.removeprefix(_CURSOR_TAG).partition("|")
        if not raw.startswith(_CURSOR_TAG) or not task_id.isdigit() or len(cursor) > 100:
            raise ValueError(cursor)
        return as_utc(datetime.fromisoformat(deadline)), int(task_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise TaskError(422, "not a task list cursor; pass back the one the previous page gave", field="query.cursor") \
            from None


@dataclass
class TaskPage:
    """One page of the task list and the cursor of the next (None on the last page)."""

    entries: list[dict[str, Any]]
    next_cursor: str | None


def visible_tasks(session: Session, reach: Reach, *, text: str | None = None, unit_id: str | None = None,
                  status: Status | None = None, now: datetime | None = None, limit: int = TASK_PAGE,
                  cursor: str | None = None) -> TaskPage:
    """A page of the tasks the caller may see, newest deadline first, each with how many of its visible
    assignments have each status; the counting is one grouped query, so a page costs the same however
    many tasks the city has."""
    now = now or datetime.now(UTC)
    counts = [func.sum(case((status_condition(s, now), 1), else_=0)) for s in Status]
    query = _filtered(select(Task, func.count(), *counts).join(Assignment, col(Assignment.task_id) == Task.id),
                      reach, task_id=None, unit_id=unit_id, text=text, status=status, now=now)
    if cursor is not None:
        deadline, task_id = decode_task_cursor(cursor)
        query = query.where(or_(col(Task.deadline) < deadline, and_(col(Task.deadline) == deadline, col(Task.id) > task_id)))
    rows = session.exec(query.group_by(col(Task.id)).order_by(col(Task.deadline).desc(), Task.id).limit(limit + 1)).all()
    entries = [{"task": task, "units": int(units), "counts": {s: int(n or 0) for s, n in zip(Status, by_status, strict=True)}}
               for task, units, *by_status in rows[:limit]]
    return TaskPage(entries, encode_task_cursor(rows[limit - 1][0]) if len(rows) > limit else None)


def get_task(session: Session, reach: Reach, task_id: int) -> Task:
    """A task the caller may see, else 404 (a task one may not see is as good as absent)."""
    task = session.get(Task, task_id)
    if task is None:
        raise TaskError(404, f"no task {task_id}", field="path.task_id")
    units = session.exec(select(Assignment.unit_id).where(Assignment.task_id == task_id)).all()
    if not reach.sees_task(task, units):
        raise TaskError(404, f"no task {task_id}", field="path.task_id")
    return task


def indicators_of(session: Session, task_id: int) -> list[Indicator]:
    """A task's indicators, in the order they were given."""
    return list(session.exec(select(Indicator).where(Indicator.task_id == task_id).order_by(Indicator.id)))


def get_assignment(session: Session, reach: Reach, assignment_id: int) -> tuple[Assignment, Task]:
    """An assignment the caller may see, with its task, else 404."""
    assignment = session.get(Assignment, assignment_id)
    task = session.get(Task, assignment.task_id) if assignment else None
    if assignment is None or task is None or not reach.sees_assignment(task, assignment):
        raise TaskError(404, f"no assignment {assignment_id}", field="path.assignment_id")
    return assignment, task


def reports_of(session: Session, assignment_id: int) -> list[Report]:
    """An assignment's reports, newest first: the full history, returned ones included."""
    return list(session.exec(select(Report).where(Report.assignment_id == assignment_id)
                             .order_by(col(Report.submitted_at).desc(), col(Report.id).desc())))


# --- Reporting and reviewing -----------------------------------------------------------------------------


@dataclass
class IndicatorValue:
    """A value reported for one indicator."""

    indicator_id: int
    value: float


@dataclass
class ReportSpec:
    """A progress report as submitted."""

    percent: int
    note: str = ""
    complete: bool = False
    period: str = ""
    values: list[IndicatorValue] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)


def submit_report(session: Session, *, principal: Principal, allows: Any, assignment_id: int, spec: ReportSpec,
                  now: datetime | None = None) -> Report:
    """A unit reports progress on its own assignment (404 if it cannot see it, 403 if not its unit)."""
    now = now or datetime.now(UTC)
    assignment, task = get_assignment(session, reach_of(principal), assignment_id)
    if not allows("tasks.report", assignment.unit_id) or (
            "admin" not in principal.roles and assignment.unit_id not in principal.units_with_role("commune_official")):
        raise TaskError(403, "only the assigned unit's officials report on this task", field="path.assignment_id")
    if assignment.completed_at is not None:
        raise TaskError(409, "this assignment is already completed", field="path.assignment_id")
    periods = [key for key, _due in report_periods(task)]
    if spec.period not in periods:
        expected = "leave it empty for a one-off task" if periods == [""] else f"one of {', '.join(periods)}"
        raise TaskError(422, f"period {spec.period!r} is not a reporting period of this task: {expected}",
                        field="body.period")
    if not 0 <= spec.percent <= 100:  # the page's form reaches here without the API's schema
        raise TaskError(422, "percent must be from 0 to 100", field="body.percent")
    if spec.complete and spec.percent != 100:
        raise TaskError(422, "a report that completes the task must say 100 percent", field="body.percent")
    check_text(spec.note, field="body.note")
    for n, link in enumerate(spec.evidence):
        check_text(link, field=f"body.evidence.{n}")
    known = {i.id for i in indicators_of(session, task.id or 0)}
    values: dict[str, float] = {}
    for n, item in enumerate(spec.values):
        if item.indicator_id not in known:
            raise TaskError(422, f"indicator {item.indicator_id} does not belong to this task",
                            field=f"body.values.{n}.indicator_id")
        values[str(item.indicator_id)] = check_number(float(item.value), field=f"body.values.{n}.value")
    report = Report(assignment_id=assignment.id or 0, period=spec.period, percent=spec.percent,
                    complete=spec.complete, note=spec.note.strip(), values=values, evidence=list(spec.evidence),
                    submitted_by=principal.user_id, submitted_at=now)
    session.add(report)
    cache.changed(session)  # the host's ranking cache forgets as this commits
    session.commit()
    session.refresh(report)
    return report


def review_report(session: Session, *, principal: Principal, allows: Any, report_id: int, accept: bool,
                  reason: str = "", now: datetime | None = None) -> Report:
    """The assigning body accepts a report, or returns it as not completed with a reason."""
    now = now or datetime.now(UTC)
    report = session.get(Report, report_id)
    if report is None:
        raise TaskError(404, f"no report {report_id}", field="path.report_id")
    try:
        assignment, task = get_assignment(session, reach_of(principal), report.assignment_id)
    except TaskError:
        raise TaskError(404, f"no report {report_id}", field="path.report_id") from None
    if not allows("tasks.review", task.assigner_unit_id):
        raise TaskError(403, "only the assigning body reviews reports", field="path.report_id")
    if report.state is not ReviewState.pending:
        raise TaskError(409, f"this report was already {report.state.value}", field="path.report_id")
    if not accept and not reason.strip():
        raise TaskError(422, "say why the report is returned", field="body.reason")
    check_text(reason, field="body.reason")
    report.state = ReviewState.accepted if accept else ReviewState.returned
    report.reviewed_by, report.reviewed_at, report.reason = principal.user_id, now, reason.strip()
    if accept:
        assignment.progress = max(assignment.progress, report.percent)
        # The first accepted completion stands: the status the national rules count (on time or late) is
        # fixed once the assigning body has accepted the result, so a later complete report is accepted as
        # part of the history without moving the completion date.
        if report.complete and assignment.completed_at is None:
            assignment.completed_at = report.submitted_at
        session.add(assignment)
    session.add(report)
    cache.changed(session)  # the host's ranking cache forgets as this commits
    session.commit()
    session.refresh(report)
    return report


def report_json(report: Report) -> dict[str, Any]:
    """A report in the API's form."""
    return {
        "id": report.id, "assignment_id": report.assignment_id, "period": report.period, "percent": report.percent,
        "complete": report.complete, "note": report.note,
        "values": [{"indicator_id": int(k), "value": v} for k, v in report.values.items()],
        "evidence": [f"/api/miniapps/tasks/reports/{report.id}/evidence/{n}" if e.startswith(MEDIA_PREFIX) else e
                     for n, e in enumerate(report.evidence)],
        "submitted_by": report.submitted_by,
        "submitted_at": as_utc(report.submitted_at).isoformat(), "state": report.state.value,
        "reviewed_at": as_utc(report.reviewed_at).isoformat() if report.reviewed_at else None,
        "reason": report.reason,
    }


def task_json(task: Task, indicators: Sequence[Indicator] = ()) -> dict[str, Any]:
    """A task in the API's form."""
    return {
        "id": task.id, "title": task.title, "description": task.description,
        "assigner_unit_id": task.assigner_unit_id, "starts_at": as_utc(task.starts_at).isoformat(),
        "deadline": as_utc(task.deadline).isoformat(), "recurrence": task.recurrence.value,
        "report_periods": [{"period": key, "due": due.isoformat()} for key, due in report_periods(task)],
        "indicators": [
            {"id": i.id, "name": i.name, "unit_of_measure": i.unit_of_measure, "baseline": i.baseline,
             "target": i.target, "direction": i.direction.value, "source": i.source.value} for i in indicators],
    }


# --- Evidence photos ------------------------------------------------------------------------------------

MEDIA_PREFIX = "media:"
MAX_EVIDENCE_PHOTOS = 5


def report_for_evidence(session: Session, *, principal: Principal, allows: Any, report_id: int) -> Report:
    """A pending report of the caller's own unit, to attach a photo to (404 unseen, 403 not theirs, 409 reviewed)."""
    report = session.get(Report, report_id)
    if report is None:
        raise TaskError(404, f"no report {report_id}", field="path.report_id")
    try:
        assignment, _task = get_assignment(session, reach_of(principal), report.assignment_id)
    except TaskError:
        raise TaskError(404, f"no report {report_id}", field="path.report_id") from None
    if not allows("tasks.report", assignment.unit_id) or (
            "admin" not in principal.roles and assignment.unit_id not in principal.units_with_role("commune_official")):
        raise TaskError(403, "only the reporting unit's officials add evidence", field="path.report_id")
    if report.state is not ReviewState.pending:
        raise TaskError(409, "evidence can be added only before the report is reviewed", field="path.report_id")
    if sum(1 for e in report.evidence if e.startswith(MEDIA_PREFIX)) >= MAX_EVIDENCE_PHOTOS:
        raise TaskError(422, f"a report has at most {MAX_EVIDENCE_PHOTOS} photos", field="photo")
    return report


def add_evidence(session: Session, report: Report, media_key: str) -> int:
    """Record a stored photo on the report; returns its index in the evidence list."""
    report.evidence = [*report.evidence, MEDIA_PREFIX + media_key]
    session.add(report)
    session.commit()
    return len(report.evidence) - 1


def evidence_photo(session: Session, reach: Reach, report_id: int, index: int) -> str:
    """The media key of a report's evidence photo the caller may see, else 404."""
    report = session.get(Report, report_id)
    if report is None:
        raise TaskError(404, f"no report {report_id}", field="path.report_id")
    try:
        get_assignment(session, reach, report.assignment_id)
    except TaskError:
        raise TaskError(404, f"no report {report_id}", field="path.report_id") from None
    if not 0 <= index < len(report.evidence) or not report.evidence[index].startswith(MEDIA_PREFIX):
        raise TaskError(404, f"no evidence photo {index}", field="path.index")
    return report.evidence[index].removeprefix(MEDIA_PREFIX)
