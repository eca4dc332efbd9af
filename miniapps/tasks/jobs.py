"""The scheduled job that reminds units before a deadline and tells them when they are overdue.

The host runs it once per period across all workers (core/scheduler.py). Each notice is one
transaction: the ``tasks_notice`` row (unique per assignment, kind and period, so a thing is never
notified twice even when runs overlap) and the notification itself (``notifier.send`` in the caller's
transaction) commit together, or, when the send fails, neither does and the next run tries again."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from miniapps.tasks.models import Assignment, Notice, Report, ReviewState, Task
from miniapps.tasks.service import HUE_TIME, as_utc, report_periods

log = logging.getLogger(__name__)
EVERY = timedelta(hours=1)
REMINDER_BEFORE = timedelta(days=3)
TOPICS = {"reminder": "deadline_reminders", "overdue": "overdue_notices"}


@dataclass(frozen=True)
class Due:
    """A notice to send: which assignment, which kind, for which report period."""

    assignment_id: int
    unit_id: str
    task_id: int
    title: str
    kind: str  # reminder | overdue
    due_key: str
    due: datetime


def notices_due(session: Session, now: datetime) -> list[Due]:
    """Reminders (deadline within three days) and overdue notices not sent yet."""
    rows = session.exec(
        select(Assignment, Task).join(Task, col(Task.id) == Assignment.task_id)
        .where(col(Assignment.completed_at).is_(None), col(Task.starts_at) <= now + REMINDER_BEFORE)
    ).all()
    if not rows:
        return []
    ids = [a.id for a, _ in rows]
    sent: set[tuple[int, str, str]] = set()
    reported: set[tuple[int, str]] = set()
    for chunk in range(0, len(ids), 900):
        part = ids[chunk:chunk + 900]
        sent.update((n.assignment_id, n.kind, n.due_key)
                    for n in session.exec(select(Notice).where(col(Notice.assignment_id).in_(part))))
        reported.update((r.assignment_id, r.period) for r in session.exec(
            select(Report).where(col(Report.assignment_id).in_(part), Report.state != ReviewState.returned)))
    found: list[Due] = []
    for assignment, task in rows:
        for key, due in report_periods(task):
            if key and (assignment.id, key) in reported:
                continue  # this period's report is in
            if due < now:
                kind = "overdue"
            elif due - now <= REMINDER_BEFORE:
                kind = "reminder"
            else:
                continue
            due_key = key or "once"
            if (assignment.id, kind, due_key) not in sent:
                found.append(Due(assignment.id or 0, assignment.unit_id, task.id or 0, task.title, kind, due_key, due))
    return found


def claim(session: Session, due: Due, now: datetime) -> Notice | None:
    """Add the notice row to the session's transaction (flushed, not committed); None when it is already there
    (sent, or being sent by an overlapping run), after rolling the transaction back.

    It must be the transaction's first write: a clash rolls back everything before it (no SAVEPOINT, which
    SQLite's driver does not nest inside its implicit transactions).
    """
    notice = Notice(assignment_id=due.assignment_id, kind=due.kind, due_key=due.due_key, sent_at=now)
    session.add(notice)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        return None
    return notice


def send_notice(host, due: Due, now: datetime) -> Notice | None:
    """One transaction: claim the notice and write its notification; both commit, or neither (an error raises)."""
    title, body = _texts(due, now)
    with host.transaction() as session:
        notice = claim(session, due, now)
        if notice is None:
            return None
        receipt = host.notify(
            session, miniapp="tasks", topic=TOPICS[due.kind], title=title, body=body,
            severity="warning" if due.kind == "overdue" else "info",
            roles=[("commune_official", due.unit_id)], url=f"/m/tasks/assignments/{due.assignment_id}",
            data={"task_id": due.task_id, "assignment_id": due.assignment_id, "kind": due.kind})
        notice.notification_id = receipt.notification_id
        session.add(notice)
    return notice


def _texts(due: Due, now: datetime) -> tuple[dict[str, str], dict[str, str]]:
    when = as_utc(due.due).astimezone(HUE_TIME).strftime("%d/%m/%Y %H:%M")
    if due.kind == "reminder":
        return ({"vi": f"Sắp đến hạn: {due.title}"[:200], "en": f"Deadline soon: {due.title}"[:200]},
                {"vi": f"Hạn báo cáo: {when}.", "en": f"Due by {when} (Hue time)."})
    days = max(1, (now - as_utc(due.due)).days or 1)
    return ({"vi": f"Quá hạn: {due.title}"[:200], "en": f"Overdue: {due.title}"[:200]},
            {"vi": f"Đã quá hạn {days} ngày (hạn {when}).", "en": f"{days} day(s) overdue (due {when})."})


async def send_deadline_notices(host, now: datetime | None = None) -> int:
    """Send every reminder and overdue notice that is due and not sent yet; returns how many were sent."""
    now = now or datetime.now(UTC)
    if host.notifier is None:
        return 0

    def pending() -> list[Due]:
        with host.session() as session:
            return notices_due(session, now)

    sent = 0
    for due in await run_in_threadpool(pending):
        try:
            notice = await run_in_threadpool(send_notice, host, due, now)
        except Exception:  # rolled back: no notice row, no notification; the next run tries again
            log.exception("could not send the %s notice for assignment %s", due.kind, due.assignment_id)
            continue
        if notice is not None:
            sent += 1
    return sent


async def deadline_notices_job(host) -> None:
    """The scheduled job (hourly)."""
    sent = await send_deadline_notices(host)
    if sent:
        log.info("tasks: %s deadline notice(s) sent", sent)
