"""Two deployments on one Redis database (a benchmark's night beside a test run's, as on 2026-12-02) keep
their live events apart: each host's broker names its channels and streams after the database it serves,
while the workers of one deployment, however they spell its address, still share theirs."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.app import create_app
from push.broker import deployment_namespace
from tests.conftest import base_settings

CHANNEL = "unit:kim-long"


def _host(database_url: str, redis_url: str, var: Path):
    return create_app(base_settings(database_url=database_url, redis_url=redis_url, var_dir=var))


async def _drop(*brokers) -> None:
    for broker in brokers:
        await broker._redis.delete(broker.stream_key(CHANNEL))
        await broker.close()


def test_a_deployment_never_hears_another_on_the_same_redis_database(redis_url, tmp_path) -> None:
    night = _host(f"sqlite:///{tmp_path}/night.db", redis_url, tmp_path / "a").state.broker
    tests = _host(f"sqlite:///{tmp_path}/tests.db", redis_url, tmp_path / "b").state.broker

    async def run() -> None:
        try:
            async with night.subscribe(CHANNEL) as heard:
                # The other deployment's notice 1 comes first on the server; the night's own notice 1 after it.
                await tests.publish(CHANNEL, {"type": "inbox", "notification_id": 1, "from": "tests"})
                await night.publish(CHANNEL, {"type": "inbox", "notification_id": 1, "from": "night"})
                first = await asyncio.wait_for(anext(heard), 5)
                assert first["from"] == "night"  # before: the tests' notice 1, and then the night's (a duplicate)
            history = await night.history(CHANNEL, "0-0")
            assert [e.data["from"] for e in history.events] == ["night"]  # a resume replays only its own, too
        finally:
            await _drop(night, tests)

    asyncio.run(run())


def test_the_workers_of_one_deployment_share_their_channels(redis_url, tmp_path) -> None:
    """Two workers on one PostgreSQL database, one naming the server 127.0.0.1, the other localhost."""
    one = _host("postgresql://postgres@127.0.0.1:5432/city", redis_url, tmp_path / "a").state.broker
    two = _host("postgresql://app:secret@localhost/city", redis_url, tmp_path / "b").state.broker
    assert one.prefix == two.prefix
    assert deployment_namespace("postgresql://postgres@127.0.0.1:5432/city") != deployment_namespace(
        "postgresql://postgres@127.0.0.1:5432/city_run"
    )

    async def run() -> None:
        try:
            published = await one.publish(CHANNEL, {"type": "inbox", "notification_id": 7})
            assert [e.id for e in (await two.history(CHANNEL, "0-0")).events] == [published]
        finally:
            await _drop(one, two)

    asyncio.run(run())
