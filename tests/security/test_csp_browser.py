"""The strict CSP in real Chromium: the main pages of every mini-app and the map pages load with it on, draw
their maps with tiles from another origin (a loopback tile server), open their live sockets, and report no
CSP violation and no JavaScript error."""

from __future__ import annotations

import http.server
import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from sqlmodel import Session, select

from config import Settings
from core.app import create_app
from core.db import make_engine
from core.identity import service as identity
from miniapps.floodmap.demo import load_demo_stations
from miniapps.floodmap.models import FloodThing
from plugins.context import HostContext
from tests.conftest import base_settings
from tests.core.identity.conftest import PASSWORD


def _tile_png() -> bytes:
    """A 256x256 PNG: every tile the maps ask for."""
    out = io.BytesIO()
    Image.new("RGB", (256, 256), (230, 240, 250)).save(out, format="PNG")
    return out.getvalue()


PNG = _tile_png()
KIM_LONG = "kim-long-gauge"
ANONYMOUS_PAGES = ["/", "/feed", "/auth/login", "/search?q=lũ", "/m/floodmap/", "/m/floodmap/stations/{station}",
                   "/m/feedback/map"]
RESIDENT_PAGES = ["/inbox", "/m/feedback/", "/m/feedback/new", "/m/feedback/mine", "/m/floodmap/"]
OFFICIAL_PAGES = ["/me", "/feed/new", "/m/feedback/queue", "/m/feedback/dashboard", "/m/feedback/map",
                  "/m/floodmap/dashboard", "/m/interaction/", "/m/interaction/inbox", "/m/interaction/ask", "/m/tasks/",
                  "/m/tasks/procedures", "/m/tasks/rankings", "/admin/miniapps/floodmap/settings"]
MAP_PAGES = {"/m/floodmap/", "/m/feedback/map", "/m/feedback/new"}
# Run before any page script: collects what the browser blocks (init scripts are not subject to the CSP).
WATCH = ("window.__violations = [];"
         "document.addEventListener('securitypolicyviolation', e => window.__violations.push("
         "e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') + ' at ' + e.sourceFile + ':' + e.lineNumber));")


class _Tiles(http.server.BaseHTTPRequestHandler):
    served = 0

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        """Any path is a tile."""
        type(self).served += 1
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(PNG)))
        self.end_headers()
        self.wfile.write(PNG)

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def tile_server() -> Iterator[str]:
    """A loopback tile server on its own port: another origin than the site's."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Tiles)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{{z}}/{{x}}/{{y}}.png"
    finally:
        server.shutdown()
        thread.join(5)


@dataclass(frozen=True)
class Sessions:
    """Web session cookies of a Kim Long resident and of an administrator, and a station's id."""

    resident: str
    admin: str
    station: int


@pytest.fixture
def host_settings(database_url: str, tmp_path: Path, tile_server: str) -> Settings:
    """A host on SQLite then PostgreSQL whose maps draw tiles from the loopback tile server."""
    return base_settings(database_url=database_url, env="dev", var_dir=tmp_path / "var", map_tile_url=tile_server)


@pytest.fixture
def sessions(host_settings: Settings) -> Sessions:
    """The demo stations, and the two people's web sessions, in the host's database."""

    async def no_events(event: object) -> None:
        """Seeding publishes nothing."""

    engine = make_engine(host_settings.database_url)
    try:
        list(load_demo_stations(HostContext(engine=engine, settings=host_settings, publish_event=no_events)))
        with Session(engine, expire_on_commit=False) as db:
            resident = identity.find_or_create_resident(db, firebase_uid="csp-1", phone="+84905777001", address=None)
            resident.home_unit_id = "kim-long"
            db.add(resident)
            admin = identity.create_official(db, username="csp.admin", display_name="Quản trị CSP", password=PASSWORD,
                                             memberships=[("admin", "hue"), ("operator", "hue")])
            db.commit()
            tokens = [identity.start_session(db, secret=host_settings.secret_key, user=who, method="test",
                                             client="Hue-S web", address="127.0.0.1", web=True).access_token
                      for who in (resident, admin)]
            station = db.exec(select(FloodThing.id).where(FloodThing.code == KIM_LONG)).one()
    finally:
        engine.dispose()
    return Sessions(*tokens, station)


