"""The issue's scenario in headless Chromium: a resident files a report with a photo, Phú Xuân's official
finds it in the queue and resolves it, the resident rates it, and the operators' dashboard counts it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import expect
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


def tap_map(page, lat: float, lon: float) -> None:
    """Tap the report form's map where the point is drawn, and wait for its ward to be looked up."""
    where = page.evaluate("([lat, lon]) => { const m = document.getElementById('pick-map').leafletMap;"
                          " m.setView([lat, lon], 16, {animate: false}); const p = m.latLngToContainerPoint([lat, lon]);"
                          " return {x: p.x, y: p.y}; }", [lat, lon])
    done = int(page.locator("#pick-map").get_attribute("data-located") or 0)
    page.locator("#pick-map").click(position=where)
    expect(page.locator("#pick-map")).to_have_attribute("data-located", str(done + 1))


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
    page.locator("#photos").set_input_files(str(photo))  # its GPS places the report and finds the ward
    expect(page.locator("#unit_id")).to_have_value("phu-xuan")
    assert "Place taken from the photo. Ward Phu Xuan" == page.get_by_test_id("place-status").inner_text()
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
    # the resident answers the resolution: rate it (which closes it, as the page says) or reopen it;
    # no officials' forms, and no stars chosen for them
    assert page.locator('[data-testid^="action-"]').count() == 0
    assert page.get_by_test_id("reopen-form").count() == 1
    assert page.get_by_test_id("rate-closes").inner_text() == "Sending the rating closes this report."
    assert page.locator('input[name="stars"]:checked').count() == 0
    page.get_by_test_id("stars-4").check()
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
    tap_map(page, *PHU_XUAN)
    page.get_by_test_id("submit-report").click()
    page.wait_for_url("**/m/feedback/reports/*")
    page.context.clear_cookies()
    page.goto("/m/feedback/map?lang=en")
    expect(page.get_by_test_id("map-count")).not_to_be_empty()
    assert page.get_by_test_id("map-count").inner_text() == "1 report"  # not "1 reports"
    assert page.locator("#reports-map path.leaflet-interactive").count() == 1


def test_form_shows_the_refusal_for_a_point_outside_hue(page, live_url: str, people: People) -> None:
    as_resident(page, live_url, people.resident_token)
    page.goto("/m/feedback/new?lang=en")
    page.locator("#description").fill("Somewhere else")
    page.context.grant_permissions(["geolocation"])
    page.context.set_geolocation({"latitude": 21.03, "longitude": 105.85})  # Hanoi
    page.locator("#use-location").click()
    status = page.get_by_test_id("place-status")
    expect(status).to_contain_text("outside")
    assert status.inner_text() == "This point is outside Hue City; choose again."
    page.get_by_test_id("submit-report").click()
    page.wait_for_load_state()
    error = page.get_by_test_id("form-error")
    assert error.get_attribute("data-field") == "lat" and error.inner_text().startswith("Choose the place")
    assert page.locator("#description").input_value() == "Somewhere else"  # nothing typed is lost


THIEN_MU = (16.4532, 107.5446)
KIM_LONG_STREET = (16.4625, 107.5620)


@pytest.mark.parametrize("size", [{"width": 390, "height": 844}, {"width": 1366, "height": 768}])
def test_a_report_near_thien_mu_goes_to_kim_long_shown_before_sending(page, live_url: str, people: People,
                                                                      size: dict) -> None:
    page.set_viewport_size(size)
    as_resident(page, live_url, people.resident_token)
    page.goto("/m/feedback/new?lang=vi")
    # no coordinates to type: the place is set by the map, the location button or a photo
    assert page.locator('input[type="number"]:visible, input#lat:visible, input#lon:visible').count() == 0
    page.locator("#category_id").select_option("public-order")
    page.locator("#description").fill("Xe đỗ chắn lối vào chùa Thiên Mụ")
    tap_map(page, *THIEN_MU)
    assert page.get_by_test_id("place-status").inner_text() == "Phường Kim Long"
    assert page.locator("#unit_id").input_value() == "kim-long"
    assert page.locator("#pick-map .leaflet-tooltip").inner_text() == "Phường Kim Long"
    page.get_by_test_id("submit-report").click()
    page.wait_for_url("**/m/feedback/reports/*")
    assert "Kim Long" in page.get_by_test_id("handling-unit").inner_text()


def test_the_chosen_ward_can_be_corrected_and_stays_corrected(page, live_url: str, people: People) -> None:
    as_resident(page, live_url, people.resident_token)
    page.goto("/m/feedback/new?lang=en")
    page.locator("#category_id").select_option("public-order")
    page.locator("#description").fill("Broken lamp on Kim Long street")
    page.context.grant_permissions(["geolocation"])
    page.context.set_geolocation({"latitude": KIM_LONG_STREET[0], "longitude": KIM_LONG_STREET[1]})
    page.locator("#use-location").click()
    expect(page.locator("#unit_id")).to_have_value("kim-long")
    assert page.get_by_test_id("place-status").inner_text() == "Ward Kim Long"
    page.locator("#unit_id").select_option("huong-an")  # the resident knows better
    tap_map(page, *THIEN_MU)  # moving the pin later does not undo the resident's choice
    assert page.locator("#unit_id").input_value() == "huong-an"
    page.get_by_test_id("submit-report").click()
    page.wait_for_url("**/m/feedback/reports/*")
    assert "Huong An" in page.get_by_test_id("handling-unit").inner_text()
