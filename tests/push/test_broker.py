"""The broker's ids, history and subscriptions, in-process and on Redis; Redis restarts mid-stream."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis

from push.broker import Event, InProcessBroker, RedisBroker, parse_id
from tests.push.conftest import PrivateRedis


@pytest.fixture(params=["memory", "redis"])
async def broker(request: pytest.FixtureRequest) -> AsyncIterator[InProcessBroker | RedisBroker]:
    """Each test runs on the in-process broker, then on Redis under a prefix of its own."""
    if request.param == "memory":
        yield InProcessBroker(history_size=5)
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    redis_broker = RedisBroker(url, prefix=prefix, history_size=5, history_ttl=60)
    yield redis_broker
    keys = [key async for key in redis_broker._redis.scan_iter(match=prefix + "*")]
    if keys:
        await redis_broker._redis.delete(*keys)
    await redis_broker.close()


async def _next(queue: asyncio.Queue[Event], timeout: float = 5.0) -> Event:
    return await asyncio.wait_for(queue.get(), timeout)


async def test_publish_returns_growing_ids(broker) -> None:
    ids = [await broker.publish("feed", {"n": n}) for n in range(20)]
    keys = [parse_id(i) for i in ids]
    assert keys == sorted(keys) and len(set(keys)) == 20
    assert ids[0].count("-") == 1 and abs(keys[0][0] - time.time() * 1000) < 60_000  # milliseconds


async def test_subscribe_yields_messages_as_before(broker) -> None:
    async with broker.subscribe("unit:phu-xuan") as messages:
        await broker.publish("unit:phu-xuan", {"n": 1})
        await broker.publish("unit:other", {"n": 99})
        await broker.publish("unit:phu-xuan", {"n": 2})
        got = [await asyncio.wait_for(messages.__anext__(), 5) for _ in range(2)]
    assert got == [{"n": 1}, {"n": 2}]


async def test_subscription_follows_a_changing_set_of_channels(broker) -> None:
    queue: asyncio.Queue[Event] = asyncio.Queue()
    subscription = broker.subscription(queue.put_nowait)
    try:
        await subscription.add("user:1", "user:2")
        first = await broker.publish("user:1", {"to": 1})
        await broker.publish("user:3", {"to": 3})
        await broker.publish("user:2", {"to": 2, "text": "Huế"})
        assert [(e.channel, e.data) for e in (await _next(queue), await _next(queue))] == [
            ("user:1", {"to": 1}), ("user:2", {"to": 2, "text": "Huế"})]
        subscription.remove("user:1")
        await subscription.add("user:3")
        await broker.publish("user:1", {"to": 1})
        last = await broker.publish("user:3", {"to": 3})
        event = await _next(queue)
        assert (event.channel, event.id) == ("user:3", last) and parse_id(last) > parse_id(first)
        assert queue.empty()
    finally:
        await subscription.close()


async def test_history_after_a_cursor(broker) -> None:
    ids = [await broker.publish("user:7", {"n": n}) for n in range(4)]
    history = await broker.history("user:7", ids[1])
    assert history.complete and [e.data["n"] for e in history.events] == [2, 3]
    assert [e.id for e in history.events] == ids[2:]
    latest = await broker.history("user:7", ids[-1])
    assert latest.complete and latest.events == []
    with pytest.raises(ValueError):
        await broker.history("user:7", "not-an-id")


async def test_history_that_no_longer_reaches_the_cursor_is_incomplete(broker) -> None:
    # Redis trims with MAXLEN ~ (whole nodes of 100 entries), so publish well past a node.
    count = 250 if isinstance(broker, RedisBroker) else 12
    ids = [await broker.publish("feed", {"n": n}) for n in range(count)]
    history = await broker.history("feed", ids[0])
    assert not history.complete
    assert history.events and history.events[-1].id == ids[-1] and len(history.events) <= 5
    assert [e.data["n"] for e in history.events] == list(range(count - len(history.events), count))
    nothing = await broker.history("never-used", ids[0])
    # In-process knows nothing was published there since it started; Redis cannot tell a stream that
    # never existed from one that expired or was lost, so it does not promise anything.
    assert nothing.events == [] and nothing.complete is isinstance(broker, InProcessBroker)


async def test_in_process_history_forgets_least_recent_channels_honestly() -> None:
    broker = InProcessBroker(history_size=3, history_channels=2)
    seen = await broker.publish("user:1", {"n": 1})
    missed = await broker.publish("user:1", {"n": 2})
    await broker.publish("user:2", {"n": 3})
    await broker.publish("user:3", {"n": 4})  # user:1's history is forgotten
    forgotten = await broker.history("user:1", seen)
    assert forgotten.events == [] and not forgotten.complete
    assert (await broker.history("user:1", missed)).complete  # that client had seen everything
    before_start = await broker.history("user:2", "1-0")
    assert not before_start.complete


async def test_brokers_on_other_redis_databases_do_not_hear_each_other(redis_url) -> None:
    """Pub/sub channels are server-wide: the database number keeps two deployments' live events apart."""
    base, _, number = redis_url.rpartition("/")
    other = f"{base}/{(int(number or 0) + 8) % 16}"  # past the numbers parallel test workers take
    here, there = RedisBroker(redis_url), RedisBroker(other)
    try:
        assert here.prefix != there.prefix
        async with here.subscribe("city") as mine, there.subscribe("city") as theirs:
            await there.publish("city", {"from": "there"})
            await here.publish("city", {"from": "here"})
            assert (await asyncio.wait_for(anext(mine), 5))["from"] == "here"
            assert (await asyncio.wait_for(anext(theirs), 5))["from"] == "there"
    finally:
        for broker in (here, there):
            await broker._redis.delete(broker.stream_key("city"))
            await broker.close()


