"""Scheduled jobs run once per period however many workers try."""

import asyncio
from datetime import UTC, datetime, timedelta

from core.db import make_engine
from core.scheduler import period_start, run_due
from plugins.context import HostContext
from plugins.registry import ScheduledJob


async def test_one_run_per_period_across_workers(database_url: str) -> None:
    from config import Settings  # noqa: F401 - settings object is not needed by the job

    engine = make_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    runs: list[str] = []
    job = ScheduledJob("tests.tally", lambda host: runs.append("ran"), timedelta(minutes=10), "tests")
    host = HostContext(engine=engine, settings=None, publish_event=lambda e: None)
    now = datetime(2026, 11, 25, 9, 3, tzinfo=UTC)
    # four workers wake up in the same period at once
    results = await asyncio.gather(*(run_due(engine, [job], host=host, worker=f"w{i}", now=now) for i in range(4)))
    assert sum(len(r) for r in results) == 1 and runs == ["ran"]
    # later in the same period: nothing; next period: one more run
    assert await run_due(engine, [job], host=host, worker="w0", now=now + timedelta(minutes=5)) == []
    assert await run_due(engine, [job], host=host, worker="w1", now=now + timedelta(minutes=8)) == ["tests.tally"]
    assert runs == ["ran", "ran"]
    engine.dispose()


async def test_failing_job_is_recorded_and_runs_next_period(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    calls: list[int] = []

    def flaky(host):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first run fails")

    job = ScheduledJob("tests.flaky", flaky, timedelta(minutes=1), "tests")
    host = HostContext(engine=engine, settings=None, publish_event=lambda e: None)
    t0 = datetime(2026, 11, 25, 9, 0, 30, tzinfo=UTC)
    assert await run_due(engine, [job], host=host, worker="w", now=t0) == ["tests.flaky"]
    assert await run_due(engine, [job], host=host, worker="w", now=t0 + timedelta(minutes=1)) == ["tests.flaky"]
    assert len(calls) == 2
    from sqlmodel import Session, select

    from core.scheduler import JobRun

    with Session(engine) as session:
        outcomes = [r.outcome for r in session.exec(select(JobRun).order_by(JobRun.period_start))]
    assert outcomes == ["failed", "ok"]
    engine.dispose()


def test_periods_align() -> None:
    job = ScheduledJob("x.y", lambda h: None, timedelta(hours=1), "x")
    assert period_start(job, datetime(2026, 1, 1, 10, 59, tzinfo=UTC)) == datetime(2026, 1, 1, 10, tzinfo=UTC)


def test_sample_miniapp_job_runs_in_the_app(settings) -> None:
    from fastapi.testclient import TestClient

    from core.app import create_app
    from superapp_festival import service

    before = len(service.upcoming)
    app = create_app(settings.model_copy(update={"scheduler_enabled": True}))
    with TestClient(app):
        for _ in range(100):
            if len(service.upcoming) > before:
                break
            import time

            time.sleep(0.05)
    assert service.upcoming[-1] == 0
