"""The durable push outbox and its delivery worker.

A notification is committed together with its ``push_outbox`` rows (a ``plan`` row, one row per
FCM topic, one per topic (un)subscription), so a crash after the commit loses nothing: the rows wait
in the database until a worker takes them. A worker that takes a ``plan`` row finds the devices of
the notification's audience and writes ``devices`` rows of at most 500 devices (``push.planner``);
those are sent like any other row, by whichever worker claims them, so more workers (in any number of
processes) deliver a large notice sooner.

**Claiming.** A worker lists due rows (``pending``, ``next_attempt_at`` passed, no live lease) and
takes each with a conditional ``UPDATE ... WHERE id = :id AND status = 'pending' AND (lease_until
IS NULL OR lease_until < :now)``; the row count says whether it won. On PostgreSQL a second
worker's UPDATE waits for the first to commit and then no longer matches; on SQLite writes are
serialised. So any number of workers, in any number of processes or machines, never hold one row
at the same time. The holder renews its lease while it sends; a worker that dies loses it when it
expires (``SUPERAPP_PUSH_LEASE_SECONDS``) and another worker takes the row over.

**At least once, not exactly once.** FCM has no idempotency key. A worker that dies after FCM
accepted a batch but before it recorded the row as sent leaves the row pending, and the next worker
sends that batch again. Duplicates are therefore possible, but only for the rows that were in
flight when a worker died (at most ``SUPERAPP_PUSH_BATCH_SIZE`` rows of 500 tokens per dead
worker), and every message carries the notification id so the app shows each notification once.
Nothing accepted is ever lost, and live workers never send one row twice.

**Retries.** Per token: unregistered and sender-mismatch tokens deactivate their device; 429 and
5xx (after the SDK's own retries of 500/503) are retried from the outbox: the row keeps only the
tokens still to send and is due again after ``max(Retry-After, exponential backoff with jitter)``,
so the worker never sleeps on a lease. After ``SUPERAPP_PUSH_MAX_ATTEMPTS`` the row is ``dead``
with ``last_error`` (operators can read and requeue it). Messages FCM rejects for good (invalid
argument) are not retried: a row is ``dead`` when nothing in it could be delivered, else ``sent``
with the rejections in ``last_error``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import random
import signal
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fastapi import FastAPI
from prometheus_client import Counter
from sqlalchemy import or_, select, update
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.feed.models import Severity
from core.identity.models import utcnow
from push.fcm import MAX_BATCH, MAX_TOPIC_BATCH, Sender, TokenResult, sender_from_settings
from push.models import Device, OutboxKind, OutboxStatus, PushOutbox
from push.planner import LeaseLost
from push.planner import plan as plan_push

log = logging.getLogger(__name__)
PUSH_MESSAGES = Counter("superapp_push_messages", "Push messages and subscriptions by outcome", ["kind", "outcome"])
PUSH_ROWS = Counter("superapp_push_outbox_rows", "Outbox rows processed by resulting status", ["kind", "status"])
DEACTIVATION_REASONS = {"unregistered": "unregistered", "sender_mismatch": "sender_id_mismatch"}


@dataclass(frozen=True)
class ClaimedRow:
    """An outbox row this worker holds the lease of."""

    id: int
    kind: OutboxKind
    payload: dict[str, Any]
    attempts: int
    notification_id: int | None


@dataclass
class Settlement:
    """What a send did to one row: its new state, and the devices to deactivate."""

    status: OutboxStatus
    attempts: int
    payload: dict[str, Any] | None = None  # replaced when only some tokens remain
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    deactivate: dict[str, str] = field(default_factory=dict)  # token -> reason


# --- Enqueueing (inside the caller's transaction) ---------------------------------------------------


def enqueue_tokens(db: Session, *, notification_id: int, severity: Severity | str, tokens: Sequence[str],
                   due: datetime | None = None) -> list[PushOutbox]:
    """Add rows sending notification ``notification_id`` to ``tokens`` (500 a row); the caller commits."""
    rows = [PushOutbox(kind=OutboxKind.tokens, notification_id=notification_id, next_attempt_at=due or utcnow(),
                       payload={"notification_id": notification_id, "severity": Severity(severity).value,
                                "tokens": list(tokens[start:start + MAX_BATCH])})
            for start in range(0, len(tokens), MAX_BATCH)]
    db.add_all(rows)
    return rows


def enqueue_topic(db: Session, *, notification_id: int, severity: Severity | str, topic: str) -> PushOutbox:
    """Add a row sending notification ``notification_id`` to an FCM topic; the caller commits."""
    row = PushOutbox(kind=OutboxKind.topic, notification_id=notification_id,
                     payload={"notification_id": notification_id, "severity": Severity(severity).value,
                              "topic": topic})
    db.add(row)
    return row


def enqueue_subscription(db: Session, *, topic: str, tokens: Sequence[str], subscribe: bool = True) -> list[PushOutbox]:
    """Add rows (un)subscribing ``tokens`` to ``topic`` (1000 a row); the caller commits."""
    kind = OutboxKind.subscribe if subscribe else OutboxKind.unsubscribe
    rows = [PushOutbox(kind=kind, payload={"topic": topic, "tokens": list(tokens[start:start + MAX_TOPIC_BATCH])})
            for start in range(0, len(tokens), MAX_TOPIC_BATCH)]
    db.add_all(rows)
    return rows


# --- The worker -------------------------------------------------------------------------------------


def default_worker_id() -> str:
    """``host:pid:random``: unique per worker, readable in ``push_outbox.leased_by``."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class OutboxWorker:
    """Claims due outbox rows under a lease, sends them through a ``Sender`` and records the outcome."""

    def __init__(self, engine: Engine, sender: Sender, *, worker_id: str | None = None,
                 lease_seconds: float = 60.0, batch_size: int = 2, max_attempts: int = 10,
                 retry_base_seconds: float = 1.0, retry_max_seconds: float = 900.0, poll_seconds: float = 0.5,
                 clock: Callable[[], datetime] = utcnow, jitter: Callable[[], float] = random.random) -> None:
        self.engine = engine
        self.sender = sender
        self.worker_id = worker_id or default_worker_id()
        self.lease = timedelta(seconds=lease_seconds)
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.retry_base_seconds = retry_base_seconds
        self.retry_max_seconds = retry_max_seconds
        self.poll_seconds = poll_seconds
        self.clock = clock
        self._jitter = jitter
        self._held: set[int] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._stopping = False

    @classmethod
    def from_settings(cls, engine: Engine, sender: Sender, settings: Any, **overrides: Any) -> OutboxWorker:
        """A worker configured by the ``SUPERAPP_PUSH_*`` settings."""
        options: dict[str, Any] = {
            "lease_seconds": settings.push_lease_seconds, "batch_size": settings.push_batch_size,
            "max_attempts": settings.push_max_attempts, "retry_base_seconds": settings.push_retry_base_seconds,
            "retry_max_seconds": settings.push_retry_max_seconds, "poll_seconds": settings.push_poll_seconds,
        }
        options.update(overrides)
        return cls(engine, sender, **options)

    # -- waking and stopping (callable from any thread) ----------------------------------------------

    def wake(self) -> None:
        """Look for due rows now (call after committing outbox rows); safe from any thread."""
        loop, event = self._loop, self._event
        if loop is None or event is None:
            return  # not running: the first look at start-up finds the rows anyway
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(event.set)

    def stop(self) -> None:
        """Stop claiming; ``run`` returns once the rows in flight are recorded. Safe from any thread."""
        self._stopping = True
        self.wake()

    # -- claiming ------------------------------------------------------------------------------------

    def claim(self, limit: int) -> list[ClaimedRow]:
        """Lease up to ``limit`` due rows for this worker; a row another worker won is skipped."""
        if limit <= 0:
            return []
        now = self.clock()
        free = or_(PushOutbox.lease_until.is_(None), PushOutbox.lease_until < now)
        with self.engine.connect() as connection:
            candidates = connection.execute(
                select(PushOutbox.id)
                .where(PushOutbox.status == OutboxStatus.pending, PushOutbox.next_attempt_at <= now, free)
                .order_by(PushOutbox.next_attempt_at, PushOutbox.id)
                .limit(limit * 4)  # some slack: another worker may win some of them
            ).scalars().all()
        won: list[int] = []
        for row_id in candidates:
            # One short transaction per row: no lock is held across rows, so workers cannot deadlock.
            with self.engine.begin() as connection:
                result = connection.execute(
                    update(PushOutbox)
                    .where(PushOutbox.id == row_id, PushOutbox.status == OutboxStatus.pending, free)
                    .values(leased_by=self.worker_id, lease_until=now + self.lease)
                )
            if result.rowcount == 1:
                won.append(row_id)
                if len(won) == limit:
                    break
        if not won:
            return []
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(PushOutbox.id, PushOutbox.kind, PushOutbox.payload, PushOutbox.attempts,
                       PushOutbox.notification_id)
                .where(PushOutbox.id.in_(won), PushOutbox.leased_by == self.worker_id)
                .order_by(PushOutbox.id)
            ).all()
        claimed = [ClaimedRow(id=r.id, kind=OutboxKind(r.kind), payload=dict(r.payload or {}), attempts=r.attempts,
                              notification_id=r.notification_id) for r in rows]
        self._held.update(row.id for row in claimed)
        return claimed

    def renew_leases(self) -> int:
        """Extend the lease of every row this worker is sending; returns how many it still holds."""
        held = list(self._held)
        if not held:
            return 0
        with self.engine.begin() as connection:
            result = connection.execute(
                update(PushOutbox)
                .where(PushOutbox.id.in_(held), PushOutbox.leased_by == self.worker_id,
                       PushOutbox.status == OutboxStatus.pending)
                .values(lease_until=self.clock() + self.lease)
            )
        return result.rowcount

    def release_leases(self) -> None:
        """Give back the rows this worker holds (at shutdown), so another worker can send them at once."""
        held = list(self._held)
        if not held:
            return
        with self.engine.begin() as connection:
            connection.execute(
                update(PushOutbox)
                .where(PushOutbox.id.in_(held), PushOutbox.leased_by == self.worker_id,
                       PushOutbox.status == OutboxStatus.pending)
                .values(leased_by=None, lease_until=None)
            )
        self._held.clear()

    # -- sending -------------------------------------------------------------------------------------

    async def process(self, row: ClaimedRow) -> Settlement:
        """Send one claimed row and record the outcome (device deactivations in the same transaction)."""
        try:
            settlement = await self._deliver(row)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a sender or payload bug must not kill the loop; the row is retried
            log.exception("push outbox row %s failed", row.id)
            settlement = self._settle(row, [TokenResult("*", "retry", error="worker error")], retry_payload=None)
            settlement.last_error = f"{settlement.last_error}: {type(exc).__name__}: {exc}"[:500]
        try:
            await asyncio.to_thread(self._record, row, settlement)
        finally:
            self._held.discard(row.id)
        PUSH_ROWS.labels(row.kind.value, settlement.status.value).inc()
        return settlement

    async def _deliver(self, row: ClaimedRow) -> Settlement:
        payload = row.payload
        kind = row.kind
        if kind is OutboxKind.plan:
            return await asyncio.to_thread(self._plan, row)
        if kind is OutboxKind.devices:
            return await self._deliver_devices(row)
        if kind in (OutboxKind.tokens, OutboxKind.subscribe, OutboxKind.unsubscribe):
            tokens = [str(t) for t in payload.get("tokens") or ()]
            if not tokens:
                return Settlement(OutboxStatus.sent, row.attempts)
            if kind is OutboxKind.tokens:
                results = await self.sender.send_to_tokens(
                    tokens, notification_id=int(payload.get("notification_id", row.notification_id)),
                    severity=payload.get("severity", Severity.info), kind=payload.get("kind", "notification"),
                    collapse_key=payload.get("collapse_key"))
            elif kind is OutboxKind.subscribe:
                results = await self.sender.subscribe(tokens, payload["topic"])
            else:
                results = await self.sender.unsubscribe(tokens, payload["topic"])
            return self._settle(row, results, retry_payload=lambda remaining: {**payload, "tokens": remaining})
        if kind is OutboxKind.topic:
            result = await self.sender.send_to_topic(
                payload["topic"], notification_id=int(payload.get("notification_id", row.notification_id)),
                severity=payload.get("severity", Severity.info), kind=payload.get("kind", "notification"),
                collapse_key=payload.get("collapse_key"))
            return self._settle(row, [result], retry_payload=None)
        raise ValueError(f"unknown outbox kind {kind!r}")

    def _plan(self, row: ClaimedRow) -> Settlement:
        """Plan a notification's push (blocking: runs in a thread); the plan row is done when it is."""
        try:
            progress = plan_push(self.engine, row_id=row.id, notification_id=int(row.notification_id or 0),
                                 payload=row.payload, worker_id=self.worker_id, clock=self.clock, wake=self.wake)
        except LeaseLost:
            log.warning("push plan %s: lease lost to another worker, which resumes it", row.id)
            return Settlement(OutboxStatus.pending, row.attempts)  # not recorded: the row is no longer ours
        return Settlement(OutboxStatus.sent, row.attempts + 1, payload={**row.payload, "progress": progress.as_dict()})

    async def _deliver_devices(self, row: ClaimedRow) -> Settlement:
        """Look the devices' current tokens up (bounded: at most 500) and send to them."""
        wanted = [int(d) for d in row.payload.get("devices") or ()]
        tokens = await asyncio.to_thread(self._tokens_of, wanted)
        if not tokens:
            return Settlement(OutboxStatus.sent, row.attempts + 1)  # every device left meanwhile
        device_of = {token: device_id for device_id, token in tokens}
        results = await self.sender.send_to_tokens(
            list(device_of), notification_id=int(row.payload.get("notification_id", row.notification_id)),
            severity=row.payload.get("severity", Severity.info), kind=row.payload.get("kind", "notification"),
            collapse_key=row.payload.get("collapse_key"))
        return self._settle(row, results, retry_payload=lambda remaining: {
            **row.payload, "devices": [device_of[t] for t in remaining if t in device_of]})

    def _tokens_of(self, device_ids: list[int]) -> list[tuple[int, str]]:
        if not device_ids:
            return []
        with self.engine.connect() as connection:
            return [(r.id, r.token) for r in connection.execute(
                select(Device.id, Device.token).where(Device.id.in_(device_ids[:MAX_BATCH]), Device.active))]

    def _settle(self, row: ClaimedRow, results: Sequence[TokenResult],
                retry_payload: Callable[[list[str]], dict[str, Any]] | None) -> Settlement:
        """Decide the row's next state from per-token results."""
        attempts = row.attempts + 1
        for outcome, count in collections.Counter(r.outcome for r in results).items():
            PUSH_MESSAGES.labels(row.kind.value, outcome).inc(count)
        retry = [r for r in results if r.outcome == "retry"]
        invalid = [r for r in results if r.outcome == "invalid"]
        deactivate = {r.token: DEACTIVATION_REASONS[r.outcome] for r in results if r.outcome in DEACTIVATION_REASONS}
        rejected = f"{len(invalid)} rejected ({_summary(invalid)})" if invalid else None
        if retry:
            payload = retry_payload([r.token for r in retry]) if retry_payload else None
            failing = f"{len(retry)} failing ({_summary(retry)})"
            if attempts >= self.max_attempts:
                error = f"gave up after {attempts} attempts: {failing}" + (f"; {rejected}" if rejected else "")
                return Settlement(OutboxStatus.dead, attempts, payload, last_error=error[:500], deactivate=deactivate)
            retry_after = max((r.retry_after or 0.0 for r in retry), default=0.0)
            delay = self.retry_delay(attempts, retry_after)
            error = f"attempt {attempts}: {failing}; retry in {delay:.1f}s" + (f"; {rejected}" if rejected else "")
            due = self.clock() + timedelta(seconds=delay)
            return Settlement(OutboxStatus.pending, attempts, payload, next_attempt_at=due, last_error=error[:500],
                              deactivate=deactivate)
        if invalid and len(invalid) == len(results):
            return Settlement(OutboxStatus.dead, attempts, last_error=f"nothing delivered: {rejected}"[:500],
                              deactivate=deactivate)
        return Settlement(OutboxStatus.sent, attempts, last_error=rejected[:500] if rejected else None,
                          deactivate=deactivate)

    def retry_delay(self, attempts: int, retry_after: float = 0.0) -> float:
        """Seconds before attempt ``attempts + 1``: exponential backoff, half jittered, never before Retry-After."""
        backoff = min(self.retry_max_seconds, self.retry_base_seconds * 2 ** (attempts - 1))
        return max(retry_after, backoff * (0.5 + 0.5 * self._jitter()))

    def _record(self, row: ClaimedRow, settlement: Settlement) -> None:
        now = self.clock()
        values: dict[str, Any] = {"status": settlement.status, "attempts": settlement.attempts,
                                  "leased_by": None, "lease_until": None, "last_error": settlement.last_error}
        if settlement.status is OutboxStatus.sent:
            values["sent_at"] = now
        if settlement.payload is not None:
            values["payload"] = settlement.payload
        if settlement.next_attempt_at is not None:
            values["next_attempt_at"] = settlement.next_attempt_at
        with self.engine.begin() as connection:
            by_reason: dict[str, list[str]] = {}
            for token, reason in settlement.deactivate.items():
                by_reason.setdefault(reason, []).append(token)
            for reason, tokens in by_reason.items():
                for start in range(0, len(tokens), MAX_BATCH):
                    connection.execute(
                        update(Device).where(Device.token.in_(tokens[start:start + MAX_BATCH]), Device.active)
                        .values(active=False, deactivated_reason=reason))
            result = connection.execute(
                update(PushOutbox)
                .where(PushOutbox.id == row.id, PushOutbox.leased_by == self.worker_id,
                       PushOutbox.status == OutboxStatus.pending)
                .values(**values))
        if result.rowcount != 1:
            # Our lease expired while we were sending and another worker took the row over: it
            # will send (and record) it again. Rare; it means the lease is too short for FCM's pace.
            log.warning("push outbox row %s: lease lost to another worker before recording it as %s",
                        row.id, settlement.status.value)
        if settlement.deactivate:
            log.info("deactivated %d device(s) FCM no longer accepts", len(settlement.deactivate))

    # -- loops ---------------------------------------------------------------------------------------

    async def drain(self) -> int:
        """Send everything due now, ``batch_size`` rows at a time; returns how many rows were processed."""
        processed = 0
        async with self._heartbeat():
            while True:
                rows = await asyncio.to_thread(self.claim, self.batch_size)
                if not rows:
                    return processed
                await asyncio.gather(*(self.process(row) for row in rows))
                processed += len(rows)

    async def run(self) -> None:
        """Deliver until cancelled (leases given back) or stopped (rows in flight finished first)."""
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        in_flight: set[asyncio.Task[Settlement]] = set()
        claiming: asyncio.Future[list[ClaimedRow]] | None = None
        log.info("push outbox worker %s started (%s)", self.worker_id, type(self.sender).__name__)
        try:
            async with self._heartbeat():
                while not self._stopping:
                    self._event.clear()  # before claiming, so a wake() during the claim is not lost
                    free = self.batch_size - len(in_flight)
                    claimed: list[ClaimedRow] = []
                    if free > 0:
                        try:
                            # Shielded: cancelled mid-claim (shutdown), the claim still finishes in its
                            # thread, and ``finally`` waits for it so its rows are given back, not left leased.
                            claiming = asyncio.ensure_future(asyncio.to_thread(self.claim, free))
                            claimed = await asyncio.shield(claiming)
                        except Exception:  # the database may be briefly away: try again at the next tick
                            log.exception("push outbox: claiming failed")
                        for row in claimed:
                            in_flight.add(asyncio.create_task(self.process(row), name=f"push-outbox-{row.id}"))
                    if claimed and len(claimed) == free:
                        # Everything free is busy now; go on as soon as one row is done.
                        await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    elif not claimed or free <= 0:
                        waiter = asyncio.create_task(self._event.wait())
                        try:
                            await asyncio.wait({waiter, *in_flight}, timeout=self.poll_seconds,
                                               return_when=asyncio.FIRST_COMPLETED)
                        finally:
                            waiter.cancel()
                    in_flight = {task for task in in_flight if not _finished(task)}
                if in_flight:
                    await asyncio.wait(in_flight)
                    in_flight = {task for task in in_flight if not _finished(task)}
        finally:
            if claiming is not None and not claiming.done():
                with contextlib.suppress(Exception):
                    await asyncio.wait({claiming})
            for task in in_flight:
                task.cancel()
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)
            try:
                self.release_leases()  # blocking but short; the process is shutting down
            except Exception:
                log.exception("push outbox: could not give back leases (they expire by themselves)")
            self._loop = self._event = None
            log.info("push outbox worker %s stopped", self.worker_id)

    @contextlib.asynccontextmanager
    async def _heartbeat(self) -> Any:
        """Renew the held leases every third of the lease while the block runs."""

        async def beat() -> None:
            interval = max(self.lease.total_seconds() / 3, 0.05)
            while True:
                await asyncio.sleep(interval)
                try:
                    await asyncio.to_thread(self.renew_leases)
                except Exception:
                    log.exception("push outbox: could not renew leases")

        task = asyncio.create_task(beat(), name="push-outbox-heartbeat")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _finished(task: asyncio.Task[Any]) -> bool:
    """True when ``task`` is done; its failure (already logged by ``process``) is consumed."""
    if not task.done():
        return False
    if not task.cancelled() and task.exception() is not None:
        log.error("push outbox task failed", exc_info=task.exception())
    return True