async def test_redis_ids_work_as_cursors_on_another_worker(redis_url) -> None:
    prefix = f"test:{uuid.uuid4().hex[:8]}:"
    one, two = RedisBroker(redis_url, prefix=prefix), RedisBroker(redis_url, prefix=prefix)
    try:
        ids = [await one.publish("user:9", {"n": n}) for n in range(3)]
        history = await two.history("user:9", ids[0])
        assert history.complete and [e.id for e in history.events] == ids[1:]
        ttl = await two._redis.ttl(two.stream_key("user:9"))
        assert 0 < ttl <= 86_400
    finally:
        await one._redis.delete(one.stream_key("user:9"))
        await one.close()
        await two.close()


async def test_redis_restart_subscriptions_recover_by_themselves(private_redis: PrivateRedis) -> None:
    subscriber, publisher = RedisBroker(private_redis.url), RedisBroker(private_redis.url)
    queue: asyncio.Queue[Event] = asyncio.Queue()
    subscription = subscriber.subscription(queue.put_nowait)
    try:
        async with subscriber.subscribe("auth:invalidate") as legacy:
            await subscription.add("feed")
            await publisher.publish("feed", {"n": 1})
            assert (await _next(queue)).data == {"n": 1}

            await asyncio.to_thread(private_redis.restart)
            # Publish until Redis answers again; each accepted message must arrive exactly once.
            published = []
            deadline = time.monotonic() + 15
            while len(published) < 3:
                assert time.monotonic() < deadline, "Redis did not come back"
                try:
                    await publisher.publish("feed", {"n": 2 + len(published)})
                    published.append(2 + len(published))
                except Exception:
                    await asyncio.sleep(0.1)
            got = [(await _next(queue, 10)).data["n"] for _ in published]
            assert got == published
            assert subscription.reconnects >= 1
            await asyncio.sleep(0.2)
            assert queue.empty()

            await publisher.publish("auth:invalidate", {"user_id": 5})  # the identity listener's path too
            assert await asyncio.wait_for(legacy.__anext__(), 10) == {"user_id": 5}
    finally:
        await subscription.close()
        await subscriber.close()
        await publisher.close()


async def test_redis_down_at_first_then_up(private_redis: PrivateRedis) -> None:
    private_redis.stop()
    broker = RedisBroker(private_redis.url)
    queue: asyncio.Queue[Event] = asyncio.Queue()
    subscription = broker.subscription(queue.put_nowait)
    try:
        pending = subscription.add("user:1")
        await asyncio.sleep(0.3)
        assert not pending.done()
        with pytest.raises(redis.exceptions.ConnectionError):
            await broker.ping()
        await asyncio.to_thread(private_redis.start)
        await asyncio.wait_for(pending, 10)
        await broker.publish("user:1", {"hello": "again"})
        assert (await _next(queue)).data == {"hello": "again"}
    finally:
        await subscription.close()
        await broker.close()
