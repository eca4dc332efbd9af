"""Scheduled jobs of mini-apps, each run once per period however many workers or machines serve.

A period is claimed by inserting ``(job_id, period_start)`` into ``scheduled_job_run``; the primary key
lets exactly one worker win, on SQLite and on PostgreSQL alike, with no extra coordination service.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Iterable
from datetime import UTC, datetime

from prometheus_client import Counter
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel
from starlette.concurrency import run_in_threadpool

from plugins.context import HostContext
from plugins.registry import ScheduledJob

log = logging.getLogger(__name__)
JOB_RUNS = Counter("superapp_job_runs", "Scheduled job runs", ["job", "outcome"])


class JobRun(SQLModel, table=True):
    """One period of one job, claimed by the worker that runs it."""

    __tablename__ = "scheduled_job_run"
    job_id: str = Field(primary_key=True, max_length=120)
    period_start: datetime = Field(primary_key=True)
    worker: str = Field(max_length=120)
    started_at: datetime
    finished_at: datetime | None = None
    outcome: str | None = Field(default=None, max_length=20)


def period_start(job: ScheduledJob, now: datetime) -> datetime:
    """The start of the period ``now`` falls in (periods are aligned to the Unix epoch in UTC)."""
    step = job.every.total_seconds()
    return datetime.fromtimestamp((now.timestamp() // step) * step, UTC)


def claim(engine: Engine, job: ScheduledJob, period: datetime, *, worker: str) -> bool:
    """Record that ``worker`` runs ``job`` for ``period``; False when another worker already has."""
    with Session(engine) as session:
        session.add(JobRun(job_id=job.id, period_start=period, worker=worker,
                           started_at=datetime.now(UTC)))
        try:
            session.commit()
        except IntegrityError:
            return False
    return True


def _finish(engine: Engine, job: ScheduledJob, period: datetime, outcome: str) -> None:
    with Session(engine) as session:
        run = session.get(JobRun, (job.id, period))
        if run is not None:
            run.finished_at = datetime.now(UTC)
            run.outcome = outcome
            session.add(run)
            session.commit()


async def run_due(
    engine: Engine, jobs: Iterable[ScheduledJob], *, host: HostContext, worker: str, now: datetime | None = None
) -> list[str]:
    """Run every job whose current period nobody has claimed yet; returns the ids this worker ran."""
    now = now or datetime.now(UTC)
    ran: list[str] = []
    for job in jobs:
        period = period_start(job, now)
        if not await run_in_threadpool(claim, engine, job, period, worker=worker):
            continue
        outcome = "ok"
        try:
            if inspect.iscoroutinefunction(job.run):
                result = job.run(host)
            else:
                result = await run_in_threadpool(job.run, host)
            if inspect.isawaitable(result):
                await result
        except Exception:
            outcome = "failed"
            log.exception("scheduled job failed", extra={"job": job.id})
        JOB_RUNS.labels(job.id, outcome).inc()
        await run_in_threadpool(_finish, engine, job, period, outcome)
        ran.append(job.id)
    return ran


async def scheduler_loop(
    engine: Engine, jobs: list[ScheduledJob], *, host: HostContext, worker: str, tick: float = 1.0
) -> None:
    """Check for due jobs every ``tick`` seconds until cancelled."""
    if not jobs:
        return
    while True:
        try:
            await run_due(engine, jobs, host=host, worker=worker)
        except Exception:  # a database hiccup must not end the loop for good
            log.exception("scheduler tick failed")
        await asyncio.sleep(tick)
