"""Signed webhooks to a web mini-app's backend (a resident revoked a scope, or deleted their account), through
a durable outbox.

An event is a row of ``webapp_webhook`` written in the same transaction as what it reports, so it survives a
restart of the host and an outage of the backend. Delivery is tried at once (a background thread) and then by
the scheduled job ``core.webapps.webhooks`` every 30 seconds, with exponential backoff from 10 seconds to an
hour, for 20 attempts (about a day); a row is claimed before each attempt so two workers never post it at once.
The body is a JWT (``application/jwt``) signed with the launch keys at each attempt (five minutes long, the same
``jti`` every time, so the backend can drop a repeat), verified against /.well-known/jwks.json like a launch.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from datetime import datetime, timedelta
from typing import Any

import httpx
from prometheus_client import Counter
from sqlalchemy import delete, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from core.identity.models import utcnow
from core.webapps.models import WebAppSubject, WebAppWebhook
from core.webapps.tokens import KeyRing
from plugins.registry import ScheduledJob

log = logging.getLogger(__name__)
DELIVERIES = Counter("superapp_webapp_webhooks", "Web mini-app webhook attempts", ["outcome"])
JOB_ID = "core.webapps.webhooks"
JOB_EVERY = timedelta(seconds=30)
MAX_ATTEMPTS = 20
LEASE = timedelta(seconds=60)  # a claimed row is not tried by anyone else for this long
BATCH = 50
KEEP_DELIVERED = timedelta(days=7)
SIGNED_SECONDS = 300


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed try: 10 s doubling, at most an hour."""
    return timedelta(seconds=min(10 * 2 ** max(attempts - 1, 0), 3600))


def enqueue(db: Session, state: Any, *, issuer: str, webapp_id: str, user_id: int, event: str,
            **claims: Any) -> WebAppWebhook | None:
    """Queue ``event`` about ``user_id`` for the mini-app's backend (when it registered a webhook URL), in the
    caller's transaction; None when there is nowhere to send it."""
    webapps = state.webapps
    live = webapps.live().get(webapp_id)
    if live is None or not live.manifest.webhook_url:
        return None
    row = WebAppWebhook(webapp_id=webapp_id, event=event, url=live.manifest.webhook_url, claims={
        "iss": issuer, "aud": webapp_id, "sub": webapps.keys.pairwise_id(user_id, webapp_id),
        "jti": secrets.token_urlsafe(12), "event": event, "occurred_at": int(time.time()), **claims})
    db.add(row)
    return row


def consent_revoked(state: Any, *, issuer: str, webapp_id: str, user_id: int, scope: str) -> threading.Thread | None:
    """Queue and start delivering ``consent.revoked`` for a scope the resident withdrew."""
    with Session(state.engine) as db:
        row = enqueue(db, state, issuer=issuer, webapp_id=webapp_id, user_id=user_id, event="consent.revoked",
                      scope=scope)
        db.commit()
        ids = [row.id] if row is not None and row.id is not None else []
    return kick(state, ids)


def account_deleted(db: Session, state: Any, *, issuer: str, user_id: int) -> list[int]:
    """Queue ``account.deleted`` to every web mini-app the resident opened (in the caller's transaction, before
    the account and its pairwise ids go); returns the rows' ids for ``kick`` after the commit."""
    rows = []
    for webapp_id in db.exec(select(WebAppSubject.webapp_id).where(WebAppSubject.user_id == user_id)):
        row = enqueue(db, state, issuer=issuer, webapp_id=webapp_id, user_id=user_id, event="account.deleted")
        if row is not None:
            rows.append(row)
    db.flush()
    return [r.id for r in rows if r.id is not None]


def kick(state: Any, ids: list[int]) -> threading.Thread | None:
    """Try the given rows now, in a background thread (the scheduled job retries what fails)."""
    if not ids:
        return None
    thread = threading.Thread(target=deliver_due, args=(state.engine, state.webapps.keys), kwargs={"ids": ids},
                              daemon=True, name="webapp-webhooks")
    thread.start()
    return thread


