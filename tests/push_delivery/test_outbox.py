"""The outbox worker on SQLite and PostgreSQL, sending through firebase-admin to the fake FCM."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.feed.models import Severity
from plugins.fakes.firebase import FakeFcm, Http2Fcm
from push.fcm import FcmSender, LogSender
from push.models import OutboxKind, OutboxStatus, PushOutbox
from push.outbox import OutboxWorker, enqueue_subscription, enqueue_tokens, enqueue_topic
from tests.push_delivery.conftest import Clock, add_devices, add_notification, add_rows, devices, engine_for, outbox


def make_worker(engine: Engine, sender, clock: Clock, **options) -> OutboxWorker:
    """A worker with test-sized timings and no jitter (backoff is exactly base * 2^(n-1))."""
    values = {"worker_id": "worker-1", "lease_seconds": 30.0, "batch_size": 2, "max_attempts": 5,
              "retry_base_seconds": 1.0, "retry_max_seconds": 60.0, "poll_seconds": 0.05,
              "clock": clock, "jitter": lambda: 1.0}
    values.update(options)
    return OutboxWorker(engine, sender, **values)


async def test_notification_is_sent_in_rows_of_500(engine: Engine, fast_sender: FcmSender, fast_fcm: Http2Fcm,
                                                   clock: Clock) -> None:
    """1,200 tokens become three rows; the worker sends each token once and marks every row sent."""
    note = add_notification(engine, Severity.warning)
    tokens = [f"tok-{i:04d}" for i in range(1200)]
    with Session(engine) as db:
        rows = enqueue_tokens(db, notification_id=note, severity=Severity.warning, tokens=tokens)
        assert [len(r.payload["tokens"]) for r in rows] == [500, 500, 200]
        db.commit()

    assert await make_worker(engine, fast_sender, clock).drain() == 3

    assert fast_fcm.accepted_per_token() == {token: 1 for token in tokens}
    for row in outbox(engine):
        assert (row.status, row.attempts, row.leased_by, row.lease_until) == (OutboxStatus.sent, 1, None, None)
        assert row.sent_at is not None and row.last_error is None


async def test_dead_tokens_deactivate_their_devices(engine: Engine, sender: FcmSender, fcm: FakeFcm,
                                                    clock: Clock) -> None:
    """Unregistered and sender-mismatch tokens deactivate the device; the others stay active."""
    add_devices(engine, ["tok-ok", "tok-gone", "tok-foreign"])
    fcm.script("tok-gone", ["unregistered"])
    fcm.script("tok-foreign", ["sender_id_mismatch"])
    note = add_notification(engine)
    add_rows(engine, note, ["tok-ok", "tok-gone", "tok-foreign"])

    await make_worker(engine, sender, clock).drain()

    [row] = outbox(engine)
    assert row.status is OutboxStatus.sent and row.last_error is None
    found = devices(engine)
    assert (found["tok-ok"].active, found["tok-ok"].deactivated_reason) == (True, None)
    assert (found["tok-gone"].active, found["tok-gone"].deactivated_reason) == (False, "unregistered")
    assert (found["tok-foreign"].active, found["tok-foreign"].deactivated_reason) == (False, "sender_id_mismatch")


async def test_quota_is_retried_after_retry_after(engine: Engine, sender: FcmSender, fcm: FakeFcm,
                                                  clock: Clock) -> None:
    """429 with Retry-After: 2 -> only that token is kept, due no earlier than 2 s later; then delivered."""
    fcm.script("tok-busy", ["quota:2", "ok"])
    note = add_notification(engine)
    add_rows(engine, note, ["tok-ok", "tok-busy"])
    worker = make_worker(engine, sender, clock)

    before = clock()
    await worker.drain()
    [row] = outbox(engine)
    assert row.status is OutboxStatus.pending and row.attempts == 1
    assert row.payload["tokens"] == ["tok-busy"] and row.payload["notification_id"] == note
    assert (row.leased_by, row.lease_until) == (None, None)
    # Backoff alone would be 1 s at the first retry; FCM asked for 2.
    assert row.next_attempt_at >= before + timedelta(seconds=2)
    assert row.next_attempt_at <= clock() + timedelta(seconds=2)
    assert "QuotaExceededError x1" in row.last_error

    assert await worker.drain() == 0  # not due yet
    clock.advance(2.01)
    assert await worker.drain() == 1
    [row] = outbox(engine)
    assert (row.status, row.attempts) == (OutboxStatus.sent, 2)
    assert [r.outcome for r in fcm.requests_for(token="tok-busy")] == ["quota", "ok"]
    assert len(fcm.requests_for(token="tok-ok")) == 1


async def test_unavailable_then_ok(engine: Engine, sender: FcmSender, fcm: FakeFcm, clock: Clock) -> None:
    """A transient 503 is absorbed by the SDK's own retry; a lasting one waits for FCM's Retry-After."""
    fcm.script("tok-flaky", ["unavailable", "ok"])
    fcm.script("tok-down", ["unavailable:7"] * 5 + ["ok"])  # outlasts the SDK's 1 + 4 tries once
    note = add_notification(engine)
    add_rows(engine, note, ["tok-flaky", "tok-down"])
    worker = make_worker(engine, sender, clock)

    before = clock()
    await worker.drain()
    [row] = outbox(engine)
    assert row.payload["tokens"] == ["tok-down"] and row.status is OutboxStatus.pending
    assert row.next_attempt_at >= before + timedelta(seconds=7)
    clock.advance(7.01)
    await worker.drain()
    assert outbox(engine)[0].status is OutboxStatus.sent
    assert fcm.accepted_per_token() == {"tok-flaky": 1, "tok-down": 1}


async def test_backoff_grows_and_the_row_dies(engine: Engine, sender: FcmSender, fcm: FakeFcm,
                                              clock: Clock) -> None:
    """A token failing with 500 every time: 1 s, 2 s, 4 s between attempts, dead after the last."""
    fcm.script("tok-broken", ["internal"])
    note = add_notification(engine)
    add_rows(engine, note, ["tok-ok", "tok-broken"])
    worker = make_worker(engine, sender, clock, max_attempts=4)

    gaps = []
    for attempt in range(1, 5):
        sent_at = clock()
        assert await worker.drain() == 1
        [row] = outbox(engine)
        assert row.attempts == attempt
        if attempt < 4:
            # The clock is real time plus an offset: the send takes a moment, never a whole second.
            gaps.append(int((row.next_attempt_at - sent_at).total_seconds()))
            clock.advance((row.next_attempt_at - clock()).total_seconds() + 0.01)
    assert gaps == [1, 2, 4]
    assert row.status is OutboxStatus.dead
    assert row.payload["tokens"] == ["tok-broken"]
    assert row.last_error.startswith("gave up after 4 attempts: 1 failing (InternalError x1)")
    assert len(fcm.requests_for(token="tok-broken")) == 4 * 5  # each attempt: 1 + the SDK's 4 retries
    assert len(fcm.requests_for(token="tok-ok")) == 1
    clock.advance(3600)
    assert await worker.drain() == 0  # dead rows stay dead


async def test_backoff_jitter_and_cap(sqlite_engine: Engine) -> None:
    """Half the backoff is jittered; the cap holds, but never below Retry-After."""
    low = OutboxWorker(sqlite_engine, LogSender(), retry_base_seconds=1, retry_max_seconds=60, jitter=lambda: 0.0)
    high = OutboxWorker(sqlite_engine, LogSender(), retry_base_seconds=1, retry_max_seconds=60, jitter=lambda: 1.0)
    assert [low.retry_delay(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert [high.retry_delay(n) for n in (1, 2, 3, 10)] == [1.0, 2.0, 4.0, 60.0]
    assert high.retry_delay(10, retry_after=120) == 120


async def test_permanent_rejection_is_not_retried(engine: Engine, sender: FcmSender, fcm: FakeFcm,
                                                  clock: Clock) -> None:
    """INVALID_ARGUMENT: a row with nothing deliverable is dead at once; a mixed row is sent, noted."""
    fcm.script("tok-bad", ["invalid_argument"])
    note = add_notification(engine)
    add_rows(engine, note, ["tok-bad"])
    add_rows(engine, note, ["tok-ok", "tok-bad"])
    add_devices(engine, ["tok-bad"])

    await make_worker(engine, sender, clock).drain()

    only_bad, mixed = outbox(engine)
    assert (only_bad.status, only_bad.attempts) == (OutboxStatus.dead, 1)
    assert only_bad.last_error.startswith("nothing delivered: 1 rejected (InvalidArgumentError x1)")
    assert (mixed.status, mixed.last_error) == (OutboxStatus.sent, "1 rejected (InvalidArgumentError x1)")
    assert devices(engine)["tok-bad"].active  # the message may be at fault, not the device
    assert len(fcm.requests_for(token="tok-bad")) == 2


async def test_topic_and_subscription_rows(engine: Engine, sender: FcmSender, fcm: FakeFcm,
                                           clock: Clock) -> None:
    """Topic rows send one message to the unit's topic; subscription rows (un)subscribe the tokens."""
    add_devices(engine, ["tok-1", "tok-2", "tok-gone"])
    fcm.script_subscription("tok-gone", ["unregistered"])
    note = add_notification(engine, Severity.critical)
    with Session(engine) as db:
        enqueue_subscription(db, topic="unit_phu-xuan", tokens=["tok-1", "tok-2", "tok-gone"])
        enqueue_subscription(db, topic="unit_phu-xuan", tokens=["tok-2"], subscribe=False)
        enqueue_topic(db, notification_id=note, severity=Severity.critical, topic="unit_phu-xuan")
        db.commit()

    await make_worker(engine, sender, clock, batch_size=1).drain()

    assert [(r.kind, r.status) for r in outbox(engine)] == [
        (OutboxKind.subscribe, OutboxStatus.sent), (OutboxKind.unsubscribe, OutboxStatus.sent),
        (OutboxKind.topic, OutboxStatus.sent)]
    assert fcm.subscriptions["unit_phu-xuan"] == {"tok-1"}
    assert devices(engine)["tok-gone"].deactivated_reason == "unregistered"
    [message] = fcm.requests_for(topic="unit_phu-xuan")
    assert message.data == {"notification_id": str(note), "kind": "notification"}
    assert message.android["priority"] == "high"


