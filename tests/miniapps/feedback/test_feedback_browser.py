"""The issue's scenario in headless Chromium: a resident files a report with a photo, Phú Xuân's official
finds it in the queue and resolves it, the resident rates it, and the operators' dashboard counts it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlmodel import Session

from config import Settings
from core.db import make_engine
from core.identity import service as identity
from tests.conftest import base_settings
from tests.core.identity.conftest import PASSWORD
from tests.inbox import inbox_of
from tests.miniapps.feedback.conftest import PHU_XUAN, jpeg


@pytest.fixture
def settings(sqlite_url: str, tmp_path: Path) -> Settings:
    """The page host, without a base map: tests never reach a tile server."""
    return base_settings(database_url=sqlite_url, var_dir=tmp_path / "var", map_tile_url="")


@dataclass(frozen=True)
class People:
    """The resident's session token and user id; the officials' usernames."""

    resident_token: str
    resident_id: int
    official: str
    operator: str


@pytest.fixture
def people(settings: Settings) -> People:
    """A Phú Xuân resident (signed in on the phone), Phú Xuân's official and an operator."""
    engine = make_engine(settings.database_url)
    try:
        with Session(engine, expire_on_commit=False) as db:
            official = identity.create_official(db, username="px.feedback", display_name="Cán bộ Phú Xuân",
                                                password=PASSWORD, memberships=[("commune_official", "phu-xuan")])
            operator = identity.create_official(db, username="ioc.feedback", display_name="Trực IOC",
                                                password=PASSWORD, memberships=[("operator", "hue")])
            resident = identity.find_or_create_resident(db, firebase_uid="web-fb", phone="+84905888001", address=None)
            resident.home_unit_id = "phu-xuan"
            db.add(resident)
            db.commit()
            pair = identity.start_session(db, secret=settings.secret_key, user=resident, method="firebase",
                                          client="Hue-S web", address="127.0.0.1", web=True)
            return People(pair.access_token, resident.id or 0, official.username or "", operator.username or "")
    finally:
        engine.dispose()


def as_resident(page, live_url: str, token: str) -> None:
    """The resident's session cookie (residents sign in on the phone, not with a form)."""
    page.context.clear_cookies()
    page.context.add_cookies([{"name": "superapp_session", "value": token, "url": live_url}])


def sign_in(page, username: str, next_path: str) -> None:
    """Sign in on the officials' form and land on ``next_path``."""
    page.context.clear_cookies()
    page.goto(f"/auth/login?next={next_path}")
    page.locator('input[name="username"]').fill(username)
    page.locator('input[name="password"]').fill(PASSWORD)
    page.locator('form.form button[type="submit"]').click()
    page.wait_for_url(f"**{next_path}")


def take(page, action: str, **fields: str) -> None:
    """Submit one of the report page's action forms."""
    form = page.get_by_test_id(f"action-{action}")
    for name, value in fields.items():
        form.locator(f'[name="{name}"]').fill(value)
    form.locator('button[type="submit"]').click()
    page.wait_for_load_state()


