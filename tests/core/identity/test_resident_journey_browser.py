"""A resident's journey and a visitor's warning in headless Chromium, in Vietnamese and English, at phone and
desktop sizes, on SQLite and PostgreSQL (issue 16).

The resident signs in with a phone number and the development code, picks a home ward at first run,
opens a linked inbox item (its read state clears), downloads their data and deletes the account. A
signed-out visitor sees an active flood warning on the home screen, linked to the warning, and can
narrow the banner to the place they choose.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from config import Settings
from core.app import create_app
from core.feed import service as feed
from core.identity.models import AuditEvent, User
from tests.browser import serve
from tests.conftest import base_settings

# (page language, viewport): each journey runs in both languages at both sizes.
VARIANTS = {
    "vi-phone": ("vi", {"width": 390, "height": 844}),
    "en-phone": ("en", {"width": 390, "height": 844}),
    "vi-desktop": ("vi", {"width": 1366, "height": 768}),
    "en-desktop": ("en", {"width": 1366, "height": 768}),
}
PHONE = "0905 246 810"
CODE_LINE = re.compile(r"development sign-in code for \+84905246810: (\d{6})")
HUE_CLOCK = re.compile(r"^\d{2}/\d{2}/\d{4} \d{2}:\d{2}$")
TEXT = {
    "vi": {"deleted": "Tài khoản của bạn đã được xoá", "emergency": "Khẩn cấp"},
    "en": {"deleted": "Your account has been deleted", "emergency": "Emergency"},
}


@pytest.fixture
def dev_settings(database_url: str, tmp_path: Path) -> Settings:
    """A development host (the dev code exists only there) on SQLite, then on PostgreSQL; no map tiles."""
    return base_settings(database_url=database_url, env="dev", var_dir=tmp_path / "var", map_tile_url="")


@pytest.fixture
def host(dev_settings: Settings) -> Iterator[tuple[str, object]]:
    """The live server's base URL and its app."""
    app = create_app(dev_settings)
    with serve(app) as url:
        yield url, app


def _code(caplog: pytest.LogCaptureFixture) -> str:
    found = CODE_LINE.findall(caplog.text)
    assert found, "no development code was written to the log"
    return found[-1]


def _notify_ward(app, unit_id: str, title: dict[str, str], url: str) -> int:
    """A notice to a ward's residents, as a mini-app sends one."""
    with Session(app.state.engine) as db:
        receipt = app.state.notifier.send(db, miniapp="core", topic="announcements", units=[unit_id], title=title,
                                          body={"vi": "Nội dung", "en": "Details"}, url=url)
        db.commit()
    return receipt.notification_id


