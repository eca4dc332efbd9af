"""A tiny outside web mini-app, as an organisation would write it: its page uses the host's bridge, its
backend verifies launch tokens against the host's JWKS with PyJWT and sends notifications through the
host's server-to-server API. Served by its own process: ``uvicorn tests.webapps.sample.app:from_env --factory``.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx
import jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse
from starlette.routing import Route

HERE = Path(__file__).parent


class LaunchVerifier:
    """Checks a launch token: the host's key (from its JWKS), this mini-app as audience, not expired, not replayed."""

    def __init__(self, host: str, client_id: str) -> None:
        self.host = host
        self.client_id = client_id
        self.jwks = jwt.PyJWKClient(f"{host}/.well-known/jwks.json", cache_keys=True, lifespan=300)
        self._seen: dict[str, float] = {}  # jti -> expiry: the replay window is the token's own lifetime
        self._lock = threading.Lock()

    def verify(self, token: str) -> dict:
        """The claims, or raises jwt.PyJWTError saying why the token is refused."""
        key = self.jwks.get_signing_key_from_jwt(token)
        claims = jwt.decode(token, key.key, algorithms=["EdDSA", "RS256"], audience=self.client_id,
                            issuer=self.host, options={"require": ["exp", "iat", "jti", "sub", "aud"]})
        now = time.time()
        with self._lock:
            self._seen = {j: exp for j, exp in self._seen.items() if exp > now}
            if claims["jti"] in self._seen:
                raise jwt.InvalidTokenError("replayed launch token (jti already used)")
            self._seen[claims["jti"]] = claims["exp"]
        return claims


def create_sample(host: str, client_id: str, client_secret: str) -> Starlette:
    """The sample mini-app for the host at ``host`` with its registered client."""
    verifier = LaunchVerifier(host, client_id)

    async def page(request: Request) -> HTMLResponse:
        html = (HERE / "page.html").read_text().replace("{{HOST}}", host)
        return HTMLResponse(html)

    async def script(request: Request) -> FileResponse:
        return FileResponse(HERE / "sample.js", media_type="text/javascript")

    async def verify(request: Request) -> JSONResponse:
        body = await request.json()
        try:
            claims = verifier.verify(str(body.get("token", "")))
        except jwt.PyJWTError as exc:
            return JSONResponse({"ok": False, "reason": f"{type(exc).__name__}: {exc}"}, status_code=401)
        return JSONResponse({"ok": True, "sub": claims["sub"], "scope": claims.get("scope", ""),
                             "locale": claims.get("locale"), "theme": claims.get("theme")})

    async def server_call(path: str, scope: str, body: dict) -> JSONResponse:
        """Call the host's server API with a fresh client-credentials token; our report of its answer."""
        async with httpx.AsyncClient(base_url=host, timeout=10) as client:
            token = await client.post("/oauth/token", data={
                "grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret,
                "scope": scope})
            if token.status_code != 200:
                return JSONResponse({"status": token.status_code, "problem": token.json()}, status_code=502)
            answer = await client.post(path, headers={"Authorization": f"Bearer {token.json()['access_token']}"},
                                       json=body)
        return JSONResponse({"status": answer.status_code, "answer": answer.json()})

    async def phone(request: Request) -> JSONResponse:
        body = await request.json()
        return await server_call("/api/s2s/phone", "phone.read", {"token": str(body.get("token", ""))})

    async def where(request: Request) -> JSONResponse:
        body = await request.json()
        return await server_call("/api/s2s/location", "location.read", {"token": str(body.get("token", ""))})

    async def feed(request: Request) -> JSONResponse:
        body = await request.json()
        return await server_call("/api/s2s/feed", "feed.publish", body)

    async def about(request: Request) -> HTMLResponse:
        return HTMLResponse("<!doctype html><title>About the Youth Union</title><p id='about'>About us</p>")

    async def foreign(request: Request) -> HTMLResponse:
        # A page of another origin inside ours that tries the bridge itself: the shell must refuse it.
        return HTMLResponse("<!doctype html><title>foreign</title><p id='answer'>waiting</p><script>"
                            "addEventListener('message', function (e) { if (e.data && e.data.id === 'f1') "
                            "document.getElementById('answer').textContent = e.data.ok ? 'answered' : e.data.error.code; });"
                            "window.top.postMessage({superapp: 1, id: 'f1', method: 'phoneToken', params: {}}, '*');"
                            "</script>")

    async def notify(request: Request) -> JSONResponse:
        body = await request.json()
        return await server_call("/api/s2s/notifications", "notifications.send", {
                "residents": [body["sub"]], "topic": "activities",
                "title": {"vi": "Hoạt động mới", "en": "New activity"},
                "body": {"vi": str(body.get("text", "")) or "Mời bạn tham gia", "en": str(body.get("text", "")) or "Join us"}})

    received: list[dict] = []

    async def hook(request: Request) -> JSONResponse:
        try:
            key = verifier.jwks.get_signing_key_from_jwt((await request.body()).decode())
            event = jwt.decode((await request.body()).decode(), key.key, algorithms=["EdDSA"], audience=client_id,
                               issuer=host)
        except jwt.PyJWTError as exc:
            return JSONResponse({"ok": False, "reason": str(exc)}, status_code=401)
        received.append({"event": event["event"], "sub": event["sub"], "scope": event.get("scope"),
                         "jti": event["jti"]})
        return JSONResponse({"ok": True})

    async def hooks_received(request: Request) -> JSONResponse:
        return JSONResponse(received)

    return Starlette(routes=[Route("/app", page), Route("/sample.js", script),
                             Route("/hooks/superapp", hook, methods=["POST"]), Route("/hooks/received", hooks_received),
                             Route("/verify", verify, methods=["POST"]), Route("/notify", notify, methods=["POST"]),
                             Route("/phone", phone, methods=["POST"]),
                             Route("/location", where, methods=["POST"]), Route("/feed", feed, methods=["POST"]),
                             Route("/about", about), Route("/foreign", foreign)])


def from_env() -> Starlette:
    """The sample configured by SAMPLE_HOST, SAMPLE_CLIENT_ID and SAMPLE_CLIENT_SECRET."""
    return create_sample(os.environ["SAMPLE_HOST"], os.environ["SAMPLE_CLIENT_ID"], os.environ["SAMPLE_CLIENT_SECRET"])
