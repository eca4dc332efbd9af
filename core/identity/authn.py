"""Authentication of each request: bearer token or session cookie, verified, caller loaded and cached."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from threading import Lock
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from core.errors import Problem
from core.identity.principal import ANONYMOUS, Principal
from core.identity.service import load_principal
from core.identity.tokens import AccessClaims, TokenError, read_access_token

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
        # access token -> (monotonic deadline, caller). Keyed by the exact token, so a hit skips the
        # signature check too: the same bytes verified a moment ago verify the same way now.
        self._cache: dict[str, tuple[float, Principal]] = {}
        # Bumped on every invalidation of a user, so a load that raced with one is not cached.
        self._generations: dict[int, int] = {}
        self._lock = Lock()
        # Told the user id on every invalidation (here or from another worker): caches of what a
        # person may see, such as their inbox (push.inbox_cache), drop it too.
        self._on_forget: list[Callable[[int], None]] = []

    async def authenticate(self, request: HTTPConnection) -> Principal:
        """The caller of ``request``; anonymous without credentials, 401 for bad ones.

        Async so the common case (a cached caller) costs no thread hop; only a cache miss goes to
        the database, in the thread pool.
        """
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
        if from_cookie and request.scope.get("method", "GET") not in SAFE_METHODS:
            self._check_origin(request)
        return await self.principal_for_token(token, lenient=from_cookie)

    async def principal_for_token(self, token: str, *, lenient: bool = False) -> Principal:
        """The caller an access token stands for; 401 (or anonymous when ``lenient``) if it is not valid.

        Used by ``authenticate`` and by the WebSocket handshake, which may carry the token in a query
        parameter because browsers cannot set headers on a WebSocket.
        """
        from_cookie = lenient
        hit = self._cache.get(token)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        try:
            claims = read_access_token(token, secret=self._secret)
        except TokenError as exc:
            if from_cookie:
                return ANONYMOUS  # a stale browser cookie: the page offers sign-in again
            raise _unauthorized(str(exc)) from None
        principal = await run_in_threadpool(self._load, token, claims)
        if principal is None:
            if from_cookie:
                return ANONYMOUS
            raise _unauthorized("this session was signed out or the account changed; sign in again")
        return principal

    def token_expires_at(self, token: str) -> float | None:
        """When a valid access token expires (Unix seconds); None for one that is not valid now.

        Used by the WebSocket hub to close a socket when the token it was opened with expires.
        """
        try:
            return read_access_token(token, secret=self._secret).expires_at.timestamp()
        except TokenError:
            return None

    def _load(self, token: str, claims: AccessClaims) -> Principal | None:
        now = time.monotonic()
        generation = self._generations.get(claims.user_id, 0)
        with Session(self._engine) as db:
            principal = load_principal(db, user_id=claims.user_id, session_id=claims.session_id)
        if principal is not None and self._ttl > 0:
            # Never cache past the token's own expiry.
            lifetime = min(self._ttl, claims.expires_at.timestamp() - time.time())
            with self._lock:
                if self._generations.get(claims.user_id, 0) != generation:
                    return principal  # invalidated while we read: this answer may predate it
                if len(self._cache) > 50_000:  # bound memory under a flood of distinct tokens
                    self._cache.clear()
                self._cache[token] = (now + lifetime, principal)
        return principal

    def check_origin(self, request: HTTPConnection) -> None:
        """Refuse a request that does not come from this site's pages (a web sign-in sets our cookie)."""
        self._check_origin(request)

    def _check_origin(self, request: HTTPConnection) -> None:
        """Cookie-authenticated writes must come from our own pages (cross-site request forgery)."""
        origin = request.headers.get("origin") or _origin_of(request.headers.get("referer"))
        own = f"{request.url.scheme}://{request.url.netloc}"
        if origin is None or (origin.rstrip("/") != own and origin.rstrip("/") not in self._trusted):
            raise Problem(403, "cross-site request refused: send the Origin of this site or use a bearer token",
                          type="/problems/cross-site")

    def on_forget(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(user_id)`` whenever a user's sessions, roles or profile change (in any worker)."""
        self._on_forget.append(callback)

    def forget(self, user_id: int) -> None:
        """Drop every cached token of ``user_id`` in this worker."""
        with self._lock:
            self._generations[user_id] = self._generations.get(user_id, 0) + 1
            for token, (_, principal) in list(self._cache.items()):
                if principal.user_id == user_id:
                    del self._cache[token]
        for callback in self._on_forget:
            callback(user_id)

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


def client_address(request: HTTPConnection) -> str:
    """The caller's address (uvicorn applies X-Forwarded-For from trusted proxies)."""
    return request.client.host if request.client else "unknown"
