"""The fan-out broker: in-process and Redis deliver the same way."""

import asyncio

import pytest
import redis

from push.broker import InProcessBroker, RedisBroker


async def _roundtrip(broker) -> list[dict]:
    got: list[dict] = []
    async with broker.subscribe("unit:phu-xuan") as messages:
        await asyncio.sleep(0.05)  # let a Redis subscription settle before publishing
        await broker.publish("unit:phu-xuan", {"n": 1})
        await broker.publish("unit:other", {"n": 99})
        await broker.publish("unit:phu-xuan", {"n": 2})
        async for message in messages:
            got.append(message)
            if len(got) == 2:
                break
    return got


async def test_in_process_broker() -> None:
    broker = InProcessBroker()
    await broker.ping()
    assert await asyncio.wait_for(_roundtrip(broker), 5) == [{"n": 1}, {"n": 2}]


async def test_redis_broker_across_two_clients(redis_url) -> None:
    # publisher and subscriber are separate clients, as two workers would be
    subscriber, publisher = RedisBroker(redis_url, prefix="test:"), RedisBroker(redis_url, prefix="test:")
    try:
        await subscriber.ping()
        got: list[dict] = []
        async with subscriber.subscribe("unit:phu-xuan") as messages:
            await asyncio.sleep(0.05)
            await publisher.publish("unit:phu-xuan", {"hello": "Huế"})
            got.append(await asyncio.wait_for(messages.__anext__(), 5))
        assert got == [{"hello": "Huế"}]
    finally:
        await subscriber.close()
        await publisher.close()


async def test_redis_down_fails_ping() -> None:
    broker = RedisBroker("redis://127.0.0.1:1/0")
    with pytest.raises(redis.exceptions.ConnectionError):
        await broker.ping()
    await broker.close()
