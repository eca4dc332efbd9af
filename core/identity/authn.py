"""Authentication of each request: bearer token or session cookie, verified, caller loaded and cached."""

from __future__ import annotations

import asyncio
import logging
import time
from threading import Lock
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.errors import Problem
from core.identity.principal import ANONYMOUS, Principal
from core.identity.service import load_principal
from core.identity.tokens import TokenError, read_access_token

log = logging.getLogger(__name__)
SESSION_COOKIE = "superapp_session"
INVALIDATION_CHANNEL = "auth:invalidate"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _unauthorized(reason: str) -> Problem:
    return Problem(401, reason, title="Unauthorized", type="/problems/invalid-token",
                   headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{reason}"'})


class Authenticator:
    """Turns a request's credentials into a Principal.

    Verified callers are cached for a few seconds per (user, session) so the hot path is a signature
    check and a dictionary look-up; every revocation and role change is broadcast on the broker so
    all workers drop the cached caller at once.
    """

    def __init__(self, *, engine: Engine, secret: str, cache_seconds: float, broker: Any,
                 trusted_origins: list[str]) -> None:
        self._engine = engine
        self._secret = secret
        self._ttl = cache_seconds
        self._broker = broker
        self._trusted = {o.rstrip("/") for o in trusted_origins}
        self._cache: dict[tuple[int, str], tuple[float, Principal]] = {}
        self._lock = Lock()

    def authenticate(self, request: Request) -> Principal:
        """The caller of ``request``; anonymous without credentials, 401 for bad ones."""
        header = request.headers.get("authorization")
        from_cookie = False
        if header:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise _unauthorized("Authorization header must be 'Bearer <token>'")
            token = token.strip()
        else:
            token = request.cookies.get(SESSION_COOKIE, "")
            if not token:
                return ANONYMOUS
            from_cookie = True
        try:
            claims = read_access_token(token, secret=self._secret)
        except TokenError as exc:
            raise _unauthorized(str(exc)) from None
        if from_cookie and request.method not in SAFE_METHODS:
            self._check_origin(request)
        principal = self._cached(claims.user_id, claims.session_id)
        if principal is None:
            raise _unauthorized("this session was signed out or the account changed; sign in again")
        return principal

    def _cached(self, user_id: int, session_id: str) -> Principal | None:
        key = (user_id, session_id)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        with Session(self._engine) as db:
            principal = load_principal(db, user_id=user_id, session_id=session_id)
        if principal is not None and self._ttl > 0:
            with self._lock:
                if len(self._cache) > 50_000:  # bound memory under a flood of distinct sessions
                    self._cache.clear()
                self._cache[key] = (now + self._ttl, principal)
        return principal

    def _check_origin(self, request: Request) -> None:
        """Cookie-authenticated writes must come from our own pages (cross-site request forgery)."""
        origin = request.headers.get("origin") or _origin_of(request.headers.get("referer"))
        own = f"{request.url.scheme}://{request.url.netloc}"
        if origin is None or (origin.rstrip("/") != own and origin.rstrip("/") not in self._trusted):
            raise Problem(403, "cross-site request refused: send the Origin of this site or use a bearer token",
                          type="/problems/cross-site")

    def forget(self, user_id: int) -> None:
        """Drop every cached session of ``user_id`` in this worker."""
        with self._lock:
            for key in [k for k in self._cache if k[0] == user_id]:
                del self._cache[key]

    async def invalidate(self, user_id: int) -> None:
        """Drop ``user_id``'s cached sessions in every worker (through the broker)."""
        self.forget(user_id)
        try:
            await self._broker.publish(INVALIDATION_CHANNEL, {"user_id": user_id})
        except Exception:  # the cache TTL still bounds how long another worker may lag
            log.exception("could not broadcast an auth invalidation")

    async def listen(self) -> None:
        """Apply invalidations broadcast by other workers until cancelled."""
        while True:
            try:
                async with self._broker.subscribe(INVALIDATION_CHANNEL) as messages:
                    async for message in messages:
                        self.forget(int(message["user_id"]))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("auth invalidation listener failed; retrying")
                await asyncio.sleep(1)


def _origin_of(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def client_address(request: Request) -> str:
    """The caller's address (uvicorn applies X-Forwarded-For from trusted proxies)."""
    return request.client.host if request.client else "unknown"
