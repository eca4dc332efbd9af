"""Headless Chromium, on SQLite and PostgreSQL: an operator administers officials from /admin and finds each
step in the audit log page (vi and en); the home screen and the shell draw the product's SVG icons; the web
app manifest and the root service worker install; a report drafted offline is kept on the device and sent
once the browser is back online."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlmodel import Session, select

from config import Settings
from core.db import make_engine
from core.icons import ICONS
from core.identity import service as identity
from miniapps.feedback import service as feedback
from tests.conftest import base_settings
from tests.core.identity.conftest import PASSWORD
from tests.miniapps.feedback.conftest import PHU_XUAN, jpeg


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """The page host on both databases, without a base map (tests never reach a tile server)."""
    return base_settings(database_url=database_url, var_dir=tmp_path / "var", map_tile_url="")


@dataclass(frozen=True)
class Tokens:
    """Browser sessions of the people in these tests."""

    operator: str
    commune: str
    resident: str
    resident_id: int


@pytest.fixture
def tokens(settings: Settings) -> Tokens:
    """The IOC operator who also holds the admin role, a ward official, and a Phú Xuân resident."""
    engine = make_engine(settings.database_url)
    try:
        with Session(engine, expire_on_commit=False) as db:
            def web(user, method: str) -> str:
                return identity.start_session(db, secret=settings.secret_key, user=user, method=method,
                                              client="web", address="127.0.0.1", web=True).access_token

            operator = identity.create_official(db, username="ioc.admin", display_name="Trực IOC",
                                                password=PASSWORD, memberships=[("operator", "hue"), ("admin", "hue")])
            commune = identity.create_official(db, username="px.admin", display_name="Cán bộ Phú Xuân",
                                               password=PASSWORD, memberships=[("commune_official", "phu-xuan")])
            resident = identity.find_or_create_resident(db, firebase_uid="offline-fb", phone="+84905777001",
                                                        address=None)
            resident.home_unit_id = "phu-xuan"
            db.add(resident)
            db.commit()
            feedback.load_categories(db)  # PostgreSQL's tables are emptied between tests, categories too
            db.commit()
            return Tokens(web(operator, "password"), web(commune, "password"), web(resident, "firebase"),
                          resident.id or 0)
    finally:
        engine.dispose()


def signed_in(page, live_url: str, token: str) -> None:
    page.context.clear_cookies()
    page.context.add_cookies([{"name": "superapp_session", "value": token, "url": live_url}])


TEXT = {
    "vi": {"created": "Đã tạo tài khoản.", "role_added": "Đã thêm vai trò.",
           "password": "Đã đặt mật khẩu mới; các phiên đăng nhập cũ đã kết thúc.", "audit": "Nhật ký kiểm toán",
           "forbidden": "Không có quyền"},
    "en": {"created": "Account created.", "role_added": "Role added.",
           "password": "New password set; the old sessions have ended.", "audit": "Audit log",
           "forbidden": "Not allowed"},
}


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_an_operator_administers_an_official_and_finds_each_step_in_the_audit_log(
        page, live_url: str, tokens: Tokens, lang: str) -> None:
    text = TEXT[lang]
    username = f"kl.{lang}.moi"
    signed_in(page, live_url, tokens.operator)
    page.goto(f"/?lang={lang}")
    page.get_by_test_id("nav-admin").click()
    page.wait_for_url("**/admin?*")
    page.get_by_test_id("admin-officials").click()

    # a refused form keeps what was typed and names the field in the page's language
    page.get_by_test_id("new-username").fill(username)
    page.get_by_test_id("new-display_name").fill("Cán bộ Kim Long")
    page.get_by_test_id("new-password").fill("ngan")
    page.get_by_test_id("new-role").select_option("commune_official")
    page.get_by_test_id("new-unit").select_option("kim-long")
    page.get_by_test_id("create").click()
    page.wait_for_load_state()
    assert page.locator('[data-field="password"]').count() == 1
    assert page.get_by_test_id("new-username").input_value() == username

    # create with an initial password
    page.get_by_test_id("new-password").fill("Ban-dau-Kim-Long-2025")
    page.get_by_test_id("create").click()
    page.wait_for_url("**/admin/officials/*")
    assert page.get_by_test_id("done").inner_text() == text["created"]
    assert page.locator("html").get_attribute("lang") == lang
    official_url = page.url.split("?")[0]

    # give a role in a department, then reset the password
    page.get_by_test_id("add-role").select_option("department_official")
    page.get_by_test_id("add-unit").select_option("so-noi-vu")
    page.get_by_test_id("add-membership-submit").click()
    page.wait_for_url("**done=role_added*")
    assert page.get_by_test_id("done").inner_text() == text["role_added"]
    roles = {(m.get_attribute("data-role"), m.get_attribute("data-unit"))
             for m in page.get_by_test_id("membership").all()}
    assert roles == {("commune_official", "kim-long"), ("department_official", "so-noi-vu")}
    page.get_by_test_id("new-password").fill("Mat-khau-moi-Kim-Long-2026")
    page.get_by_test_id("reset-password-submit").click()
    page.wait_for_url("**done=password*")
    assert page.get_by_test_id("done").inner_text() == text["password"]

    # the new password signs the official in; the initial one no longer does
    new = page.request.post("/api/auth/login", data={"username": username, "password": "Mat-khau-moi-Kim-Long-2026"})
    old = page.request.post("/api/auth/login", data={"username": username, "password": "Ban-dau-Kim-Long-2025"})
    assert (new.status, old.status) == (200, 401)

    # each step is in the audit log page, filtered by action, about this official, done by the operator
    page.goto(f"/admin?lang={lang}")
    page.get_by_test_id("admin-audit").click()
    assert page.locator("h1").inner_text() == text["audit"]
    for action in ("user_created", "membership_added", "password_reset"):
        page.get_by_test_id("filter-action").select_option(action)
        page.get_by_test_id("filter-actor").fill("ioc.admin")
        page.get_by_test_id("filter-submit").click()
        page.wait_for_url(f"**action={action}*")
        rows = page.get_by_test_id("audit-event")
        assert {r.get_attribute("data-action") for r in rows.all()} == {action}
        assert username in [r.get_attribute("data-subject") for r in rows.all()], action
    # a date range that ends before today finds none of it
    page.goto(f"/admin/audit?action=password_reset&until=2020-01-01&lang={lang}")
    assert page.get_by_test_id("audit-event").count() == 0
    assert page.get_by_test_id("audit-empty").count() == 1

    # a ward official reaches neither the menu nor the officials' pages: the localized 403 page
    signed_in(page, live_url, tokens.commune)
    for path in ("/admin", "/admin/audit", official_url.replace(live_url, "")):
        answer = page.goto(f"{path}?lang={lang}")
        assert answer.status == 403, path
        assert page.get_by_test_id("error-page").get_attribute("data-status") == "403"
        assert page.locator("h1").inner_text() == text["forbidden"]
    assert page.get_by_test_id("nav-admin").count() == 0


def test_the_home_screen_and_the_navigation_draw_svg_icons(page, live_url: str, tokens: Tokens) -> None:
    page.goto("/?lang=en")
    for miniapp, icon in (("feedback", "report"), ("floodmap", "flood")):
        use = page.locator(f'[data-miniapp="{miniapp}"] svg[data-testid="tile-icon"] use')
        assert use.get_attribute("href") == f"/static/core/icons.svg#{icon}"
        box = page.locator(f'[data-miniapp="{miniapp}"] svg').bounding_box()
        assert box and box["width"] >= 24 and box["height"] >= 24
    # the built-in tiles carry no emoji any more; an outside mini-app naming an emoji keeps it, as text
    for miniapp in ("feedback", "floodmap"):
        assert page.locator(f'[data-miniapp="{miniapp}"] span.icon').count() == 0
    assert page.locator(".shell-nav svg use").count() >= 3
    # the sprite is served and holds every icon the code names
    sprite = page.request.get("/static/core/icons.svg")
    assert sprite.status == 200 and "svg" in sprite.headers["content-type"]
    for name in ICONS:
        assert f'<symbol id="{name}"' in sprite.text(), name
    # signed in as the operator, the officials' tiles use the set too
    signed_in(page, live_url, tokens.operator)
    page.goto("/?lang=vi")
    hrefs = {u.get_attribute("href") for u in page.locator(".tiles svg use").all()}
    assert {"/static/core/icons.svg#chat", "/static/core/icons.svg#tasks"} <= hrefs


def test_the_app_installs_with_a_localized_manifest_and_a_root_service_worker(page, live_url: str) -> None:
    page.goto("/?lang=vi")
    href = page.locator('link[rel="manifest"]').get_attribute("href")
    manifest = page.request.get(href)
    assert manifest.headers["content-type"].startswith("application/manifest+json")
    body = manifest.json()
    assert body["name"].startswith("Huế-S") and body["lang"] == "vi" and body["display"] == "standalone"
    assert page.request.get("/manifest.webmanifest?lang=en").json()["name"].startswith("Hue-S")
    for icon in body["icons"]:
        assert page.request.get(icon["src"]).status == 200, icon
    scope = page.evaluate("navigator.serviceWorker.ready.then(r => r.scope)")
    assert scope == live_url + "/"
    # the worker keeps the shell's stylesheet and icon set
    cached = page.evaluate("""async () => { const keys = await caches.keys();
        const names = []; for (const k of keys) { for (const r of await (await caches.open(k)).keys())
        names.push(new URL(r.url).pathname); } return names; }""")
    assert {"/static/core/shell.css", "/static/core/icons.svg"} <= set(cached)


def test_a_report_drafted_offline_is_sent_when_back_online(page, live_url: str, tokens: Tokens,
                                                           settings: Settings, tmp_path: Path) -> None:
    from miniapps.feedback.models import FeedbackReport

    photo = tmp_path / "rac.jpg"
    photo.write_bytes(jpeg((800, 600), gps=PHU_XUAN))
    signed_in(page, live_url, tokens.resident)
    page.goto("/m/feedback/new?lang=en")
    page.context.set_offline(True)
    page.locator("#category_id").select_option("trash")
    page.locator("#description").fill("Rác đổ trộm ở bờ sông, soạn lúc mất mạng")
    page.locator("#photos").set_input_files(str(photo))
    # the photo's place is read on the device; the ward look-up needs the network and waits for the server
    expect(page.locator("#lat")).not_to_have_value("")
    page.get_by_test_id("submit-report").click()
    status = page.get_by_test_id("draft-status")
    expect(status).to_be_visible()
    assert status.inner_text().startswith("No connection: the report is kept on this device")
    expect(page.locator("body")).to_have_attribute("data-drafts", "1")
    engine = make_engine(settings.database_url)
    try:
        with Session(engine) as db:
            assert db.exec(select(FeedbackReport)).all() == []  # nothing reached the server

        page.context.set_offline(False)
        expect(page.get_by_test_id("draft-sent-link")).to_be_visible(timeout=15_000)
        assert status.inner_text().startswith("The report drafted offline has been sent.")
        expect(page.locator("body")).to_have_attribute("data-drafts", "0")
        with Session(engine) as db:
            reports = db.exec(select(FeedbackReport)).all()
        assert [(r.reporter_id, r.category_id, r.unit_id) for r in reports] == [(tokens.resident_id, "trash", "phu-xuan")]
    finally:
        engine.dispose()
    page.get_by_test_id("draft-sent-link").click()
    page.wait_for_url(f"**/m/feedback/reports/{reports[0].id}*")
    assert page.get_by_test_id("photo-report").count() == 1  # the photo came with the draft
    page.goto("/m/feedback/mine?lang=en")
    mine = page.get_by_test_id("my-report")
    assert mine.count() == 1 and "soạn lúc mất mạng" in mine.inner_text()


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_the_admin_menu_leads_to_the_miniapps_tables(page, live_url: str, tokens: Tokens, lang: str) -> None:
    signed_in(page, live_url, tokens.operator)
    page.goto(f"/admin?lang={lang}")
    page.get_by_test_id("admin-feedback-categories").click()
    page.wait_for_url("**/m/feedback/admin/categories*")
    # route street lighting to the ward or commune, with a shorter deadline
    row = page.locator('[data-testid="category-row"][data-category="lighting"]')
    row.get_by_test_id("category-department").select_option("")
    row.get_by_test_id("category-hours").fill("48")
    row.get_by_test_id("category-save").click()
    page.wait_for_url("**saved=lighting*")
    row = page.locator('[data-testid="category-row"][data-category="lighting"]')
    assert row.get_by_test_id("category-department").input_value() == ""
    assert row.get_by_test_id("category-hours").input_value() == "48"
    # a refused new category names its field and keeps what was typed
    new = page.get_by_test_id("category-new")
    new.get_by_test_id("category-id").fill("Sai Ma")
    new.get_by_test_id("category-name-vi").fill("Cống hở")
    new.get_by_test_id("category-name-en").fill("Open drains")
    new.get_by_test_id("category-save").click()
    page.wait_for_load_state()
    new = page.get_by_test_id("category-new")
    assert new.locator('[data-field="id"]').count() == 1
    assert new.get_by_test_id("category-name-vi").input_value() == "Cống hở"

    page.goto(f"/admin?lang={lang}")
    page.get_by_test_id("admin-interaction-fields").click()
    page.wait_for_url("**/m/interaction/admin/fields*")
    row = page.get_by_test_id("field-row").first
    key = row.get_attribute("data-key")
    row.get_by_test_id("field-department").select_option("so-noi-vu")
    row.get_by_test_id("field-save").click()
    page.wait_for_url("**saved=*")
    assert page.locator(f'[data-testid="field-row"][data-key="{key}"]').get_attribute("data-department") == "so-noi-vu"

    # a ward official is refused both tables
    signed_in(page, live_url, tokens.commune)
    for path in ("/m/feedback/admin/categories", "/m/interaction/admin/fields"):
        assert page.goto(f"{path}?lang={lang}").status == 403, path
