"""Remembered inbox answers served before routing: the app-open requests at the cost of a dictionary look-up.

Every open of the resident app asks for the unread badge and the first inbox page; at Hue's size
that is most of the API's traffic. ``push.inbox_cache`` already remembers both answers per person,
exactly invalidated; what a remembered answer still cost was FastAPI's request path around it (route
matching over some 200 routes and dependency solving: about 60% of a cached badge, profiled
in-process). ``RememberedInboxAnswers`` is an ASGI layer, innermost of the host's middleware (so
security headers, body limits and request ids apply as to every answer), that answers

- ``GET /api/inbox/badge`` and
- ``GET /api/inbox`` with no query or only ``limit=1..50`` (the first page),

when the caller authenticates from the authentication cache and the inbox cache holds the answer.
Anything else (no or bad credentials, other parameters, a cache miss, an error of any kind) goes on
to the routes unchanged, which answer as they always do and fill the cache for the next request.
The keys are the routes' own (``badge_key``, ``page_key``), so both always mean the same answer.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from core.i18n import negotiate
from core.limits import PRINCIPAL_KEY

BADGE_PATH = "/api/inbox/badge"
PAGE_PATH = "/api/inbox"
DEFAULT_LIMIT = 20
MAX_LIMIT = 50


def badge_key(user_id: int) -> tuple[str, int]:
    """The inbox cache key of a person's unread badge."""
    return ("badge", user_id)


def page_key(user_id: int, locale: str, limit: int) -> tuple[str, int, str, int]:
    """The inbox cache key of a person's first inbox page in ``locale`` with ``limit`` items."""
    return ("page", user_id, locale, limit)


def first_page_limit(query_string: bytes) -> int | None:
    """The ``limit`` of a first-page query (none, or only ``limit=1..50``); None for any other query."""
    if not query_string:
        return DEFAULT_LIMIT
    try:
        pairs = parse_qsl(query_string.decode("ascii"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return None
    if len(pairs) != 1 or pairs[0][0] != "limit" or not pairs[0][1].isdigit() or len(pairs[0][1]) > 2:
        return None
    limit = int(pairs[0][1])
    return limit if 1 <= limit <= MAX_LIMIT else None


class RememberedInboxAnswers:
    """Answers the badge and the first inbox page from the inbox cache when it can (module docstring)."""

    def __init__(self, app: ASGIApp, *, host: Any) -> None:
        self.app = app
        self._host = host  # the FastAPI app: its state holds the cache, the authenticator and settings
        self.answered = 0  # how many requests this layer answered (the rest went on to the routes)
        host.state.remembered_inbox_answers = self

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the remembered answer, or pass the request on."""
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] in (BADGE_PATH, PAGE_PATH):
            body = await self._remembered(scope)
            if body is not None:
                self.answered += 1
                await send({"type": "http.response.start", "status": 200, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    async def _remembered(self, scope: Scope) -> bytes | None:
        state = self._host.state
        cache = getattr(state, "inbox_cache", None)
        if cache is None:
            return None
        limit = first_page_limit(scope.get("query_string", b"")) if scope["path"] == PAGE_PATH else 0
        if limit is None:
            return None
        connection = HTTPConnection(scope)
        try:
            principal = scope.get(PRINCIPAL_KEY) or await state.authenticator.authenticate(connection)
        except Exception:  # noqa: BLE001 - bad credentials: the route answers them with its problem details
            return None
        if not principal.is_authenticated or not principal.user_id:
            return None
        scope[PRINCIPAL_KEY] = principal  # a miss goes on to the route, which need not authenticate again
        if scope["path"] == BADGE_PATH:
            return cache.recall(badge_key(principal.user_id))
        locale = negotiate(user_locale=principal.locale, accept_language=connection.headers.get("accept-language"),
                           default=state.settings.locale)
        return cache.recall(page_key(principal.user_id, locale, limit))
