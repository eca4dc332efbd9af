"""Bounded work per request: the request-body limit, larger allowances for uploads after sign-in, JSON depth.

Body limit
    ``BodyLimitMiddleware`` wraps every HTTP request's ``receive``. A request whose ``Content-Length``
    is over the limit is answered 413 (problem+json) before a byte of its body is read; a body without
    one (chunked) is counted as it streams and cut off with 413 at the first chunk past the limit. The
    limit is ``SUPERAPP_MAX_BODY_BYTES`` (1 MiB by default) for everyone on every route.

Upload allowances
    A route that takes files declares a larger allowance with a dependency::

        @api.post("/reports", dependencies=[allow_uploads(files=MAX_PHOTOS)])

    The allowance is granted only to a signed-in caller, and only when the body is going to be over
    the global limit: the middleware then finds the route (the few mini-app routes with an allowance
    are matched against the request's method and path) and authenticates the caller from the request's headers, before
    reading the body. The principal found is left in the scope, where ``get_principal`` picks it up,
    so the route does not authenticate twice. Anonymous callers and bodies over the allowance get
    413; requests within the global limit never pay for the lookup. The check happens here and not
    in the dependency because FastAPI reads (and spools) the body before it runs dependencies.

    Starlette's ``RequestBodyLimitMiddleware`` limits per route too, but a route's limit there applies
    to anonymous callers as well, and it answers in text/plain.

JSON depth
    Every JSON request body is scanned for its nesting (``json_nesting_exceeds``, no parsing) before
    FastAPI or a route parses it, and refused past ``MAX_JSON_DEPTH`` with a 422 naming the body
    (``core.security.TextInputGuard``); ``loads_json`` does the same for text a route reads itself.
    Python's parser would recurse to a RecursionError around a thousand levels.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from itertools import accumulate
from typing import Any

from fastapi import Depends
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config import Settings
from core.errors import Problem, problem_response

MAX_JSON_DEPTH = 32
# Multipart framing and the form's text fields around the files of an upload.
FORM_ALLOWANCE = 64 * 1024
PRINCIPAL_KEY = "superapp.principal"  # where core.identity.deps.get_principal looks first


class BodyTooLarge(HTTPException):
    """413: raised from ``receive`` so that the route's own handling (and FastAPI's) answers problem+json."""

    def __init__(self, detail: str) -> None:
        super().__init__(status_code=413, detail=detail)


class BodyAllowance:
    """A route dependency saying: a signed-in caller may send up to ``limit(settings)`` bytes here."""

    def __init__(self, limit: Callable[[Settings], int]) -> None:
        self.limit = limit

    async def __call__(self) -> None:
        """Nothing to do per request: BodyLimitMiddleware applied the allowance before the body was read."""


def allow_body(limit: int | Callable[[Settings], int]) -> Any:
    """A route dependency granting signed-in callers bodies up to ``limit`` bytes (or ``limit(settings)``)."""
    return Depends(BodyAllowance(limit if callable(limit) else (lambda _settings: limit)))


def allow_uploads(files: int = 1, each: int | None = None) -> Any:
    """A route dependency granting signed-in callers ``files`` files of ``each`` bytes (default
    SUPERAPP_MEDIA_MAX_BYTES) plus the form around them."""
    return allow_body(lambda settings: files * (each or settings.media_max_bytes) + FORM_ALLOWANCE)


def allowances(app: Any) -> list[tuple[frozenset[str], re.Pattern[str], BodyAllowance]]:
    """(methods, path pattern, allowance) of every mini-app route that declares a BodyAllowance, found once.

    Read from the mini-apps' own routers with the prefixes the host mounts them under (core/app.py),
    so the middleware can tell a request's route before the app routes it.
    """
    found = getattr(app.state, "body_allowances", None)
    if found is None:
        found = []
        for miniapp in getattr(app.state, "miniapps", ()):
            mounted = [(miniapp.api_prefix, router) for router in miniapp.api_routers]
            mounted += [(miniapp.page_prefix, router) for router in miniapp.page_routers]
            mounted += list(miniapp.root_routers.items())
            for prefix, router in mounted:
                for route in router.routes:
                    allowance = _allowance_of(route)
                    if allowance is not None:
                        pattern, _format, _convertors = compile_path(prefix + route.path)
                        found.append((frozenset(route.methods), pattern, allowance))
        app.state.body_allowances = found
    return found


def _allowance_of(route: Any) -> BodyAllowance | None:
    if not isinstance(route, APIRoute):
        return None
    stack = list(route.dependant.dependencies)
    while stack:
        dependency = stack.pop()
        if isinstance(dependency.call, BodyAllowance):
            return dependency.call
        stack.extend(dependency.dependencies)
    return None


class BodyLimitMiddleware:
    """Refuse request bodies over the limit while they stream in (see the module docstring)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on with a counting ``receive``; answer 413 when its body is too large."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await _BodyGuard(self.app, self.max_bytes, scope, receive, send).run()


