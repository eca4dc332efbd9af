"""Officials' dashboards use a desktop's width (not a 480 px column); on a phone nothing widens the page:
tables scroll inside their own box. Headless Chromium at 1366 and 390 px, in Vietnamese and English."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session

from config import Settings
from core.db import make_engine
from core.identity import service as identity
from tests.conftest import base_settings
from tests.core.identity.conftest import PASSWORD

DASHBOARDS = ["/m/feedback/dashboard", "/m/feedback/queue", "/m/floodmap/dashboard", "/m/tasks/"]


@pytest.fixture
def settings(sqlite_url: str, tmp_path: Path) -> Settings:
    """The page host, without a base map: tests never reach a tile server."""
    return base_settings(database_url=sqlite_url, var_dir=tmp_path / "var", map_tile_url="")


@pytest.fixture
def operator_token(settings: Settings) -> str:
    engine = make_engine(settings.database_url)
    try:
        with Session(engine, expire_on_commit=False) as db:
            official = identity.create_official(db, username="ioc.layout", display_name="Trực IOC",
                                                password=PASSWORD, memberships=[("operator", "hue")])
            return identity.start_session(db, secret=settings.secret_key, user=official, method="password",
                                          client="web", address="127.0.0.1", web=True).access_token
    finally:
        engine.dispose()


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_dashboards_use_the_desktop_width_and_fit_a_phone(page, live_url: str, operator_token: str,
                                                          lang: str) -> None:
    page.context.add_cookies([{"name": "superapp_session", "value": operator_token, "url": live_url}])
    for path in DASHBOARDS:
        page.set_viewport_size({"width": 1366, "height": 900})
        page.goto(f"{path}?lang={lang}")
        assert page.locator("html").get_attribute("lang") == lang
        width = page.evaluate("document.querySelector('main').getBoundingClientRect().width")
        assert width > 1000, (path, width)
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(f"{path}?lang={lang}")
        # nothing wider than the phone: wide tables scroll inside their own box
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path


def test_a_residents_page_stays_a_phone_column(page, live_url: str) -> None:
    page.set_viewport_size({"width": 1366, "height": 900})
    page.goto("/m/feedback/map?lang=vi")
    assert page.evaluate("document.querySelector('main').getBoundingClientRect().width") <= 480