def _fits(page, viewport: dict[str, int]) -> None:
    """Nothing wider than the screen: no sideways scrolling at this size."""
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_resident_signs_in_by_phone_reads_the_inbox_downloads_and_deletes(
        variant: str, browser, host, caplog: pytest.LogCaptureFixture) -> None:
    locale, viewport = VARIANTS[variant]
    caplog.set_level(logging.WARNING, logger="core.identity.routes")
    url, app = host
    context = browser.new_context(viewport=viewport, base_url=url, locale="vi-VN", accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        # The home screen in the chosen language; its sign-in link leads to the residents' page, not the officials'.
        page.goto(f"/?lang={locale}")
        page.get_by_test_id("inbox-sign-in").click()
        page.wait_for_url("**/auth/phone?next=/inbox")
        assert page.locator("html").get_attribute("lang") == locale  # kept by the cookie, no ?lang= here
        assert page.get_by_test_id("officials-sign-in").get_attribute("href") == "/auth/login?next=/inbox"
        assert page.locator("input[name=password]").count() == 0

        # A wrong number is named in the page's language; then the number and the code from the log.
        page.get_by_test_id("phone").fill("12345")
        page.get_by_test_id("send-code").click()
        assert page.get_by_test_id("sign-in-error").inner_text().startswith(
            {"vi": "Số điện thoại chưa đúng", "en": "That phone number is not right"}[locale])
        page.get_by_test_id("phone").fill(PHONE)
        page.get_by_test_id("send-code").click()
        page.get_by_test_id("code-sent").wait_for()
        assert "+84905246810" in page.get_by_test_id("code-sent").inner_text()
        page.get_by_test_id("code").fill(_code(caplog))
        page.get_by_test_id("verify-code").click()

        # First run: the home ward, then on to where the resident was going.
        page.wait_for_url("**/me/home?first=1&next=/inbox")
        assert page.locator("html").get_attribute("lang") == locale
        assert page.locator("[data-testid=home-ward] option").count() == 41  # "choose" and the 40 units
        page.get_by_test_id("home-ward").select_option("phu-xuan")
        page.get_by_test_id("save-home-ward").click()
        page.wait_for_url("**/inbox")
        _fits(page, viewport)
        assert page.get_by_test_id("profile-link").is_visible() and page.get_by_test_id("shell-sign-out").is_visible()

        # A notice for Phú Xuân: counted on the home screen, linked and timed in the inbox.
        _notify_ward(app, "phu-xuan", {"vi": "Lịch lễ hội tuần này", "en": "Festival programme this week"},
                     "/m/festival/")
        page.goto("/")
        assert page.locator("html").get_attribute("lang") == locale
        assert page.get_by_test_id("home-unread").inner_text().split()[0] == "1"
        page.get_by_test_id("inbox-link").click()
        page.wait_for_url("**/inbox")
        item = page.get_by_test_id("inbox-item").first
        title = {"vi": "Lịch lễ hội tuần này", "en": "Festival programme this week"}[locale]
        assert title in item.inner_text()
        assert item.get_by_test_id("unread-mark").count() == 1
        assert HUE_CLOCK.match(item.locator("time").inner_text().strip())
        assert page.get_by_test_id("unread").inner_text() == "1"
        item.locator("a.open").click()
        page.wait_for_url("**/m/festival/")
        page.goto("/inbox")
        assert page.get_by_test_id("inbox-item").first.get_by_test_id("unread-mark").count() == 0
        assert page.get_by_test_id("unread").inner_text() == "0"

        # "Mark all read" clears a second one.
        _notify_ward(app, "phu-xuan", {"vi": "Thông báo thứ hai", "en": "A second notice"}, "/m/festival/")
        page.reload()
        assert page.get_by_test_id("unread").inner_text() == "1"
        page.get_by_test_id("mark-all-read").click()
        page.wait_for_url("**/inbox")
        assert page.get_by_test_id("unread").inner_text() == "0"

        # The profile shows the home ward; download my data.
        page.get_by_test_id("profile-link").click()
        page.wait_for_url("**/me")
        assert page.get_by_test_id("profile-home-ward").input_value() == "phu-xuan"
        with page.expect_download() as download:
            page.get_by_test_id("download-data").click()
        data = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
        assert data["account"]["phone"] == "+84905246810" and data["account"]["home_unit_id"] == "phu-xuan"
        user_id = data["account"]["id"]
        assert {row["user_id"] for row in data["records"]["auth_session"]} == {user_id}
        assert "password_hash" not in data["account"]

        # Delete the account, after ticking the confirmation (the server refuses without it: the matrix).
        page.get_by_test_id("confirm-delete").check()
        page.get_by_test_id("delete-account").click()
        page.wait_for_url("**/auth/deleted")
        assert page.get_by_test_id("account-deleted").inner_text() == TEXT[locale]["deleted"]
        assert page.get_by_test_id("sign-in-link").is_visible()  # signed out
        assert errors == [], errors
    finally:
        context.close()
    with Session(app.state.engine) as db:
        assert db.get(User, user_id) is None
        actions = [e.details.get("user_id") if e.action == "account_deleted" else e.subject_id
                   for e in db.exec(select(AuditEvent).where(AuditEvent.action.in_(
                       ["personal_data_exported", "account_deleted"])))]
        assert user_id in actions  # the deletion is recorded by the number of the account that is gone
        assert len(actions) == 2


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_signed_out_visitor_sees_the_flood_warning_on_the_home_screen(variant: str, browser, host) -> None:
    locale, viewport = VARIANTS[variant]
    url, app = host
    with Session(app.state.engine) as db:
        item = feed.publish_item(
            db, author_unit_id="hue", author_user_id=None, kind="warning", severity="critical", audience="everyone",
            title={"vi": "Báo động III sông Hương tại Kim Long",
                   "en": "Alarm level III on the Huong River at Kim Long"},
            body={"vi": "Di chuyển lên chỗ cao.", "en": "Move to higher ground."}, unit_ids=["kim-long"],
            expires_at=datetime.now(UTC) + timedelta(hours=6))
        item_id = item.id
    context = browser.new_context(viewport=viewport, base_url=url, locale="vi-VN")
    page = context.new_page()
    try:
        page.goto(f"/?lang={locale}")
        banner = page.get_by_test_id("warning-banner")
        warning = banner.get_by_test_id("banner-warning")
        title = {"vi": "Báo động III sông Hương tại Kim Long", "en": "Alarm level III on the Huong River at Kim Long"}
        assert title[locale] in warning.inner_text() and TEXT[locale]["emergency"] in warning.inner_text()
        assert {"vi": "Phường Kim Long", "en": "Ward Kim Long"}[locale] in warning.inner_text()
        _fits(page, viewport)

        # The banner is on every page, not only the home screen.
        page.goto("/search?q=le%20hoi")
        assert page.get_by_test_id("banner-warning").count() == 1

        # A visitor who chooses another ward no longer sees Kim Long's warning; choosing Kim Long brings it back.
        page.goto("/")
        page.get_by_test_id("place").select_option("phu-xuan")
        page.get_by_test_id("save-place").click()
        page.wait_for_url(f"{url}/")
        assert page.get_by_test_id("banner-warning").count() == 0
        assert page.locator("html").get_attribute("lang") == locale
        page.get_by_test_id("place").select_option("kim-long")
        page.get_by_test_id("save-place").click()
        page.wait_for_url(f"{url}/")
        page.get_by_test_id("banner-warning").click()
        page.wait_for_url(f"**/warnings/{item_id}")
        assert page.get_by_test_id("warning-title").inner_text() == title[locale]
        places = {"vi": "Phường Kim Long", "en": "Ward Kim Long"}[locale]
        assert page.get_by_test_id("warning-places").inner_text() == places
    finally:
        context.close()


def test_language_toggle_keeps_the_query_and_the_return_address(browser, host) -> None:
    url, _app = host
    context = browser.new_context(viewport={"width": 390, "height": 844}, base_url=url, locale="vi-VN")
    page = context.new_page()
    try:
        page.goto("/auth/phone?next=/m/feedback/new")
        page.get_by_test_id("lang-en").click()
        page.wait_for_url("**/auth/phone?next=%2Fm%2Ffeedback%2Fnew&lang=en")
        assert page.locator("html").get_attribute("lang") == "en"
        page.goto("/search?q=ho%20tich")
        assert page.locator("html").get_attribute("lang") == "en"  # the cookie, no ?lang=
        page.get_by_test_id("lang-vi").click()
        page.wait_for_url("**/search?q=ho+tich&lang=vi")
        assert page.get_by_test_id("search-box").input_value() == "ho tich"
    finally:
        context.close()


def test_toggle_after_a_refused_official_sign_in_keeps_the_return_address(browser, host) -> None:
    url, _app = host
    context = browser.new_context(viewport={"width": 1366, "height": 768}, base_url=url, locale="vi-VN")
    page = context.new_page()
    try:
        page.goto("/auth/login?next=/m/tasks/")
        page.locator('input[name="username"]').fill("nobody.here")
        page.locator('input[name="password"]').fill("Sai-mat-khau-123")
        page.locator('form.form button[type="submit"]').click()
        page.get_by_test_id("sign-in-error").wait_for()
        page.get_by_test_id("lang-en").click()
        page.wait_for_url("**/auth/login?next=%2Fm%2Ftasks%2F&lang=en")
        assert page.locator('input[name="next"]').input_value() == "/m/tasks/"
    finally:
        context.close()