class _BodyGuard:
    """One request's count of body bytes against its limit."""

    def __init__(self, app: ASGIApp, max_bytes: int, scope: Scope, receive: Receive, send: Send) -> None:
        self.app, self.scope, self.receive, self.send = app, scope, receive, send
        self.limit = max_bytes
        self.received = 0
        self.allowance_checked = False
        self.allowance: int | None = None  # the route's, whether or not the caller earned it
        self.started = False

    async def run(self) -> None:
        declared = _content_length(self.scope)
        if declared is not None and declared > self.limit:
            await self._apply_allowance()
            if declared > self.limit:
                await self._refuse(self._detail(f"the request body is {declared} bytes"))
                return
        try:
            await self.app(self.scope, self._receive, self._send)
        except BodyTooLarge as exc:
            if self.started:
                raise
            await self._refuse(exc.detail)

    async def _receive(self) -> Message:
        if self.received > self.limit:  # refused already: a reader that caught the 413 gets it again
            raise BodyTooLarge(self._detail(f"the request body is over {self.limit} bytes"))
        message = await self.receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                await self._apply_allowance()
                if self.received > self.limit:
                    raise BodyTooLarge(self._detail(f"the request body is over {self.limit} bytes"))
        return message

    async def _send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)

    async def _apply_allowance(self) -> None:
        """Raise the limit to the route's allowance when the route has one and the caller is signed in."""
        if self.allowance_checked:
            return
        self.allowance_checked = True
        app = self.scope.get("app")
        if app is None:
            return
        path, root = self.scope["path"], self.scope.get("root_path", "")
        path = path[len(root):] if root and path.startswith(root) else path
        for methods, pattern, allowance in allowances(app):
            if self.scope["method"] in methods and pattern.fullmatch(path):
                self.allowance = allowance.limit(app.state.settings)
                break
        if self.allowance is None or self.allowance <= self.limit:
            return
        if await self._signed_in(app):
            self.limit = self.allowance

    async def _signed_in(self, app: Any) -> bool:
        principal = self.scope.get(PRINCIPAL_KEY)
        if principal is None:
            authenticator = getattr(app.state, "authenticator", None)
            if authenticator is None:
                return False
            try:
                principal = await authenticator.authenticate(HTTPConnection(self.scope))
            except Problem:
                return False  # an invalid token earns nothing; the route itself will say why
            self.scope[PRINCIPAL_KEY] = principal
        return bool(principal.is_authenticated)

    def _detail(self, what: str) -> str:
        if self.limit == self.allowance:
            return f"{what}; this route takes at most {self.limit} bytes"
        if self.allowance is not None:
            return (f"{what}; the limit is {self.limit} bytes, and {self.allowance} bytes on this route "
                    "for a signed-in caller")
        return f"{what}; the limit is {self.limit} bytes"

    async def _refuse(self, detail: str) -> None:
        response = problem_response(413, detail, instance=self.scope.get("path"), headers={"Connection": "close"})
        await response(self.scope, self.receive, self.send)


def _content_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


# A JSON string (escapes and all): its brackets are text, not nesting.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKETS = bytes(range(256)).translate(None, b"[]{}")  # every byte but the brackets: translate deletes them
_NESTING_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def json_nesting_exceeds(raw: bytes | str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether JSON text ``raw`` opens lists and objects more than ``limit`` levels deep, found without parsing.

    Checked before ``json.loads`` sees untrusted text: Python's parser recurses once per level and
    raises RecursionError around a thousand, and catching that in a long-lived worker is not safe
    (CPython 3.11 can be left with its recursion count off, failing later unrelated code).
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    if data.count(b"[") + data.count(b"{") <= limit:  # the common case: cannot be too deep
        return False
    brackets = _JSON_STRING.sub(b"", data).translate(None, _BRACKETS)
    return max(accumulate(map(_NESTING_STEP.__getitem__, brackets)), default=0) > limit


def jwt_nesting_exceeds(token: str) -> bool:
    """Whether a compact JWT's header or claims nest past ``MAX_JSON_DEPTH``: checked before a JWT library
    parses them (PyJWT reads the header, and unverified claims, with ``json.loads``)."""
    for segment in token.split(".")[:2]:
        try:
            raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        except ValueError:  # not base64: the library refuses it with its own reason
            return False
        if json_nesting_exceeds(raw):
            return True
    return False


def loads_json(raw: bytes | str, *, field: str = "body", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``raw`` parsed as JSON; Problem 422 naming ``field`` when it is not JSON or nests too deeply."""
    if json_nesting_exceeds(raw, max_depth):
        raise Problem(422, f"the JSON is nested more than {max_depth} levels deep", field=field)
    try:
        return json.loads(raw)
    except ValueError:
        raise Problem(422, "the body is not JSON", field=field) from None