def _visit(browser, live_url: str, token: str | None, paths: list[str], station: int = 0) -> list[str]:
    """Load ``paths`` as the holder of ``token``; returns every problem seen (empty when all is well)."""
    problems: list[str] = []
    context = browser.new_context(viewport={"width": 390, "height": 844}, base_url=live_url, locale="vi-VN")
    context.add_init_script(WATCH)
    if token:
        context.add_cookies([{"name": "superapp_session", "value": token, "url": live_url}])
    page = context.new_page()
    page.on("pageerror", lambda error: problems.append(f"{page.url}: JS error {error}"))
    # The favicon's 404 is the browser's own guess, not a page's request.
    page.on("console", lambda message: message.type == "error" and "favicon" not in message.location.get("url", "")
            and problems.append(
        f"{page.url}: console error {message.text} ({message.location.get('url')})"))
    page.on("response", lambda response: response.status >= 400 and not response.url.endswith("/favicon.ico")
            and problems.append(f"{page.url}: HTTP {response.status} for {response.url}"))
    try:
        for path in (p.format(station=station) for p in paths):
            response = page.goto(path)
            assert response is not None
            policy = response.headers.get("content-security-policy", "")
            if "script-src 'self'" not in policy:
                problems.append(f"{path}: no strict CSP ({policy!r})")
            page.wait_for_load_state("networkidle")
            if path in MAP_PAGES and page.locator(".leaflet-container").count() != 1:
                problems.append(f"{path}: the map was not drawn")
            problems.extend(f"{path}: CSP {v}" for v in page.evaluate("window.__violations || []"))
    finally:
        context.close()
    return problems


def test_main_pages_and_maps_load_under_the_csp(browser, host_settings: Settings, sessions: Sessions) -> None:
    from tests.browser import serve

    _Tiles.served = 0
    with serve(create_app(host_settings)) as live_url:
        problems = (_visit(browser, live_url, None, ANONYMOUS_PAGES, sessions.station)
                    + _visit(browser, live_url, sessions.resident, RESIDENT_PAGES)
                    + _visit(browser, live_url, sessions.admin, OFFICIAL_PAGES))
    assert problems == [], "\n".join(problems)
    assert _Tiles.served > 0  # the maps fetched their tiles from the other origin, so img-src allows it


def test_an_inline_script_would_be_reported(browser, host_settings: Settings) -> None:
    """The watch itself works: a page with an inline script gets a CSP violation report."""
    from fastapi.responses import HTMLResponse

    from tests.browser import serve

    app = create_app(host_settings)
    app.add_api_route("/inline-probe", lambda: HTMLResponse("<p>x</p><script>document.title='ran'</script>"),
                      include_in_schema=False)
    with serve(app) as live_url:
        problems = _visit(browser, live_url, None, ["/inline-probe"])
    assert any("CSP script-src" in p and "inline" in p for p in problems), problems


class _MiniApp(http.server.BaseHTTPRequestHandler):
    """An outside organisation's web mini-app: one page at its own origin."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        """Any path is the mini-app's page."""
        body = b"<!doctype html><title>outside</title><p id='outside'>outside mini-app</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet."""


def test_web_mini_app_frame_page_frames_only_its_origins(browser, host_settings: Settings,
                                                          sessions: Sessions) -> None:
    """The /webapps/{id} shell frames the registered origin under the CSP, and the browser blocks any other."""
    import httpx

    from tests.browser import serve
    from tests.webapps.helpers import registration

    outside = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _MiniApp)
    threading.Thread(target=outside.serve_forever, daemon=True).start()
    origin = f"http://localhost:{outside.server_address[1]}"
    other = f"http://127.0.0.1:{outside.server_address[1]}"  # the same server at an origin not registered
    try:
        with serve(create_app(host_settings)) as live_url:
            admin = {"Authorization": f"Bearer {sessions.admin}"}
            assert httpx.post(f"{live_url}/api/webapps", json=registration("csp_app", origin), headers=admin,
                              timeout=30).status_code == 201
            for step, body in (("review", {"decision": "approve"}), ("publish", {"rollout_percent": 100})):
                assert httpx.post(f"{live_url}/api/webapps/csp_app/versions/1/{step}", json=body, headers=admin,
                                  timeout=30).status_code == 200
            problems = _visit(browser, live_url, sessions.resident, ["/webapps/csp_app"])
            context = browser.new_context(base_url=live_url)
            context.add_init_script(WATCH)
            context.add_cookies([{"name": "superapp_session", "value": sessions.resident, "url": live_url}])
            try:
                page = context.new_page()
                response = page.goto("/webapps/csp_app")
                assert response is not None
                frame_src = next(d for d in response.headers["content-security-policy"].split(";")
                                 if d.strip().startswith("frame-src"))
                assert frame_src.split() == ["frame-src", "'self'", origin]  # the host itself and the mini-app
                assert page.frame_locator('[data-testid="webapp-frame"]').locator("#outside").inner_text() \
                    == "outside mini-app"
                # Pointing a frame at another origin is blocked by the browser and reported.
                page.evaluate(f"document.getElementById('webapp-frame').src = '{other}/app'")
                page.wait_for_function("window.__violations.length > 0")
                violations = page.evaluate("window.__violations")
            finally:
                context.close()
    finally:
        outside.shutdown()
    assert problems == [], "\n".join(problems)
    assert any(v.startswith("frame-src blocked " + other) for v in violations), violations
