"""Officials' sign-in and profile pages in headless Chromium, and the session cookie's guards."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from config import Settings
from core.db import make_engine
from core.identity import service
from core.identity.ratelimit import SignInLimiter
from tests.core.identity.conftest import PASSWORD

SESSION_COOKIE = "superapp_session"


@dataclass(frozen=True)
class Official:
    """An official in the page host's database, and an access token of a session opened on their phone."""

    user_id: int
    username: str
    display_name: str
    phone_token: str


@pytest.fixture
def official(settings: Settings) -> Official:
    """A commune official of Phú Xuân in the SQLite database the ``page`` and ``client`` hosts use."""
    engine = make_engine(settings.database_url)
    try:
        with Session(engine, expire_on_commit=False) as db:
            user = service.create_official(db, username="tran.thi.hoa", display_name="Trần Thị Hoa",
                                           password=PASSWORD, memberships=[("commune_official", "phu-xuan")])
            pair = service.start_session(db, secret=settings.secret_key, user=user, method="firebase",
                                         client="Hue-S Android", address="127.0.0.1")
    finally:
        engine.dispose()
    assert user.id is not None and user.username
    return Official(user.id, user.username, user.display_name, pair.access_token)


def sign_in(page, username: str, password: str) -> None:
    """Fill and send the sign-in form the way an official does."""
    page.goto("/auth/login")
    page.locator('input[name="username"]').fill(username)
    page.locator('input[name="password"]').fill(password)
    page.locator('form.form button[type="submit"]').click()


def path_of(page) -> str:
    """The path of the page's current URL."""
    return urlsplit(page.url).path


def session_cookie(page) -> dict | None:
    """The browser's session cookie, if it holds one."""
    return next((c for c in page.context.cookies() if c["name"] == SESSION_COOKIE), None)


# --- In the browser ----------------------------------------------------------------------------------------


def test_official_signs_in_and_lands_on_their_profile(page, official: Official) -> None:
    sign_in(page, official.username, PASSWORD)
    page.wait_for_url("**/me")
    assert page.get_by_test_id("profile-name").inner_text() == "Trần Thị Hoa"
    # the role and the unit in words, in the page's language (Vietnamese by default)
    assert page.get_by_test_id("roles").inner_text().strip() == "Cán bộ phường, xã — Phường Phú Xuân"
    cookie = session_cookie(page)
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Lax"


def test_wrong_password_shows_an_error_and_stays_on_the_form(page, official: Official) -> None:
    sign_in(page, official.username, "Sai-mat-khau-2025")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert alert.inner_text() == "Sai tên đăng nhập hoặc mật khẩu."
    assert path_of(page) == "/auth/login"
    assert page.locator('input[name="username"]').input_value() == official.username
    assert page.get_by_test_id("profile-name").count() == 0 and session_cookie(page) is None


def test_profile_without_a_cookie_redirects_to_sign_in(page) -> None:
    response = page.goto("/me")
    # residents' phone sign-in first; officials follow its link to their form, still coming back to /me
    assert path_of(page) == "/auth/phone" and urlsplit(page.url).query == "next=/me"
    assert response is not None and response.status == 200
    page.get_by_test_id("officials-sign-in").click()
    page.wait_for_url("**/auth/login?next=/me")
    assert page.locator('input[name="next"]').input_value() == "/me"


def test_profile_works_with_the_webview_bearer_token(page, official: Official) -> None:
    page.set_extra_http_headers({"Authorization": f"Bearer {official.phone_token}"})
    response = page.goto("/me")
    assert response is not None and response.status == 200 and path_of(page) == "/me"
    assert page.get_by_test_id("profile-name").inner_text() == "Trần Thị Hoa"
    assert page.get_by_test_id("sessions").inner_text().count("(Firebase)") == 1
    assert session_cookie(page) is None


def test_sign_out_button_ends_the_session(page, official: Official) -> None:
    sign_in(page, official.username, PASSWORD)
    page.wait_for_url("**/me")
    cookie = session_cookie(page)
    assert cookie is not None
    page.get_by_test_id("sign-out").click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/")
    assert session_cookie(page) is None
    page.goto("/me")
    assert path_of(page) == "/auth/phone"
    # the signed-out cookie's token is dead too, not merely forgotten by the browser
    check = page.request.get("/api/auth/check", headers={"Authorization": f"Bearer {cookie['value']}"})
    assert check.status == 401


def test_stale_cookie_after_signing_out_everywhere_sends_the_browser_to_sign_in(page, browser, live_url: str,
                                                                                official: Official) -> None:
    sign_in(page, official.username, PASSWORD)
    page.wait_for_url("**/me")
    phone = browser.new_context(base_url=live_url)  # its own cookie jar: the browser keeps its cookie
    try:
        ended = phone.request.post("/api/auth/logout-all",
                                   headers={"Authorization": f"Bearer {official.phone_token}"})
        assert ended.status == 204
    finally:
        phone.close()
    assert session_cookie(page) is not None
    me = page.goto("/me")
    home = page.goto("/")
    # a dead session cookie is no worse than none: pages treat the browser as signed out
    assert (me.status if me else None, home.status if home else None) == (200, 200), (
        f"/me answered {me and me.status}, / answered {home and home.status} with a revoked session cookie")
    page.goto("/me")
    assert path_of(page) == "/auth/phone"


# --- With TestClient ------------------------------------------------------------------------------------


def form_sign_in(client: TestClient, username: str, password: str) -> object:
    """POST the sign-in form without following the redirect."""
    return client.post("/auth/login", data={"username": username, "password": password, "next": "/me"},
                       follow_redirects=False)


def test_cookie_sign_out_needs_this_sites_origin(client: TestClient, official: Official) -> None:
    assert form_sign_in(client, official.username, PASSWORD).status_code == 303
    token = client.cookies[SESSION_COOKIE]
    for headers in ({"Origin": "https://evil.example"}, {"Referer": "https://evil.example/hue"}, {}):
        refused = client.post("/api/auth/logout", headers=headers)
        assert refused.status_code == 403, headers
        assert refused.json()["type"] == "/problems/cross-site"
    assert client.get("/api/auth/check").status_code == 204  # still signed in; reads need no Origin
    assert client.post("/api/auth/logout", headers={"Origin": "http://testserver"}).status_code == 204
    assert SESSION_COOKIE not in client.cookies
    client.cookies.set(SESSION_COOKIE, token)
    assert client.get("/api/auth/check").status_code == 401


def test_form_lockout_cannot_be_dodged_by_padding_the_username(client: TestClient, official: Official) -> None:
    # a minute's first delay, so a slow machine cannot outwait it between two requests
    client.app.state.sign_in_limiter = SignInLimiter(base_seconds=60)
    for _ in range(5):
        assert form_sign_in(client, official.username, "Sai-mat-khau-2025").status_code == 401
    locked = form_sign_in(client, official.username, PASSWORD)
    assert locked.status_code == 429 and "quá nhiều lần" in locked.text and int(locked.headers["retry-after"]) > 0
    # the account is locked however its name is typed: the form strips the name before checking it
    padded = form_sign_in(client, f" {official.username} ", PASSWORD)
    assert padded.status_code != 303 and SESSION_COOKIE not in client.cookies, (
        "padding the username with spaces skipped the account lockout and signed in")
