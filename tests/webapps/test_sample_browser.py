"""The issue's scenario in headless Chromium: the sample outside mini-app goes from registration through review
and publication to a resident's home screen, verifies its launch against the host's JWKS, gets location through
the shell's consent dialog, notifies the resident through the server API, and loses both after revocation."""

from __future__ import annotations

import re
import time

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from playwright.sync_api import expect

from core.webapps.tokens import KeyRing
from tests.conftest import TEST_SECRET
from tests.webapps.conftest import register_sample

HUE = {"latitude": 16.4637, "longitude": 107.5909}


def backend_notify(sample, sub: str) -> dict:
    """Ask the sample's backend to notify ``sub`` through the host's server API; its report of the answer."""
    answer = httpx.post(f"{sample.url.replace('localhost', '127.0.0.1')}/notify", json={"sub": sub}, timeout=30)
    return answer.json()


def test_outside_mini_app_end_to_end(browser, live_url, people, sample):
    context = browser.new_context(viewport={"width": 390, "height": 844}, base_url=live_url, locale="vi-VN",
                                  permissions=["geolocation"], geolocation=HUE)
    try:
        context.add_cookies([{"name": "superapp_session", "value": people.resident_token, "url": live_url}])
        page = context.new_page()
        page.goto("/")
        tile = page.locator('[data-miniapp="youth_union"] a')
        expect(tile).to_contain_text("Đoàn Thanh niên")
        tile.click()
        expect(page).to_have_url(re.compile(r"/webapps/youth_union"))
        app = page.frame_locator('[data-testid="webapp-frame"]')
        # The sample's backend verified the launch token with PyJWKClient against /.well-known/jwks.json.
        expect(app.locator("#verified")).to_contain_text("verified ")
        sub = app.locator("#verified").get_attribute("data-sub")
        assert sub and str(people.resident_id) != sub
        expect(page.get_by_test_id("webapp-title")).to_have_text("Youth Union sample")  # bridge: setTitle
        # Location before consent: the bridge refuses with a reason.
        app.locator("#get-location").click()
        expect(app.locator("#location")).to_contain_text("refused: scope_not_granted")
        # The shell's own dialog asks; the resident allows.
        app.locator("#ask-location").click()
        dialog = page.get_by_test_id("consent-dialog")
        expect(dialog).to_be_visible()
        expect(page.get_by_test_id("consent-scope")).to_have_text("location")
        expect(dialog).to_contain_text("Tìm điểm tình nguyện gần bạn")
        page.get_by_test_id("consent-grant").click()
        expect(app.locator("#scope-result")).to_have_text("location granted")
        app.locator("#get-location").click()
        expect(app.locator("#location")).to_have_text("at 16.464,107.591")
        expect(app.locator("#location-backend")).to_have_text("backend at 16.464,107.591")
        app.locator("#ask-notifications").click()
        page.get_by_test_id("consent-grant").click()
        expect(app.locator("#scope-result")).to_have_text("notifications granted")
        # A message from a window other than the mini-app's frame is refused and said so.
        page.evaluate("window.postMessage({superapp: 1, id: 'x1', method: 'location'}, '*')")
        expect(page.get_by_test_id("webapp-status")).to_contain_text("refused a bridge call from " + live_url)
        # The backend notifies through the server-to-server API; the resident finds it in the inbox.
        sent = backend_notify(sample, sub)
        assert sent["status"] == 202, sent
        page.goto("/inbox")
        expect(page.locator("main")).to_contain_text("Hoạt động mới")
        # Revocation on the consents page counts at once.
        page.goto("/me/webapps")
        page.get_by_test_id("revoke-youth_union-notifications").click()
        page.get_by_test_id("revoke-youth_union-location").click()
        expect(page.locator('[data-webapp="youth_union"] [data-granted="yes"]')).to_have_count(0)
        refused = backend_notify(sample, sub)
        assert refused["status"] == 403 and refused["answer"]["refused"] == [sub], refused
        # The backend heard of both revocations through signed webhooks it verified against the JWKS.
        events: list = []
        for _ in range(100):
            events = httpx.get(f"{sample.url.replace('localhost', '127.0.0.1')}/hooks/received", timeout=10).json()
            if len(events) >= 2:
                break
            time.sleep(0.1)
        assert sorted((e["event"], e["sub"], e["scope"]) for e in events) == [
            ("consent.revoked", sub, "location"), ("consent.revoked", sub, "notifications")]
        page.goto("/webapps/youth_union")
        expect(app.locator("#verified")).to_contain_text("verified " + sub)
        app.locator("#get-location").click()
        expect(app.locator("#location")).to_contain_text("refused: scope_not_granted")
    finally:
        context.close()


