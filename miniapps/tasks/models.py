"""Task monitoring tables: tasks, their assignments to units, progress reports, notices sent,
closed-period ranking snapshots, and imported administrative-procedure records."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Enum, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from plugins import utcnow


class Recurrence(StrEnum):
    """How often a task asks for a report: once (by the deadline), every month or every quarter."""

    once = "once"
    monthly = "monthly"
    quarterly = "quarterly"


class Direction(StrEnum):
    """Whether an indicator is met at or above its target (>=) or at or below it (<=)."""

    at_least = ">="
    at_most = "<="


class IndicatorSource(StrEnum):
    """Where an indicator's value comes from: the unit's reports, or the procedure statistics."""

    report = "report"
    online_rate = "online_rate"
    on_time_rate = "on_time_rate"


class ReviewState(StrEnum):
    """A report's review by the assigning body."""

    pending = "pending"
    accepted = "accepted"
    returned = "returned"


class Task(SQLModel, table=True):
    """A task the city or a department assigns to one or more communes and wards."""

    __tablename__ = "tasks_task"
    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=300)
    description: str = Field(default="", max_length=5000)
    # Lower case without diacritics: the search box matches it with LIKE.
    search_text: str = Field(default="", max_length=5400)
    assigner_unit_id: str = Field(foreign_key="org_unit.id", max_length=64, index=True)
    created_by: int | None = Field(default=None, foreign_key="user_account.id", ondelete="SET NULL")
    starts_at: datetime
    deadline: datetime = Field(index=True)
    # Enum types carry the mini-app's prefix: PostgreSQL keeps type names in one namespace for every mini-app.
    recurrence: Recurrence = Field(default=Recurrence.once, sa_type=Enum(Recurrence, name="tasks_recurrence"))
    created_at: datetime = Field(default_factory=utcnow)


class Indicator(SQLModel, table=True):
    """A measurable target of a task, e.g. 'online submission rate >= 80 %'."""

    __tablename__ = "tasks_indicator"
    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="tasks_task.id", ondelete="CASCADE", index=True)
    name: str = Field(max_length=200)
    unit_of_measure: str = Field(max_length=40)
    baseline: float
    target: float
    direction: Direction = Field(default=Direction.at_least, sa_type=Enum(Direction, name="tasks_direction"))
    source: IndicatorSource = Field(default=IndicatorSource.report,
                                    sa_type=Enum(IndicatorSource, name="tasks_indicatorsource"))


class Assignment(SQLModel, table=True):
    """A task as one unit carries it out: its own progress, completion and reports."""

    __tablename__ = "tasks_assignment"
    __table_args__ = (UniqueConstraint("task_id", "unit_id"),)
    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(foreign_key="tasks_task.id", ondelete="CASCADE", index=True)
    unit_id: str = Field(foreign_key="org_unit.id", max_length=64, index=True)
    progress: int = 0  # percent, from the latest accepted report
    # When the unit submitted the report the assigning body accepted as complete (national rules count
    # completion when the unit hands in the result, not when the reviewer gets round to it).
    completed_at: datetime | None = None


class Report(SQLModel, table=True):
    """A progress report by the assigned unit; returned reports stay in the history."""

    __tablename__ = "tasks_report"
    __table_args__ = (Index("ix_tasks_report_assignment_period", "assignment_id", "period"),)
    id: int | None = Field(default=None, primary_key=True)
    assignment_id: int = Field(foreign_key="tasks_assignment.id", ondelete="CASCADE")
    period: str = Field(default="", max_length=7)  # '' for a one-off task, '2025-07' or '2025-Q3'
    percent: int
    complete: bool = False
    note: str = Field(default="", max_length=5000)
    # indicator id (as text) -> value
    values: dict[str, float] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    evidence: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    submitted_by: int | None = Field(default=None, foreign_key="user_account.id", ondelete="SET NULL")
    submitted_at: datetime = Field(default_factory=utcnow)
    state: ReviewState = Field(default=ReviewState.pending, sa_type=Enum(ReviewState, name="tasks_reviewstate"))
    reviewed_by: int | None = Field(default=None, foreign_key="user_account.id", ondelete="SET NULL")
    reviewed_at: datetime | None = None
    reason: str = Field(default="", max_length=2000)


class Notice(SQLModel, table=True):
    """A reminder or overdue notice already sent, so the same thing is never notified twice."""

    __tablename__ = "tasks_notice"
    __table_args__ = (UniqueConstraint("assignment_id", "kind", "due_key"),)
    id: int | None = Field(default=None, primary_key=True)
    assignment_id: int = Field(foreign_key="tasks_assignment.id", ondelete="CASCADE")
    kind: str = Field(max_length=20)  # reminder | overdue
    due_key: str = Field(max_length=20)  # 'once' or the report period
    notification_id: int | None = None
    sent_at: datetime = Field(default_factory=utcnow)


class PeriodSnapshot(SQLModel, table=True):
    """A closed evaluation period: its ranking is stored and never recomputed."""

    __tablename__ = "tasks_period_snapshot"
    period: str = Field(primary_key=True, max_length=7)
    closed_at: datetime = Field(default_factory=utcnow)
    closed_by: int | None = Field(default=None, foreign_key="user_account.id", ondelete="SET NULL")
    rows: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class ProcedureImport(SQLModel, table=True):
    """One import of procedure records, with its bad rows reported row by row."""

    __tablename__ = "tasks_procedure_import"
    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=10)  # csv | xlsx | api | demo
    filename: str = Field(default="", max_length=300)
    mode: str = Field(max_length=20)  # keep_good | reject_file
    status: str = Field(max_length=20)  # imported | rejected
    rows_total: int = 0
    rows_good: int = 0
    rows_bad: int = 0
    # the first bad rows: [{"row": n, "field": ..., "reason": ...}]
    errors: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_by: int | None = Field(default=None, foreign_key="user_account.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow)


class ProcedureRecord(SQLModel, table=True):
    """One administrative-procedure record (hồ sơ thủ tục hành chính) received by a unit."""

    __tablename__ = "tasks_procedure_record"
    __table_args__ = (Index("ix_tasks_procedure_record_received_unit", "received_on", "unit_id"),)
    id: int | None = Field(default=None, primary_key=True)
    import_id: int | None = Field(default=None, foreign_key="tasks_procedure_import.id", ondelete="CASCADE",
                                  index=True)
    unit_id: str = Field(foreign_key="org_unit.id", max_length=64)
    procedure: str = Field(max_length=200)
    received_on: date
    online: bool
    due_on: date
    resolved_on: date | None = None


class ProcedureDay(SQLModel, table=True):
    """One unit's procedure figures for the records it received on one day, kept up to date by every import.

    The statistics for any date range add these up (at most 40 units x the days in the range) instead of
    reading every record: two years of Hue's records are about a million rows."""

    __tablename__ = "tasks_procedure_day"
    day: date = Field(primary_key=True)  # first, so a date range reads one slice of the key
    unit_id: str = Field(foreign_key="org_unit.id", primary_key=True, max_length=64)
    received: int = 0
    online: int = 0
    resolved: int = 0
    ahead: int = 0
    on_time: int = 0
    late: int = 0


MODELS = (Task, Indicator, Assignment, Report, Notice, PeriodSnapshot, ProcedureImport, ProcedureRecord, ProcedureDay)
