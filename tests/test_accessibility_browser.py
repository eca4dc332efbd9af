"""axe-core in headless Chromium over every page type, as a visitor, a resident, a ward official and an
operator, in Vietnamese at phone width and English at desktop width: no critical or serious violation.
axe-core is the copy pinned in the axe-playwright-python wheel: nothing is fetched at test time."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session

from config import Settings
from core.app import discover
from core.db import make_engine
from core.identity import service as identity
from core.seed import DEMO_PASSWORD, seed_demo
from tests.conftest import base_settings

axe_module = pytest.importorskip("axe_playwright_python.sync_playwright")

PAGES = {
    "visitor": ["/", "/feed", "/warnings", "/search?q=ho+tich", "/no-such-page", "/auth/login", "/auth/phone",
                "/m/feedback/", "/m/feedback/map", "/m/floodmap/", "/m/floodmap/stations/1",
                "/m/floodmap/warnings/1", "/m/interaction/", "/m/tasks/"],
    "resident": ["/", "/me", "/inbox", "/m/feedback/new", "/m/feedback/mine", "/m/feedback/reports/1",
                 "/m/interaction/ask"],
    "kimlong.demo": ["/m/feedback/queue", "/m/feedback/reports/2", "/m/tasks/assignments/1", "/m/interaction/inbox",
                     "/m/interaction/questions/1", "/feed/new"],
    "operator.demo": ["/m/feedback/dashboard", "/m/floodmap/dashboard", "/m/tasks/", "/m/tasks/procedures",
                      "/m/tasks/rankings", "/m/tasks/tasks/1", "/m/tasks/units/kim-long"],
    "admin.demo": ["/admin", "/admin/officials", "/admin/officials/1", "/admin/audit",
                   "/m/feedback/admin/categories", "/m/interaction/admin/fields"],
}


@pytest.fixture
def settings(sqlite_url: str, tmp_path: Path) -> Settings:
    """A development host with every mini-app's demo content, without a base map."""
    settings = base_settings(database_url=sqlite_url, var_dir=tmp_path / "var", env="dev", map_tile_url="")
    engine = make_engine(sqlite_url)
    for _line in seed_demo(engine, discover(settings)):
        pass
    engine.dispose()
    return settings


def _resident_token(settings: Settings) -> str:
    engine = make_engine(settings.database_url)
    try:
        with Session(engine, expire_on_commit=False) as db:
            resident = identity.find_or_create_resident(db, firebase_uid="axe-1", phone="+84905777003", address=None)
            resident.home_unit_id = "kim-long"
            db.add(resident)
            db.commit()
            return identity.start_session(db, secret=settings.secret_key, user=resident, method="firebase",
                                          client="web", address="127.0.0.1", web=True).access_token
    finally:
        engine.dispose()


@pytest.mark.parametrize(("lang", "size"), [("vi", {"width": 390, "height": 844}),
                                            ("en", {"width": 1366, "height": 900})])
def test_no_critical_or_serious_violation_on_any_page_type(browser, live_url: str, settings: Settings,
                                                            lang: str, size: dict) -> None:
    axe = axe_module.Axe()
    token = _resident_token(settings)
    found: dict[str, list[str]] = {}
    checked = 0
    for who, paths in PAGES.items():
        context = browser.new_context(viewport=size, base_url=live_url)
        page = context.new_page()
        try:
            if who == "resident":
                context.add_cookies([{"name": "superapp_session", "value": token, "url": live_url}])
            elif who != "visitor":
                page.goto("/auth/login")
                page.fill("input[name=username]", who)
                page.fill("input[name=password]", DEMO_PASSWORD)
                page.click("form button[type=submit]")
                page.wait_for_load_state()
            for path in paths:
                page.goto(path + ("&" if "?" in path else "?") + f"lang={lang}")
                assert page.locator("html").get_attribute("lang") == lang, path
                violations = axe.run(page).response["violations"]
                checked += 1
                serious = [f"{v['id']} ({v['impact']}): {v['nodes'][0]['target']}" for v in violations
                           if v["impact"] in ("critical", "serious")]
                if serious:
                    found[f"{who} {path}"] = serious
        finally:
            context.close()
    assert checked == sum(len(p) for p in PAGES.values())
    assert found == {}
