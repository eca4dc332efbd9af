"""Signed webhooks to a web mini-app's backend: a resident revoked a scope.

The body is a JWT (``application/jwt``) signed with the launch keys, so the backend verifies it against
/.well-known/jwks.json like a launch token. Delivery is best effort: a few tries from a background thread,
then a warning in the log; there is no durable outbox for webhooks yet (docs/webapps.md says so).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from typing import Any

import httpx

log = logging.getLogger(__name__)
TRIES = 3


def consent_revoked(state: Any, *, issuer: str, webapp_id: str, user_id: int, scope: str) -> threading.Thread | None:
    """Tell the mini-app's backend (if it registered a webhook) that a resident revoked ``scope``."""
    webapps = state.webapps
    live = webapps.live().get(webapp_id)
    if live is None or not live.manifest.webhook_url:
        return None
    now = int(time.time())
    token = webapps.keys.sign({"iss": issuer, "aud": webapp_id, "sub": webapps.keys.pairwise_id(user_id, webapp_id),
                               "iat": now, "exp": now + 3600, "jti": secrets.token_urlsafe(12),
                               "event": "consent.revoked", "scope": scope})
    thread = threading.Thread(target=_deliver, args=(live.manifest.webhook_url, token), daemon=True,
                              name=f"webhook-{webapp_id}")
    thread.start()
    return thread


def _deliver(url: str, token: str) -> None:
    for attempt in range(1, TRIES + 1):
        try:
            answer = httpx.post(url, content=token, headers={"Content-Type": "application/jwt"}, timeout=5)
            if answer.status_code < 300:
                return
            reason = f"HTTP {answer.status_code}"
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}"
        time.sleep(attempt)
    log.warning("webhook to %s not delivered after %d tries (%s)", url, TRIES, reason)