def verify(sample, token: str) -> httpx.Response:
    """Post a launch token to the sample's backend for verification."""
    return httpx.post(f"{sample.url.replace('localhost', '127.0.0.1')}/verify", json={"token": token}, timeout=30)


def launch(live_url: str, people, webapp_id: str) -> str:
    """A launch token for the resident, asked of the host's API with the web session cookie's token."""
    answer = httpx.post(f"{live_url}/api/webapps/{webapp_id}/launch", timeout=30,
                        headers={"Authorization": f"Bearer {people.resident_token}"})
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]


def test_sample_refuses_bad_launch_tokens(live_url, people, sample):
    register_sample(live_url, people.operator_token, "tree_care", "https://trees.example.vn")
    good = launch(live_url, people, "youth_union")
    assert verify(sample, good).json()["ok"] is True
    replayed = verify(sample, good)
    assert replayed.status_code == 401 and "replayed" in replayed.json()["reason"]
    other = verify(sample, launch(live_url, people, "tree_care"))
    assert other.status_code == 401 and "InvalidAudienceError" in other.json()["reason"]
    keys = KeyRing(TEST_SECRET, 1)
    now = int(time.time())
    expired = keys.sign({"iss": live_url, "aud": "youth_union", "sub": "s", "iat": now - 900, "exp": now - 600,
                         "jti": "old-one"})
    answer = verify(sample, expired)
    assert answer.status_code == 401 and "ExpiredSignatureError" in answer.json()["reason"]
    stranger = jwt.encode({"iss": live_url, "aud": "youth_union", "sub": "s", "iat": now, "exp": now + 300,
                           "jti": "forged"}, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": "g1-forged"})
    answer = verify(sample, stranger)
    assert answer.status_code == 401 and "signing key" in answer.json()["reason"]
    # The host's own key id on a token signed by another key: the signature check refuses it.
    forged = jwt.encode({"iss": live_url, "aud": "youth_union", "sub": "s", "iat": now, "exp": now + 300,
                         "jti": "forged-2"}, Ed25519PrivateKey.generate(), algorithm="EdDSA",
                        headers={"kid": keys.current.kid})
    answer = verify(sample, forged)
    assert answer.status_code == 401 and "InvalidSignatureError" in answer.json()["reason"]


def sample_post(sample, path: str, body: dict) -> dict:
    """Ask the sample's backend to do something with the host's server API; its report of the answer."""
    return httpx.post(f"{sample.url.replace('localhost', '127.0.0.1')}{path}", json=body, timeout=30).json()


def test_bridge_shell_calls(browser, live_url, people, sample):
    """Back button, theme and its changes, phone by one-time token, share, outside links, alert/confirm, opening
    another mini-app; refusals without the scope, from a foreign origin and for a bad link."""
    builtin = httpx.get(f"{live_url}/api/miniapps", headers={"Authorization": f"Bearer {people.resident_token}"},
                        timeout=30).json()["miniapps"]
    other = next(m for m in builtin if m.get("kind") != "web")
    context = browser.new_context(viewport={"width": 390, "height": 844}, base_url=live_url, locale="vi-VN",
                                  color_scheme="light")
    try:
        context.add_cookies([{"name": "superapp_session", "value": people.resident_token, "url": live_url}])
        page = context.new_page()
        page.goto("/webapps/youth_union")
        app = page.frame_locator('[data-testid="webapp-frame"]')
        expect(app.locator("#verified")).to_contain_text("verified ")
        sub = app.locator("#verified").get_attribute("data-sub")
        # Theme, then a change of the device's colour scheme reaches the mini-app as themeChanged.
        expect(app.locator("#theme")).to_have_text("theme light")
        page.emulate_media(color_scheme="dark")
        expect(app.locator("#theme")).to_have_text("theme dark")
        # Back button: hidden until the mini-app shows it; each press is the mini-app's, which hides it after two.
        back = page.get_by_test_id("webapp-back")
        expect(back).to_be_hidden()
        app.locator("#show-back").click()
        expect(back).to_be_visible()
        back.click()
        expect(app.locator("#back-pressed")).to_have_text("1")
        back.click()
        expect(app.locator("#back-pressed")).to_have_text("2")
        expect(back).to_be_hidden()
        # Phone: refused without the scope; after the shell's dialog, a one-time token the backend exchanges.
        app.locator("#get-phone").click()
        expect(app.locator("#phone")).to_contain_text("refused: scope_not_granted")
        app.locator("#ask-phone").click()
        expect(page.get_by_test_id("consent-scope")).to_have_text("phone")
        expect(page.get_by_test_id("consent-dialog")).to_contain_text("Liên hệ khi bạn đăng ký")
        page.get_by_test_id("consent-grant").click()
        expect(app.locator("#scope-result")).to_have_text("phone granted")
        app.locator("#get-phone").click()
        expect(app.locator("#phone")).to_have_text("phone +84905777001")
        used = app.locator("#phone").get_attribute("data-token")
        again = sample_post(sample, "/phone", {"token": used})
        assert again["status"] == 422 and again["answer"]["field"] == "token", again  # single use
        # A frame of another origin inside the mini-app tries the bridge: refused with a reason.
        app.locator("#load-foreign").click()
        expect(app.frame_locator("#foreign").locator("#answer")).to_have_text("origin_refused")
        expect(page.get_by_test_id("webapp-status")).to_contain_text("refused a bridge call from http://127.0.0.1:")
        # Alert and confirm are the shell's dialogs, naming the mini-app.
        dialog = page.get_by_test_id("shell-dialog")
        app.locator("#alert").click()
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text("Đoàn Thanh niên")
        expect(page.get_by_test_id("shell-dialog-text")).to_have_text("Đã lưu đăng ký")
        expect(page.get_by_test_id("shell-dialog-cancel")).to_be_hidden()
        page.get_by_test_id("shell-dialog-ok").click()
        expect(app.locator("#dialog-result")).to_have_text("alert closed")
        app.locator("#confirm").click()
        page.get_by_test_id("shell-dialog-ok").click()
        expect(app.locator("#dialog-result")).to_have_text("confirmed true")
        app.locator("#confirm").click()
        page.get_by_test_id("shell-dialog-cancel").click()
        expect(app.locator("#dialog-result")).to_have_text("confirmed false")
        # Share without a system share sheet: the shell shows what is shared; declining shares nothing.
        assert not page.evaluate("!!navigator.share")  # headless Chromium on Linux has no share sheet
        app.locator("#share").click()
        expect(page.get_by_test_id("shell-dialog-text")).to_have_text("Chủ nhật xanh")
        expect(page.get_by_test_id("shell-dialog-link")).to_have_text(f"{sample.url}/app?event=12")
        page.get_by_test_id("shell-dialog-cancel").click()
        expect(app.locator("#dialog-result")).to_have_text("shared false")
        # An outside link: the shell confirms, then opens it in a new page that cannot reach back (noopener).
        app.locator("#open-bad-link").click()
        expect(app.locator("#dialog-result")).to_contain_text("refused: invalid")
        app.locator("#open-link").click()
        expect(page.get_by_test_id("shell-dialog-link")).to_have_text(f"{sample.url}/about")
        expect(page.get_by_test_id("shell-dialog-text")).to_be_hidden()
        with context.expect_page() as opened:
            page.get_by_test_id("shell-dialog-ok").click()
        outside = opened.value
        outside.wait_for_load_state()
        assert outside.url == f"{sample.url}/about"
        assert outside.evaluate("window.opener === null")
        expect(app.locator("#dialog-result")).to_have_text("opened true")
        outside.close()
        # Opening another mini-app: an unknown one is refused; an available one replaces this one.
        app.locator("#other-id").fill("nobody_here")
        app.locator("#open-other").click()
        expect(app.locator("#open-result")).to_contain_text("refused: not_found")
        app.locator("#other-id").fill(other["id"])
        app.locator("#open-other").click()
        expect(page).to_have_url(re.compile(re.escape(other["entry_url"])))
        assert sub
    finally:
        context.close()