def _claim(engine: Engine, row_id: int, now: datetime) -> WebAppWebhook | None:
    """Take one due row for an attempt (a conditional UPDATE: one worker wins), or None."""
    with Session(engine, expire_on_commit=False) as db:
        taken = db.execute(update(WebAppWebhook).where(
            WebAppWebhook.id == row_id, col(WebAppWebhook.delivered_at).is_(None),
            WebAppWebhook.attempts < MAX_ATTEMPTS, WebAppWebhook.next_attempt_at <= now)
            .values(next_attempt_at=now + LEASE, attempts=WebAppWebhook.attempts + 1))
        db.commit()
        return db.get(WebAppWebhook, row_id) if taken.rowcount == 1 else None


def _post(keys: KeyRing, row: WebAppWebhook) -> str | None:
    """One attempt; None when the backend accepted it (2xx), else why not."""
    now = int(time.time())
    token = keys.sign({**row.claims, "iat": now, "exp": now + SIGNED_SECONDS})
    try:
        answer = httpx.post(row.url, content=token, headers={"Content-Type": "application/jwt"}, timeout=5)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"[:300]
    return None if answer.status_code < 300 else f"HTTP {answer.status_code}"


def deliver_due(engine: Engine, keys: KeyRing, *, ids: list[int] | None = None, now: datetime | None = None) -> int:
    """Attempt every due webhook (or only ``ids``), BATCH at most; returns how many were delivered."""
    now = now or utcnow()
    with Session(engine) as db:
        query = select(WebAppWebhook.id).where(col(WebAppWebhook.delivered_at).is_(None),
                                               WebAppWebhook.attempts < MAX_ATTEMPTS,
                                               WebAppWebhook.next_attempt_at <= now)
        if ids is not None:
            query = query.where(col(WebAppWebhook.id).in_(ids))
        due = list(db.exec(query.order_by(WebAppWebhook.next_attempt_at).limit(BATCH)))
    delivered = 0
    for row_id in due:
        row = _claim(engine, row_id, now)
        if row is None:
            continue
        error = _post(keys, row)
        with Session(engine) as db:
            values: dict[str, Any] = {"delivered_at": utcnow(), "last_error": None} if error is None else {
                "next_attempt_at": utcnow() + backoff(row.attempts), "last_error": error}
            db.execute(update(WebAppWebhook).where(WebAppWebhook.id == row_id).values(**values))
            db.commit()
        if error is None:
            delivered += 1
            DELIVERIES.labels("delivered").inc()
        else:
            DELIVERIES.labels("failed").inc()
            if row.attempts >= MAX_ATTEMPTS:
                log.warning("webhook %s to %s given up after %d attempts (%s)", row.event, row.url, row.attempts,
                            error, extra={"webapp": row.webapp_id})
    return delivered


def purge_delivered(engine: Engine, *, now: datetime | None = None) -> int:
    """Delete rows delivered more than a week ago (a bounded batch at a time)."""
    cutoff = (now or utcnow()) - KEEP_DELIVERED
    with Session(engine) as db:
        old = list(db.exec(select(WebAppWebhook.id).where(col(WebAppWebhook.delivered_at) < cutoff).limit(5000)))
        if old:
            db.execute(delete(WebAppWebhook).where(col(WebAppWebhook.id).in_(old)))
            db.commit()
    return len(old)


def scheduled_jobs(state: Any) -> list[ScheduledJob]:
    """The outbox's delivery job, run by one worker every 30 seconds across all workers."""

    def run(host: Any) -> None:
        deliver_due(state.engine, state.webapps.keys)
        purge_delivered(state.engine)

    return [ScheduledJob(id=JOB_ID, run=run, every=JOB_EVERY, miniapp="core")]