def _summary(results: Iterable[TokenResult]) -> str:
    counts: dict[str, int] = {}
    for result in results:
        key = (result.error or result.outcome).split(":")[0]
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{name} x{count}" for name, count in sorted(counts.items()))


# --- Wiring -------------------------------------------------------------------------------------------


def install(app: FastAPI) -> list[Callable[[], Awaitable[None]]]:
    """Attach the sender (``app.state.fcm``) and, when enabled, the worker (``app.state.outbox_worker``)."""
    settings = app.state.settings
    sender = sender_from_settings(settings)
    app.state.fcm = sender
    worker: OutboxWorker | None = None
    if settings.push_worker_enabled:
        worker = OutboxWorker.from_settings(app.state.engine, sender, settings)
        app.state.outbox_worker = worker

    async def deliver() -> None:
        try:
            if worker is not None:
                await worker.run()
            else:
                await asyncio.Event().wait()  # only to close the sender at shutdown
        finally:
            await sender.aclose()

    return [deliver]


async def run_standalone(engine: Engine, settings: Any, *, once: bool = False, **overrides: Any) -> int:
    """``superapp push worker``: run one worker until SIGTERM/SIGINT (or, with ``once``, until idle)."""
    sender = sender_from_settings(settings)
    worker = OutboxWorker.from_settings(engine, sender, settings, **overrides)
    try:
        if once:
            return await worker.drain()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, worker.stop)
        await worker.run()
        return 0
    finally:
        await sender.aclose()


__all__ = [
    "ClaimedRow", "OutboxWorker", "Settlement", "enqueue_subscription", "enqueue_tokens", "enqueue_topic", "install",
    "run_standalone",
]
