"""Data retention: old inbox items, notifications, push outbox rows, audit events, sessions and job runs go.

Every rule walks its table in primary-key order, ``SUPERAPP_RETENTION_BATCH_SIZE`` keys at a time, and
deletes the expired rows of each window in a short transaction of its own, so a table of a hundred
million rows never sits in one transaction and each statement carries a fixed number of parameters.
Rows of other tables that would go by ``ON DELETE CASCADE`` (a notification's audiences and read marks,
a session's refresh tokens) are deleted first, in windows of the same size, so the cascade itself
touches nothing and no parent delete drags an unbounded number of child rows with it.

Tables whose key grows with time (sequence ids) are walked from the oldest key and the walk stops at
the first window without an expired row; the others (sessions, sign-in codes, job runs) are walked
whole, which is bounded per statement and cheap once a day.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter
from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    case,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    tuple_,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import aliased
from sqlmodel import SQLModel

from config import Settings
from core.identity.models import (
    AuditEvent,
    AuthSession,
    DevSignInCode,
    RefreshToken,
    utcnow,
)
from core.notifications.models import InboxItem, Notification, OutboxStatus, PushOutbox
from core.scheduler import JobRun
from core.webapps.models import WebAppOneTimeToken, WebAppUsage
from core.worktime import HUE_TIME
from plugins.registry import ScheduledJob

log = logging.getLogger(__name__)
DELETED = Counter("superapp_retention_deleted_rows", "Rows deleted by the retention job", ["table"])
# Once a day is enough for ages counted in days; a period is claimed by one worker across all of them.
JOB_ID = "core.retention"
JOB_EVERY = timedelta(days=1)


@dataclass(frozen=True)
class Rule:
    """Which rows of one table are expired at a cutoff, and whether key order follows age."""

    name: str
    model: type[SQLModel]
    days: int
    expired: Callable[[datetime], ColumnElement[bool]]
    # Set when the key grows with this column: the walk stops at the first window with nothing older.
    age: Any = None

    @property
    def table(self) -> Table:
        """The rule's table."""
        return self.model.__table__  # type: ignore[attr-defined, no-any-return]


@dataclass
class Outcome:
    """What one rule deleted (or, in a dry run, would delete)."""

    rule: str
    table: str
    cutoff: datetime
    rows: int = 0
    windows: int = 0
    dry_run: bool = False
    # Rows of tables that reference this one, deleted first (counted only when really deleting).
    dependents: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        """One line for the CLI and the log."""
        verb = "would delete" if self.dry_run else "deleted"
        line = (f"{self.rule}: {verb} {self.rows} {self.table} row(s) older than {self.cutoff:%Y-%m-%d %H:%M} UTC "
                f"({self.windows} window(s))")
        if self.dependents:
            line += ", with " + ", ".join(f"{n} {table}" for table, n in sorted(self.dependents.items()))
        return line


def rules(settings: Settings) -> list[Rule]:
    """The retention rules in the order they run (children before the parents they would cascade from)."""
    # Aliases, so these subqueries never correlate with the same table in an enclosing statement.
    latest_run = aliased(JobRun)
    live_token = aliased(RefreshToken)
    return [
        # Personal notices only: a read mark on a broadcast lives as long as the broadcast.
        Rule("inbox", InboxItem, settings.retention_inbox_days,
             lambda cutoff: and_(InboxItem.created_at < cutoff, InboxItem.personal.is_(True)),
             age=InboxItem.created_at),
        Rule("push outbox", PushOutbox, settings.retention_outbox_days,
             lambda cutoff: and_(PushOutbox.created_at < cutoff,
                                 PushOutbox.status.in_([OutboxStatus.sent, OutboxStatus.dead])),
             age=PushOutbox.created_at),
        Rule("notifications", Notification, settings.retention_notification_days,
             lambda cutoff: Notification.created_at < cutoff, age=Notification.created_at),
        Rule("audit", AuditEvent, settings.retention_audit_days,
             lambda cutoff: AuditEvent.at < cutoff, age=AuditEvent.at),
        # Refresh tokens are kept after use until they expire: a reused one must still be recognised.
        Rule("refresh tokens", RefreshToken, settings.retention_session_days,
             lambda cutoff: RefreshToken.expires_at < cutoff, age=RefreshToken.expires_at),
        # A session goes once revoked long enough ago, or once its last refresh token expired long enough ago.
        Rule("sessions", AuthSession, settings.retention_session_days,
             lambda cutoff: or_(AuthSession.revoked_at < cutoff,
                                and_(AuthSession.created_at < cutoff,
                                     ~exists().where(live_token.session_id == AuthSession.id,
                                                     live_token.expires_at >= cutoff)))),
        Rule("sign-in codes", DevSignInCode, settings.retention_session_days,
             lambda cutoff: DevSignInCode.expires_at < cutoff),
        # One-time phone and location tokens live two minutes; their exchanges stay in the audit log.
        Rule("web mini-app one-time tokens", WebAppOneTimeToken, settings.retention_session_days,
             lambda cutoff: WebAppOneTimeToken.expires_at < cutoff, age=WebAppOneTimeToken.expires_at),
        # Web mini-apps' usage per resident and day: the analytics read 90 days at most.
        Rule("web mini-app usage", WebAppUsage, settings.retention_webapp_usage_days,
             lambda cutoff: WebAppUsage.day < cutoff.astimezone(HUE_TIME).date()),
        # The latest run of each job stays: its row is the claim that stops the period running twice.
        Rule("job runs", JobRun, settings.retention_job_run_days,
             lambda cutoff: and_(JobRun.finished_at < cutoff,
                                 JobRun.period_start < select(func.max(latest_run.period_start))
                                 .where(latest_run.job_id == JobRun.job_id).scalar_subquery())),
    ]


