"""Hardening shared by every page and API answer: security headers (CSP with a per-request nonce, HSTS and
Secure cookies over HTTPS), trusted hosts and proxies, the public base URL for absolute links, and the
refusal of JSON text no database can store (lone UTF-16 surrogates).

``install_security(app, settings)`` adds the middleware; docs/operations.md ("Security") explains the settings.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from config import Settings
from core.errors import problem_response
from core.limits import MAX_JSON_DEPTH, json_nesting_exceeds

# FastAPI's own API explorers load Swagger UI / ReDoc from this CDN with an inline start-up script;
# only these pages get a policy that allows them.
API_EXPLORERS = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})
EXPLORER_CDN = "https://cdn.jsdelivr.net"
HSTS_SECONDS = 365 * 24 * 3600


def tile_origin(tile_url: str) -> str | None:
    """The origin Leaflet fetches map tiles from, as a CSP source ('{s}.' subdomains become '*.')."""
    if not tile_url:
        return None
    parts = urlsplit(tile_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None  # a relative tile URL is served by this site: 'self' covers it
    host = re.sub(r"\{[a-z]\}\.", "*.", parts.netloc)
    return f"{parts.scheme}://{host}"


def content_security_policy(settings: Settings, nonce: str, frames_extra: list[str] | tuple[str, ...] = ()) -> str:
    """The pages' policy: scripts only from this site, styles from it or with this request's nonce.

    Style attributes stay allowed (``style-src-attr``): a few templates colour a level with one, and
    they cannot run code. ``frame-src`` is the hook for outside web mini-apps: SUPERAPP_FRAME_SOURCES.
    """
    tiles = tile_origin(settings.map_tile_url)
    frames = " ".join(["'self'", *settings.frame_sources, *frames_extra])
    return "; ".join([
        "default-src 'self'",
        "script-src 'self'",
        f"style-src 'self' 'nonce-{nonce}'",
        "style-src-attr 'unsafe-inline'",
        "img-src 'self' data: blob:" + (f" {tiles}" if tiles else ""),
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        f"frame-src {frames}",
        "frame-ancestors 'self'",
    ])


def explorer_policy() -> str:
    """The relaxed policy of /docs and /redoc only (their HTML is FastAPI's, with an inline script)."""
    return "; ".join([
        "default-src 'self'",
        f"script-src 'self' 'unsafe-inline' {EXPLORER_CDN}",
        f"style-src 'self' 'unsafe-inline' {EXPLORER_CDN}",
        "img-src 'self' data: https://fastapi.tiangolo.com",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'self'",
    ])


def csp_nonce(request: Request) -> str:
    """This request's CSP nonce, for ``<style nonce="...">`` in templates (empty outside the middleware)."""
    return request.scope.get("state", {}).get("csp_nonce", "")


class SecurityHeadersMiddleware:
    """Adds the security headers to every HTTP answer; over HTTPS also HSTS and ``Secure`` on every cookie.

    HTTPS is the request's scheme: behind a proxy, ProxyHeadersMiddleware (SUPERAPP_TRUSTED_PROXIES) sets it.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on with a fresh nonce; add the headers to its answer."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})["csp_nonce"] = nonce
        https = scope.get("scheme") == "https"
        path = scope.get("path", "")
        policy = explorer_policy() if path in API_EXPLORERS else content_security_policy(self.settings, nonce)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                # A web mini-app's frame page names the origins it frames (core/webapps/pages.py).
                frames = scope["state"].get("csp_frame_sources")
                headers.setdefault("Content-Security-Policy", content_security_policy(
                    self.settings, nonce, frames) if frames and path not in API_EXPLORERS else policy)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
                headers.setdefault("X-Frame-Options", "SAMEORIGIN")  # for browsers without frame-ancestors
                headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
                if https:
                    headers.setdefault("Strict-Transport-Security", f"max-age={HSTS_SECONDS}")
                    cookies = headers.getlist("set-cookie")
                    if cookies:
                        del headers["set-cookie"]
                        for cookie in cookies:
                            secure = any(part.strip().lower() == "secure" for part in cookie.split(";"))
                            headers.append("set-cookie", cookie if secure else cookie + "; Secure")
            await send(message)

        await self.app(scope, receive, send_with_headers)


# A JSON string escape of a UTF-16 surrogate half; only bodies holding one are parsed a second time.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF][0-9a-fA-F]{2}")


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def _lone_surrogate_at(value: Any, path: str) -> str | None:
    """The dotted path of the first string (or key) in ``value`` holding a lone surrogate, else None."""
    if isinstance(value, str):
        return path if _has_surrogate(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            # The name itself may be the culprit: it is shown escaped, so the answer stays valid UTF-8.
            here = f"{path}.{key.encode('utf-8', 'backslashreplace').decode()}"
            if _has_surrogate(key):
                return here
            if found := _lone_surrogate_at(item, here):
                return found
        return None
    if isinstance(value, list):
        for index, item in enumerate(value):
            if found := _lone_surrogate_at(item, f"{path}.{index}"):
                return found
    return None


class TextInputGuard:
    """Answers 422 naming the field when a JSON body nests too deeply or carries a lone surrogate ("\\ud800").

    Nesting is checked on the raw text before FastAPI or a route parses it: Python's parser recurses once
    per level and fails around a thousand. No text column on either database can store a lone surrogate,
    and every route would otherwise fail with a 500 deep in the driver. Forms, query strings and paths
    cannot carry one (they are decoded from UTF-8 with replacement), so JSON bodies are the only way in.
    A body without content type is treated as JSON too, as FastAPI does.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read a JSON body, check it, and replay it to the app."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        content_type = headers.get(b"content-type")
        if content_type is None:
            # No body declared (most GETs): nothing to read; a body without a type is read as JSON.
            has_body = headers.get(b"content-length", b"0") not in (b"0", b"") or b"transfer-encoding" in headers
            if not has_body:
                await self.app(scope, receive, send)
                return
        elif b"json" not in content_type.lower():
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        messages: list[Message] = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        refusal = _json_refusal(body)
        if refusal:
            field, detail, kind = refusal
            response = problem_response(
                422, f"{field}: {detail}", title="Invalid request", type="/problems/validation",
                instance=scope.get("path"), field=field, errors=[{"field": field, "message": detail, "type": kind}])
            await response(scope, receive, send)
            return
        replay = iter([{"type": "http.request", "body": body, "more_body": False},
                       *(m for m in messages if m["type"] != "http.request")])

        async def replayed() -> Message:
            return next(replay, None) or await receive()

        await self.app(scope, replayed, send)


def _json_refusal(body: bytes) -> tuple[str, str, str] | None:
    """(field, detail, error type) when JSON ``body`` cannot be taken, else None (not JSON: the route's own
    validation names that)."""
    if json_nesting_exceeds(body):
        return "body", f"the JSON is nested more than {MAX_JSON_DEPTH} levels deep", "json_depth"
    if not _SURROGATE_ESCAPE.search(body):
        return None
    try:
        field = _lone_surrogate_at(json.loads(body), "body")
    except ValueError:
        return None
    if field is None:
        return None
    return (field, "text contains a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff escape); send valid "
            "Unicode text", "string_unicode")


def public_base_url(request: Request) -> str:
    """The site's base URL for absolute links in answers: SUPERAPP_PUBLIC_URL, else the request's own
    (whose Host SUPERAPP_ALLOWED_HOSTS restricts), without a trailing slash."""
    configured = request.app.state.settings.public_url
    return configured or str(request.base_url).rstrip("/")


def install_security(app: Any, settings: Settings) -> None:
    """Add the hardening layers: the JSON guard and the host check inside the host's middleware, the
    security headers (and a trusted proxy's word on scheme and client) outside all of it.

    Call before the outer middleware are added. The headers layer wraps even Starlette's own outermost
    ServerErrorMiddleware, so that every answer carries the headers: a 500, a 413 from the body limit and
    a 400 from the host check too, which middleware added the usual way never see.
    """
    app.add_middleware(TextInputGuard)
    if settings.allowed_hosts:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts)
    build_stack = app.build_middleware_stack

    def build_with_headers() -> ASGIApp:
        stack: ASGIApp = SecurityHeadersMiddleware(build_stack(), settings=settings)
        if settings.trusted_proxies:
            # Outermost: the scheme and client address are the proxy's word before anything reads them.
            stack = ProxyHeadersMiddleware(stack, trusted_hosts=settings.trusted_proxies)
        return stack

    app.build_middleware_stack = build_with_headers
