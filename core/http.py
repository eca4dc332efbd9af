"""HTTP semantics the framework leaves to us (RFC 9110): HEAD wherever GET, conditional requests, ETags per representation.

- ``HeadAsGet``: FastAPI answers HEAD with 405 unless a route declares it; a general-purpose server must
  support HEAD wherever it supports GET (RFC 9110 §9.3.2). The middleware runs the GET and sends its
  status and headers without the body.
- ``if_none_match``: the ``If-None-Match`` test with the weak comparison the RFC asks for (§13.1.2): a
  list of tags, ``W/`` tags, and ``*``.
- ``encoded_answer``: one body kept as identity and gzip bytes answered as the client can best take it,
  each representation with its own ETag (a gzip body is not byte-equal to the identity one, so they must
  not share a strong tag: §8.8.3), ``Vary: Accept-Encoding``, and 304 when the client holds either.
- ``AnswersBeforeRouting``: GETs that mini-apps answer from memory before routing
  (``register(before_routing=...)``), such as the public reports map layer; anything they do not answer
  goes on to the routes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _opaque(tag: str) -> str:
    """The opaque part of an entity tag, for weak comparison: ``W/"x"`` and ``"x"`` compare equal."""
    return tag.strip().removeprefix("W/")


def if_none_match(header: str | None, *etags: str) -> bool:
    """True when ``If-None-Match`` (``header``) matches any of ``etags`` by weak comparison (or is ``*``)."""
    if not header:
        return False
    listed = {_opaque(tag) for tag in header.split(",") if tag.strip()}
    return "*" in listed or any(_opaque(etag) in listed for etag in etags)


def accepts_gzip(request: Request) -> bool:
    """True when ``Accept-Encoding`` admits gzip (``q=0`` refuses it; ``*`` admits it)."""
    header = request.headers.get("accept-encoding", "")
    admitted = {}
    for part in header.split(","):
        name, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if name:
            admitted[name.strip().lower()] = quality
    if "gzip" in admitted:
        return admitted["gzip"] > 0
    return admitted.get("*", 0) > 0


def gzip_etag(etag: str) -> str:
    """The ETag of the gzip representation of the body tagged ``etag`` (``"abc"`` -> ``"abc-gzip"``)."""
    weak = etag.startswith("W/")
    opaque = _opaque(etag)
    tagged = f'"{opaque.strip(chr(34))}-gzip"'
    return f"W/{tagged}" if weak else tagged


def encoded_answer(request: Request, *, body: bytes, gzipped: bytes | None, etag: str, media_type: str,
                   headers: Mapping[str, str] | None = None) -> Response:
    """``body`` (or ``gzipped``, when the client takes gzip) with its own ETag; 304 when the client has it."""
    use_gzip = gzipped is not None and accepts_gzip(request)
    tag = gzip_etag(etag) if use_gzip else etag
    vary = "Accept-Encoding" if gzipped is not None else None
    answer_headers = {**(headers or {}), "ETag": tag}
    if vary:
        answer_headers["Vary"] = ", ".join(v for v in (answer_headers.get("Vary"), vary) if v)
    # A client holding either representation has the content: 304 names the one it would get now.
    if if_none_match(request.headers.get("if-none-match"), etag, gzip_etag(etag)):
        return Response(status_code=304, headers=answer_headers)
    if use_gzip:
        return Response(gzipped, media_type=media_type, headers={**answer_headers, "Content-Encoding": "gzip"})
    return Response(body, media_type=media_type, headers=answer_headers)


class HeadAsGet:
    """Answer HEAD as the GET of the same URL would be answered, without the body (RFC 9110 §9.3.2)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        body_sent = False

        async def send_head(message: Message) -> None:
            nonlocal body_sent
            if message["type"] == "http.response.start":
                await send(message)
            elif message["type"] == "http.response.body" and not body_sent:
                if not message.get("more_body", False):
                    body_sent = True
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_head)
        if not body_sent:  # the GET ended without a last body message (a streamed answer cut short)
            await send({"type": "http.response.body", "body": b"", "more_body": False})


log = logging.getLogger(__name__)


class AnswersBeforeRouting:
    """Answers the GETs mini-apps registered with ``register(before_routing=...)`` when their function
    returns a response, before FastAPI's routing and dependency solving (on a kept map layer, two thirds
    of the app's time); None, or an error, lets the request go on to the routes, which answer as always.
    Innermost of the host's middleware, so security headers, rate limits and request ids apply alike."""

    def __init__(self, app: ASGIApp, *, answers: Mapping[str, Callable[[Request], Any]]) -> None:
        self.app, self._answers = app, dict(answers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the mini-app's answer, or pass the request on."""
        answer = self._answers.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "GET" else None
        if answer is not None:
            try:
                response = answer(Request(scope, receive))
            except Exception:  # noqa: BLE001 - a failing shortcut must not fail the request: the route answers
                log.warning("answer before routing of %s failed", scope["path"], exc_info=True)
                response = None
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