async def test_topic_quota_is_retried(engine: Engine, sender: FcmSender, fcm: FakeFcm, clock: Clock) -> None:
    """A topic message refused with 429 waits for Retry-After like a token."""
    fcm.script_topic("unit_hue", ["quota:3", "ok"])
    note = add_notification(engine, Severity.critical)
    with Session(engine) as db:
        enqueue_topic(db, notification_id=note, severity="critical", topic="unit_hue")
        db.commit()
    worker = make_worker(engine, sender, clock)
    before = clock()
    await worker.drain()
    [row] = outbox(engine)
    assert row.status is OutboxStatus.pending and row.next_attempt_at >= before + timedelta(seconds=3)
    clock.advance(3.01)
    await worker.drain()
    assert outbox(engine)[0].status is OutboxStatus.sent
    assert [r.outcome for r in fcm.requests_for(topic="unit_hue")] == ["quota", "ok"]


def test_claims_race_no_row_twice(database_url: str, clock: Clock) -> None:
    """Eight workers (each with its own engine and connections) claim at once: every row goes to one."""
    engines = [engine_for(database_url) for _ in range(8)]
    try:
        note = add_notification(engines[0])
        ids = set(add_rows(engines[0], note, [f"tok-{i}" for i in range(24)], per_row=1))
        workers = [make_worker(e, LogSender(), clock, worker_id=f"racer-{i}") for i, e in enumerate(engines)]
        start = threading.Barrier(len(workers))
        claimed: dict[str, list[int]] = {}

        def race(worker: OutboxWorker) -> None:
            start.wait()
            claimed[worker.worker_id] = [row.id for row in worker.claim(5)]

        threads = [threading.Thread(target=race, args=(w,)) for w in workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        everything = [row_id for rows in claimed.values() for row_id in rows]
        assert len(everything) == len(set(everything)) > 5  # several won rows, nobody won one twice
        holders = {row.id: row.leased_by for row in outbox(engines[0])}
        for worker_id, rows in claimed.items():
            assert all(holders[row_id] == worker_id for row_id in rows)
        # Rows nobody won (each worker looks at a few candidates only) are claimable; live leases are not.
        leftover = [row.id for row in workers[0].claim(100)]
        assert sorted(leftover) == sorted(ids - set(everything))
        assert workers[1].claim(100) == []
        clock.advance(31)
        assert len(workers[0].claim(100)) == len(ids)
    finally:
        for engine in engines:
            engine.dispose()


async def test_two_workers_never_send_a_notification_twice(database_url: str, fast_sender: FcmSender,
                                                           fast_fcm: Http2Fcm, clock: Clock) -> None:
    """Two workers drain the same outbox at the same time: each token gets exactly one message."""
    fast_fcm.default_outcome = "slow:0.02"
    first, second = engine_for(database_url), engine_for(database_url)
    try:
        note = add_notification(first)
        tokens = [f"tok-{i:04d}" for i in range(600)]
        add_rows(first, note, tokens, per_row=20)
        workers = [make_worker(first, fast_sender, clock, worker_id="a", batch_size=3),
                   make_worker(second, fast_sender, clock, worker_id="b", batch_size=3)]
        done = await asyncio.gather(*(w.drain() for w in workers))

        assert sum(done) == 30 and min(done) > 0  # both took part
        assert fast_fcm.accepted_per_token() == {token: 1 for token in tokens}
        assert fast_fcm.stats()["requests"] == 600
        assert {row.status for row in outbox(first)} == {OutboxStatus.sent}
    finally:
        first.dispose()
        second.dispose()


async def test_expired_lease_is_taken_over_and_the_late_worker_is_ignored(
        engine: Engine, sender: FcmSender, fcm: FakeFcm, clock: Clock) -> None:
    """A worker that stalls past its lease loses the row; its late outcome does not overwrite the new one."""
    note = add_notification(engine)
    add_rows(engine, note, ["tok-1"])
    stalled = make_worker(engine, sender, clock, worker_id="stalled", lease_seconds=5)
    rescuer = make_worker(engine, sender, clock, worker_id="rescuer", lease_seconds=5)
    [row] = stalled.claim(1)
    assert rescuer.claim(1) == []
    clock.advance(6)
    [taken] = rescuer.claim(1)
    await rescuer.process(taken)
    # The stalled worker finally sends and tries to record a failure: refused, the row stays sent.
    fcm.script("tok-1", ["invalid_argument"])
    await stalled.process(row)
    [after] = outbox(engine)
    assert (after.status, after.last_error) == (OutboxStatus.sent, None)
    assert fcm.accepted_per_token() == {"tok-1": 1}


async def test_lease_is_renewed_while_sending(engine: Engine, fast_sender: FcmSender, fast_fcm: Http2Fcm) -> None:
    """A send slower than the lease keeps its row: the heartbeat renews the lease."""
    fast_fcm.script("tok-slow", ["slow:1.0"])
    note = add_notification(engine)
    add_rows(engine, note, ["tok-slow"])
    owner = OutboxWorker(engine, fast_sender, worker_id="owner", lease_seconds=0.3, poll_seconds=0.05)
    rival = OutboxWorker(engine, fast_sender, worker_id="rival", lease_seconds=0.3)
    sending = asyncio.create_task(owner.drain())
    while outbox(engine)[0].leased_by != "owner":
        await asyncio.sleep(0.01)
    stolen = []
    while not sending.done():
        stolen += await asyncio.to_thread(rival.claim, 1)
        await asyncio.sleep(0.05)
    assert await sending == 1
    assert stolen == []
    assert outbox(engine)[0].status is OutboxStatus.sent
    assert fast_fcm.accepted_per_token() == {"tok-slow": 1}


async def test_run_wakes_at_once_and_stops_cleanly(sqlite_engine: Engine, clock: Clock) -> None:
    """run() with a long poll still sends as soon as wake() is called (from another thread)."""
    sender = LogSender()
    worker = make_worker(sqlite_engine, sender, clock, poll_seconds=30)
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0.2)  # its first look found nothing; now it sleeps for 30 s
    note = add_notification(sqlite_engine)
    add_rows(sqlite_engine, note, ["tok-1"])
    await asyncio.to_thread(worker.wake)
    for _ in range(100):
        if outbox(sqlite_engine)[0].status is OutboxStatus.sent:
            break
        await asyncio.sleep(0.02)
    assert outbox(sqlite_engine)[0].status is OutboxStatus.sent
    assert sender.sent[-1]["notification_id"] == note
    worker.stop()
    await asyncio.wait_for(task, 5)


