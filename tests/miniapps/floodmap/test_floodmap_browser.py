"""The live map in headless Chromium: readings pushed for Kim Long cross level II and the open page
shows it (marker, list and warning) without a reload; the station page draws its chart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import expect
from sqlmodel import Session

from config import Settings
from core.db import make_engine
from core.identity import service as identity
from miniapps.floodmap.demo import demo_key, load_demo_stations
from plugins.context import HostContext
from tests.miniapps.floodmap.conftest import INGEST, KIM_LONG, readings


async def _no_events(event) -> None:
    """Seeding publishes nothing."""


@pytest.fixture
def resident_token(settings: Settings) -> str:
    """The demo stations, and a Kim Long resident's web session, in the page host's database."""
    engine = make_engine(settings.database_url)
    try:
        list(load_demo_stations(HostContext(engine=engine, settings=settings, publish_event=_no_events)))
        with Session(engine, expire_on_commit=False) as db:
            resident = identity.find_or_create_resident(db, firebase_uid="map-1", phone="+84905999001", address=None)
            resident.home_unit_id = "kim-long"
            db.add(resident)
            db.commit()
            pair = identity.start_session(db, secret=settings.secret_key, user=resident, method="firebase",
                                          client="Hue-S web", address="127.0.0.1", web=True)
    finally:
        engine.dispose()
    return pair.access_token


def test_the_open_map_shows_kim_long_reaching_level_two_without_reload(page, live_url: str,
                                                                        resident_token: str) -> None:
    page.context.add_cookies([{"name": "superapp_session", "value": resident_token, "url": live_url}])
    page.goto("/m/floodmap/?lang=en")
    expect(page.get_by_test_id("live-status")).to_have_attribute("data-state", "live")
    station = page.locator(f'[data-station="{KIM_LONG}"]')
    expect(station).to_have_attribute("data-level", "0")
    assert page.locator(".leaflet-interactive").count() == 9  # every station drawn, with no base map
    page.evaluate("window.floodmapMarker = true")  # gone if the page reloads
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=14)
    batch = readings(0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.1, start=start, every=timedelta(minutes=2))
    answer = httpx.post(live_url + INGEST + KIM_LONG, json={"readings": batch},
                        headers={"X-Sensor-Key": demo_key(KIM_LONG)}, timeout=10)
    assert answer.json()["accepted"] == 8, answer.text
    expect(station).to_have_attribute("data-level", "2")
    expect(page.get_by_test_id(f"level-{KIM_LONG}")).to_have_text("Alarm level II")
    expect(page.get_by_test_id("warnings")).to_contain_text("Alarm level II")
    assert page.evaluate("window.floodmapMarker") is True

    station.get_by_role("link").click()
    expect(page.get_by_test_id("station-level")).to_have_text("Alarm level II")  # the chosen language is kept
    assert page.get_by_test_id("station-kind").inner_text() == "River gauge"
    # the rule that raised the level, with its threshold; the reading in Hue time, not UTC ISO
    assert "Alarm level II threshold (" in page.get_by_test_id("station-rule").inner_text()
    assert "T" not in page.get_by_test_id("station-reading").inner_text().split("(")[1]
    page.goto(page.url.split("?")[0] + "?lang=vi")
    expect(page.get_by_test_id("station-level")).to_have_text("Báo động II")
    assert "ngưỡng Báo động II (" in page.get_by_test_id("station-rule").inner_text()
    chart = page.get_by_test_id("chart").locator("svg")
    expect(chart.locator("polyline.readings")).to_have_count(1)
    expect(chart.locator("line.threshold")).to_have_count(3)


def test_an_anonymous_visitor_sees_the_map_without_a_socket(page, live_url: str, resident_token: str) -> None:
    page.goto("/m/floodmap/")
    expect(page.get_by_test_id("live-status")).to_have_attribute("data-state", "polling")
    expect(page.locator(f'[data-station="{KIM_LONG}"]')).to_be_visible()
    assert page.locator(".leaflet-interactive").count() == 9