def test_resident_files_official_resolves_resident_rates(page, live_url: str, people: People, settings: Settings,
                                                         tmp_path: Path) -> None:
    photo = tmp_path / "via-he.jpg"
    photo.write_bytes(jpeg((1800, 1200), gps=PHU_XUAN))

    # the resident files a report with a photo
    as_resident(page, live_url, people.resident_token)
    page.goto("/m/feedback/?lang=en")
    page.get_by_test_id("new-report").click()
    page.locator("#category_id").select_option("public-order")
    page.locator("#description").fill("A café has taken over the pavement on Đinh Tiên Hoàng street")
    page.locator("#lat").fill(str(PHU_XUAN[0]))
    page.locator("#lon").fill(str(PHU_XUAN[1]))
    page.locator("#photos").set_input_files(str(photo))
    page.get_by_test_id("submit-report").click()
    page.wait_for_url("**/m/feedback/reports/*")
    report_url = page.url.split("?")[0]
    report_id = int(report_url.rsplit("/", 1)[1])
    assert page.get_by_test_id("report-state").get_attribute("data-state") == "submitted"
    assert "Phu Xuan" in page.get_by_test_id("handling-unit").inner_text()
    thumbnail = page.get_by_test_id("photo-report")
    assert thumbnail.evaluate("img => img.complete && img.naturalWidth") == 320

    # Phú Xuân's official finds it in the queue and takes it through to resolved
    sign_in(page, people.official, "/m/feedback/queue?lang=en")
    row = page.locator(f'[data-testid="queue-row"][data-report="{report_id}"]')
    assert row.count() == 1
    row.locator("a").click()
    page.wait_for_url(f"**/m/feedback/reports/{report_id}*")
    assert page.get_by_test_id("reporter").count() == 0  # the handling unit does not see who filed it
    take(page, "accept")
    take(page, "start")
    take(page, "resolve", response="The pavement is clear again.")
    assert page.get_by_test_id("report-state").get_attribute("data-state") == "resolved"

    # the resident was told of each step, sees the response, and rates it
    as_resident(page, live_url, people.resident_token)
    page.goto(f"/m/feedback/reports/{report_id}?lang=en")
    assert page.get_by_test_id("report-response").inner_text() == "The pavement is clear again."
    page.locator("#stars").select_option("4")
    page.locator("#comment").fill("Quick, thank you")
    page.get_by_test_id("rate-form").locator('button[type="submit"]').click()
    page.wait_for_load_state()
    assert page.get_by_test_id("report-state").get_attribute("data-state") == "closed"
    assert page.get_by_test_id("report-rating").inner_text().startswith("4/5")
    engine = make_engine(settings.database_url)
    with Session(engine) as db:
        told = [n.title_en for n in inbox_of(db, people.resident_id, topic="report_updates")]
    engine.dispose()
    assert told == [f"Report #{report_id}: {step}" for step in ("Submitted", "Accepted", "In progress", "Resolved")]

    # the operators' dashboard counts it
    sign_in(page, people.operator, "/m/feedback/dashboard?lang=en")
    assert page.get_by_test_id("total-received").inner_text() == "1"
    assert page.get_by_test_id("total-processed").inner_text() == "1"
    assert page.get_by_test_id("total-satisfaction").inner_text() == "100.0%"
    assert page.get_by_test_id("reporter").count() == 0  # (dashboard has no reporters at all)
    page.goto(f"/m/feedback/reports/{report_id}?lang=en")
    assert "+84905888001" in page.get_by_test_id("reporter").inner_text()  # operators see who filed it


def test_public_map_draws_the_geojson_layer_without_tiles(page, live_url: str, people: People) -> None:
    as_resident(page, live_url, people.resident_token)
    page.goto("/m/feedback/new?lang=en")
    page.locator("#description").fill("Rubbish piling up")
    page.locator("#category_id").select_option("trash")
    page.locator("#lat").fill(str(PHU_XUAN[0]))
    page.locator("#lon").fill(str(PHU_XUAN[1]))
    page.get_by_test_id("submit-report").click()
    page.wait_for_url("**/m/feedback/reports/*")
    page.context.clear_cookies()
    page.goto("/m/feedback/map?lang=en")
    page.wait_for_function("document.getElementById('map-count').textContent.length > 0")
    assert page.get_by_test_id("map-count").inner_text() == "1 reports"
    assert page.locator("#reports-map path.leaflet-interactive").count() == 1


def test_form_shows_the_refusal_for_a_point_outside_hue(page, live_url: str, people: People) -> None:
    as_resident(page, live_url, people.resident_token)
    page.goto("/m/feedback/new?lang=en")
    page.locator("#description").fill("Somewhere else")
    page.locator("#lat").fill("21.03")
    page.locator("#lon").fill("105.85")
    page.get_by_test_id("submit-report").click()
    page.wait_for_load_state()
    error = page.get_by_test_id("form-error")
    assert error.get_attribute("data-field") == "lat" and "outside Hue" in error.inner_text()
    assert page.locator("#description").input_value() == "Somewhere else"  # nothing typed is lost