def purge(engine: Engine, settings: Settings, *, dry_run: bool = False, now: datetime | None = None,
          only: set[str] | None = None) -> list[Outcome]:
    """Apply every retention rule (or those named in ``only``) and return what each deleted."""
    now = now or utcnow()
    outcomes = []
    for rule in rules(settings):
        if only is not None and rule.name not in only:
            continue
        outcome = _apply(engine, rule, cutoff=now - timedelta(days=rule.days),
                         batch=settings.retention_batch_size, dry_run=dry_run)
        outcomes.append(outcome)
        if not dry_run:
            DELETED.labels(outcome.table).inc(outcome.rows)
            for table, count in outcome.dependents.items():
                DELETED.labels(table).inc(count)
        log.info("retention: %s", outcome.describe())
    return outcomes


def scheduled_jobs(settings: Settings) -> list[ScheduledJob]:
    """The host's own scheduled jobs from this module: the retention job unless SUPERAPP_RETENTION_ENABLED is false."""
    return [retention_job(settings)] if settings.retention_enabled else []


def retention_job(settings: Settings) -> ScheduledJob:
    """The host's daily retention job (run by one worker per day across all workers and machines)."""

    def run(host: Any) -> None:
        purge(host.engine, settings)

    return ScheduledJob(id=JOB_ID, run=run, every=JOB_EVERY, miniapp="core")


# --- The walk ------------------------------------------------------------------------------------------


def _apply(engine: Engine, rule: Rule, *, cutoff: datetime, batch: int, dry_run: bool) -> Outcome:
    outcome = Outcome(rule.name, rule.table.name, cutoff, dry_run=dry_run)
    key = tuple_(*rule.table.primary_key.columns)
    expired = rule.expired(cutoff)
    for window in _windows(engine, rule, key, cutoff, batch):
        outcome.windows += 1
        doomed = and_(window, expired)
        if dry_run:
            with engine.connect() as connection:
                outcome.rows += connection.execute(select(func.count()).select_from(rule.table).where(doomed)).scalar_one()
            continue
        for table, count in _delete_dependents(engine, rule.table, doomed, batch).items():
            outcome.dependents[table] = outcome.dependents.get(table, 0) + count
        with engine.begin() as connection:
            outcome.rows += connection.execute(delete(rule.table).where(doomed)).rowcount
    return outcome


def _windows(engine: Engine, rule: Rule, key: Any, cutoff: datetime, batch: int) -> Iterator[ColumnElement[bool]]:
    """Key ranges of at most ``batch`` rows each, from the lowest key up, as conditions on the key."""
    columns = list(rule.table.primary_key.columns)
    old = case((rule.age < cutoff, 1), else_=0) if rule.age is not None else literal(1)
    after: tuple[Any, ...] | None = None
    while True:
        scan = select(*columns, old.label("old"))
        if after is not None:
            scan = scan.where(key > tuple_(*after))
        window = scan.order_by(*columns).limit(batch).subquery()
        keys = [window.c[column.name] for column in columns]
        # One row back per window (its last key, its size, whether it holds an old row), not ``batch``.
        summary = (select(*keys, func.count().over().label("size"), func.max(window.c.old).over().label("any_old"))
                   .order_by(*(k.desc() for k in keys)).limit(1))
        with engine.connect() as connection:
            row = connection.execute(summary).first()
        if row is None:
            return
        if not row.any_old:
            return  # keys follow age: everything from here on is younger than the cutoff
        last = tuple(row[: len(columns)])
        yield key <= tuple_(*last) if after is None else and_(key > tuple_(*after), key <= tuple_(*last))
        if row.size < batch:
            return
        after = last


def _cascading_children(parent: Table) -> list[tuple[Table, Any]]:
    """(table, referencing column) of every table whose rows go by ON DELETE CASCADE with ``parent``'s."""
    children = []
    for table in SQLModel.metadata.sorted_tables:
        for foreign_key in table.foreign_keys:
            if foreign_key.column.table is parent and (foreign_key.ondelete or "").upper() == "CASCADE":
                children.append((table, foreign_key.parent))
    return children


def _delete_dependents(engine: Engine, parent: Table, doomed: ColumnElement[bool], batch: int) -> dict[str, int]:
    """Delete the cascading rows of the doomed parent rows, ``batch`` at a time, each in its own transaction."""
    counts: dict[str, int] = {}
    for child, column in _cascading_children(parent):
        referenced = next(iter(column.foreign_keys)).column
        # Row-value IN over a LIMITed subquery: PostgreSQL and SQLite (3.15+) both take it as is.
        picked = (select(*child.primary_key.columns)
                  .where(column.in_(select(referenced).where(doomed))).limit(batch))
        statement = delete(child).where(tuple_(*child.primary_key.columns).in_(picked))
        while True:
            with engine.begin() as connection:
                deleted = connection.execute(statement).rowcount
            counts[child.name] = counts.get(child.name, 0) + deleted
            if deleted < batch:
                break
    return {name: n for name, n in counts.items() if n}
