"""The feed pages in headless Chromium: an official publishes a warning from /feed/new and it shows on /feed;
residents see only what is meant for them."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from sqlmodel import Session

from config import Settings
from core.db import make_engine
from core.identity import service as identity
from tests.core.feed.conftest import publish_in
from tests.core.identity.conftest import PASSWORD


@dataclass(frozen=True)
class People:
    """Who uses the pages: a Phú Xuân official (username) and two residents (session tokens)."""

    official: str
    resident_phu_xuan: str
    resident_kim_long: str


@pytest.fixture
def people(settings: Settings) -> People:
    """An official of Phú Xuân and residents of Phú Xuân and Kim Long in the page host's database."""
    engine = make_engine(settings.database_url)
    tokens = []
    try:
        with Session(engine, expire_on_commit=False) as db:
            official = identity.create_official(db, username="le.thi.mai", display_name="Lê Thị Mai",
                                                password=PASSWORD, memberships=[("commune_official", "phu-xuan")])
            for n, unit in ((1, "phu-xuan"), (2, "kim-long")):
                resident = identity.find_or_create_resident(db, firebase_uid=f"web-{n}", phone=f"+8490577700{n}",
                                                            address=None)
                resident.home_unit_id = unit
                db.add(resident)
                db.commit()
                pair = identity.start_session(db, secret=settings.secret_key, user=resident, method="firebase",
                                              client="Hue-S web", address="127.0.0.1", web=True)
                tokens.append(pair.access_token)
    finally:
        engine.dispose()
    return People(official.username or "", *tokens)


def as_resident(page, live_url: str, token: str) -> None:
    """Give the browser a resident's session cookie (residents sign in on the phone, not with a form)."""
    page.context.clear_cookies()
    page.context.add_cookies([{"name": "superapp_session", "value": token, "url": live_url}])


def sign_in(page, username: str, next_path: str) -> None:
    """Sign in on the officials' form and land on ``next_path``."""
    page.goto(f"/auth/login?next={next_path}")
    page.locator('input[name="username"]').fill(username)
    page.locator('input[name="password"]').fill(PASSWORD)
    page.locator('form.form button[type="submit"]').click()
    page.wait_for_url(f"**{next_path}")


def titles(page) -> list[str]:
    """The titles of the items on the page, top to bottom."""
    return [t.strip() for t in page.get_by_test_id("item-title").all_inner_texts()]


def test_official_publishes_a_warning_and_only_its_unit_sees_it(page, live_url: str, settings: Settings,
                                                                people: People) -> None:
    engine = make_engine(settings.database_url)
    publish_in(engine, title={"vi": "Lịch đóng cửa cầu Trường Tiền", "en": "Truong Tien bridge closures"})
    engine.dispose()
    sign_in(page, people.official, "/feed/new")
    form = page.get_by_test_id("publish-form")
    # a ward official publishes for their ward only: one unit to choose, no targets to pick
    assert form.locator('select[name="author_unit_id"] option').all_inner_texts() == ["Phường Phú Xuân"]
    assert form.locator('select[name="unit_ids"]').is_disabled()
    form.locator('select[name="kind"]').select_option("warning")
    form.locator('input[name="title_vi"]').fill("Cảnh báo ngập sâu đường Lê Lợi")
    form.locator('input[name="title_en"]').fill("Deep flooding on Le Loi street")
    form.locator('textarea[name="body_vi"]').fill("Không đi qua đoạn từ cầu Trường Tiền đến ga Huế.")
    form.locator('textarea[name="body_en"]').fill("Avoid the stretch from Truong Tien bridge to Hue station.")
    # no severity yet: the server says so in the form, keeping what was typed
    form.locator('button[type="submit"]').click()
    error = page.get_by_test_id("error-severity")
    error.wait_for()
    assert error.inner_text() == "Cảnh báo cần có mức độ; tin tức thì để trống."
    assert page.locator('input[name="title_en"]').input_value() == "Deep flooding on Le Loi street"
    page.locator('select[name="severity"]').select_option("critical")
    page.locator('form[data-testid="publish-form"] button[type="submit"]').click()
    page.wait_for_url("**/feed?**")
    assert urlsplit(page.url).fragment.startswith("item-")
    warning = page.locator(".feed-item.warning.critical").first
    assert warning.get_by_test_id("item-title").inner_text() == "Cảnh báo ngập sâu đường Lê Lợi"
    assert warning.get_by_test_id("severity").inner_text().strip().lower() == "khẩn cấp"
    assert page.get_by_test_id("publish-link").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # laid out for a phone

    # a resident of another ward sees the city's news but not Phú Xuân's warning
    as_resident(page, live_url, people.resident_kim_long)
    page.goto("/feed?lang=en")
    assert titles(page) == ["Truong Tien bridge closures"]
    assert page.get_by_test_id("publish-link").count() == 0
    # a resident of Phú Xuân sees both, the warning on top, in their language
    as_resident(page, live_url, people.resident_phu_xuan)
    page.goto("/feed?lang=en")
    assert titles(page) == ["Deep flooding on Le Loi street", "Truong Tien bridge closures"]
    # and a resident may not open the publish form (in English still: the browser keeps the language chosen)
    page.goto("/feed/new")
    assert page.get_by_role("alert").inner_text().startswith("Only commune, ward and department officials")


def test_feed_pages_through_older_items(page, settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    for n in range(25):
        publish_in(engine, title={"vi": f"Tin số {n}", "en": f"Item {n}"})
    publish_in(engine, pinned=True, title={"vi": "Đường dây nóng phòng chống lụt bão", "en": "Flood hotline"})
    engine.dispose()
    page.goto("/feed?lang=en")
    assert page.get_by_test_id("pinned").get_by_test_id("item-title").all_inner_texts() == ["Flood hotline"]
    first = [t for t in page.get_by_test_id("feed").get_by_test_id("item-title").all_inner_texts()]
    assert first[0] == "Item 24" and len(first) == 20
    page.get_by_test_id("older").click()
    page.wait_for_url("**cursor=**")
    older = page.get_by_test_id("feed").get_by_test_id("item-title").all_inner_texts()
    assert older == [f"Item {n}" for n in range(4, -1, -1)]
    assert page.get_by_test_id("pinned").count() == 0 and page.get_by_test_id("older").count() == 0