async def test_cancelled_worker_gives_its_rows_back(engine: Engine, fast_sender: FcmSender,
                                                    fast_fcm: Http2Fcm) -> None:
    """Cancelled mid-send (server shutdown), the worker releases its lease instead of letting it run out."""
    fast_fcm.default_outcome = "slow:2"
    note = add_notification(engine)
    add_rows(engine, note, ["tok-1"])
    worker = OutboxWorker(engine, fast_sender, worker_id="leaving", lease_seconds=60, poll_seconds=0.05)
    task = asyncio.create_task(worker.run())
    for _ in range(100):
        if outbox(engine)[0].leased_by == "leaving":
            break
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [row] = outbox(engine)
    assert (row.status, row.leased_by, row.lease_until) == (OutboxStatus.pending, None, None)


async def test_a_broken_row_does_not_stop_the_worker(engine: Engine, clock: Clock) -> None:
    """A row the sender chokes on is retried later; the rows after it are still sent."""
    note = add_notification(engine)
    add_rows(engine, note, ["tok-1"])
    with Session(engine) as db:
        db.add(PushOutbox(kind=OutboxKind.topic, notification_id=note, payload={"topic": "not a topic!"}))
        db.commit()
    worker = make_worker(engine, LogSender(), clock)
    await worker.drain()
    good, broken = outbox(engine)
    assert good.status is OutboxStatus.sent
    assert broken.status is OutboxStatus.pending and "malformed FCM topic" in broken.last_error
    with Session(engine) as db:  # an operator can see and fix it
        db.execute(update(PushOutbox).where(PushOutbox.id == broken.id)
                   .values(payload={"topic": "unit_hue", "notification_id": note}))
        db.commit()
    clock.advance(2)
    await worker.drain()
    assert outbox(engine)[1].status is OutboxStatus.sent
