"""Issue 16's "done when", each persona's journey in headless Chromium, in Vietnamese and English, at phone
(390x844) and desktop (1366x768) sizes, on SQLite and on PostgreSQL.

A resident signs in with a phone number (the development code), sets a home ward, files a report with a
photo and sees the right ward chosen; a neighbour follows it; a commune official handles it; both get each
step in a linked inbox; the inbox prompts the resident to rate it until they do. A signed-out visitor sees
the active flood warning on the home screen. A department answers a commune's question while the asker
watches. An operator reads the dashboards at desktop width.

One served app and one browser per database for the whole module: the four language x size variants
share them (each variant has its own resident, report and question). Every page a journey loads is HTML
(no raw JSON), raises no script error, fits the screen, and on the SQLite pass has no critical or serious
axe-core violation, scanned in Vietnamese at phone size and English at desktop size (accessibility does
not depend on the database, so the PostgreSQL pass skips the scan).
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from playwright.sync_api import expect
from sqlmodel import Session

from core.app import create_app
from core.db import make_engine
from core.feed import service as feed
from core.identity import passwords
from core.identity import service as identity
from miniapps.feedback import service as feedback
from tests.browser import serve
from tests.conftest import _truncate, base_settings
from tests.miniapps.feedback.conftest import jpeg

axe_module = pytest.importorskip("axe_playwright_python.sync_playwright")

VARIANTS = {
    "vi-phone": ("vi", {"width": 390, "height": 844}),
    "en-phone": ("en", {"width": 390, "height": 844}),
    "vi-desktop": ("vi", {"width": 1366, "height": 768}),
    "en-desktop": ("en", {"width": 1366, "height": 768}),
}
PASSWORD = "Hue-2025-hanh-trinh"
# username -> (role, unit)
OFFICIALS = {
    "kimlong.j": ("commune_official", "kim-long"),
    "phuvang.j": ("commune_official", "phu-vang"),
    "nnmt.j": ("department_official", "so-nnmt"),
    "ops.j": ("operator", "hue"),
}
KIM_LONG_STREET = (16.4625, 107.5620)  # the old Kim Long ward's street: the new Kim Long ward, not Thuan Hoa
WARD = {"vi": "Phường Kim Long", "en": "Ward Kim Long"}
WARNING = {"vi": "Báo động III sông Hương tại Kim Long", "en": "Alarm level III on the Huong River at Kim Long"}
EMERGENCY = {"vi": "Khẩn cấp", "en": "Emergency"}
STEPS = ("submitted", "accepted", "in_progress", "resolved")
RATE = {"vi": "Đánh giá", "en": "Rate it"}
DEPARTMENT = "Sở Nông nghiệp và Môi trường"
# axe-core at one size per language (as tests/test_accessibility_browser.py): a scan costs about a second
SCANNED = {"vi-phone", "en-desktop"}
DASHBOARDS = ["/m/feedback/dashboard", "/m/floodmap/dashboard", "/m/tasks/", "/m/tasks/rankings"]


@dataclass
class City:
    """The served host of this module's pass: its URL, app, the warning's id and what was found."""

    url: str
    app: Any
    warning_id: int
    scan: bool  # run axe-core (the SQLite pass; see SCANNED)
    neighbour_token: str
    signed_in: dict[str, Any] = field(default_factory=dict)  # username -> Playwright storage state


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def city(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    """A development host (the dev code exists only there) with the journeys' officials and an active warning."""
    tmp = tmp_path_factory.mktemp("journeys")
    if request.param == "sqlite":
        shutil.copy(request.getfixturevalue("sqlite_template"), tmp / "city.db")
        url = f"sqlite:///{tmp / 'city.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    settings = base_settings(database_url=url, env="dev", var_dir=tmp / "var", map_tile_url="")
    try:
        warning_id, neighbour = _seed(settings)
        app = create_app(settings)
        with serve(app) as base:
            yield City(base, app, warning_id, request.param == "sqlite", neighbour)
    finally:
        if request.param == "postgresql":
            _truncate(url)


def _seed(settings) -> tuple[int, str]:
    engine = make_engine(settings.database_url)
    real_hasher = passwords._hasher
    # the journeys measure pages, not password hashing: cheap argon2 parameters while the accounts are made
    passwords._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    try:
        with Session(engine, expire_on_commit=False) as db:
            feedback.load_categories(db)
            for username, (role, unit) in OFFICIALS.items():
                identity.create_official(db, username=username, display_name=f"Cán bộ {unit}", password=PASSWORD,
                                         memberships=[(role, unit)])
            neighbour = identity.find_or_create_resident(db, firebase_uid="neighbour", phone="+84905111222",
                                                         address=None)
            neighbour.home_unit_id = "kim-long"
            db.add(neighbour)
            db.commit()
            token = identity.start_session(db, secret=settings.secret_key, user=neighbour, method="firebase",
                                           client="web", address="127.0.0.1", web=True).access_token
            item = feed.publish_item(
                db, author_unit_id="hue", author_user_id=None, kind="warning", severity="critical",
                audience="everyone", title=WARNING, body={"vi": "Di chuyển lên chỗ cao.", "en": "Move to higher ground."},
                unit_ids=["kim-long"], expires_at=datetime.now(UTC) + timedelta(hours=6))
            return item.id or 0, token
    finally:
        passwords._hasher = real_hasher
        engine.dispose()


class Walk:
    """One persona's browser context: checks every page it loads (HTML, no script error, axe) as it goes."""

    def __init__(self, browser, city: City, variant: str, **context: Any) -> None:
        locale, viewport = VARIANTS[variant]
        self.city, self.locale, self.viewport = city, locale, viewport
        self.scan = city.scan and variant in SCANNED
        self.context = browser.new_context(viewport=viewport, base_url=city.url, locale="vi-VN", **context)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.not_html: list[str] = []
        self.violations: dict[str, list[str]] = {}
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("response", self._check_response)

    def _check_response(self, response) -> None:
        request = response.request
        if request.is_navigation_request() and request.frame == self.page.main_frame and response.status < 300:
            if not response.headers.get("content-type", "").startswith("text/html"):
                self.not_html.append(f"{response.status} {response.url} {response.headers.get('content-type')}")

    def goto(self, path: str) -> None:
        """Load ``path`` in the walk's language."""
        self.page.goto(f"{path}{'&' if '?' in path else '?'}lang={self.locale}")

    def check(self) -> None:
        """The page now shown: in the walk's language, no wider than the screen, and (SQLite pass) axe-clean."""
        page = self.page
        where = page.url.replace(self.city.url, "")
        assert page.locator("html").get_attribute("lang") == self.locale, where
        assert page.evaluate("document.documentElement.scrollWidth") <= self.viewport["width"], where
        if self.scan:
            found = [f"{v['id']} ({v['impact']}): {v['nodes'][0]['target']}"
                     for v in axe_module.Axe().run(page).response["violations"] if v["impact"] in ("critical", "serious")]
            if found:
                self.violations[where] = found

    def sign_in_official(self, username: str, target: str) -> None:
        """An official's session: the officials' form the first time in this pass, the kept cookies after."""
        kept = self.city.signed_in.get(username)
        if kept:
            self.context.add_cookies(kept["cookies"])
            self.goto(target)
            return
        self.goto(f"/auth/login?next={target}")
        self.check()
        self.page.fill("input[name=username]", username)
        self.page.fill("input[name=password]", PASSWORD)
        self.page.locator('form.form button[type="submit"]').click()
        self.page.wait_for_url(f"**{target}*")
        self.city.signed_in[username] = self.context.storage_state()

    def done(self) -> None:
        """Close the context, then fail on anything found on the way."""
        self.context.close()
        assert self.errors == [], self.errors
        assert self.not_html == [], self.not_html
        assert self.violations == {}, self.violations


@pytest.fixture
def walks(browser, city: City) -> Iterator[list[Walk]]:
    """The persona walks a test opens; each is closed (and checked) at the end."""
    opened: list[Walk] = []
    yield opened
    for walk in opened:
        walk.done()


def _walk(walks: list[Walk], browser, city: City, variant: str, **context: Any) -> Walk:
    walk = Walk(browser, city, variant, **context)
    walks.append(walk)
    return walk


def _dev_code(caplog: pytest.LogCaptureFixture, phone: str) -> str:
    found = re.findall(rf"development sign-in code for \{phone}: (\d{{6}})", caplog.text)
    assert found, "no development code was written to the log"
    return found[-1]


def _take(page, action: str, **fields: str) -> None:
    form = page.get_by_test_id(f"action-{action}")
    for name, value in fields.items():
        form.locator(f'[name="{name}"]').fill(value)
    form.locator('button[type="submit"]').click()
    page.wait_for_load_state()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_resident_reports_official_handles_neighbour_follows_resident_rates(
        variant: str, browser, city: City, walks: list[Walk], caplog: pytest.LogCaptureFixture,
        tmp_path: Path) -> None:
    caplog.set_level(logging.WARNING, logger="core.identity.routes")
    n = list(VARIANTS).index(variant)
    phone = f"+8490524681{n}"
    resident = _walk(walks, browser, city, variant)
    locale, page = resident.locale, resident.page

    # Sign in with a phone number and the development code, on the way to filing a report.
    resident.goto("/m/feedback/new")
    page.wait_for_url("**/auth/phone?next=/m/feedback/new*")
    resident.check()
    page.get_by_test_id("phone").fill(f"0{phone[3:6]} {phone[6:9]} {phone[9:]}")
    page.get_by_test_id("send-code").click()
    page.get_by_test_id("code-sent").wait_for()
    page.get_by_test_id("code").fill(_dev_code(caplog, phone))
    page.get_by_test_id("verify-code").click()

    # First run: the home ward, then on to the report form.
    page.wait_for_url("**/me/home?first=1&next=/m/feedback/new*")
    resident.check()
    page.get_by_test_id("home-ward").select_option("kim-long")
    page.get_by_test_id("save-home-ward").click()
    page.wait_for_url("**/m/feedback/new?*")
    resident.check()

    # A photo taken on Kim Long street places the report and chooses Kim Long ward, shown before sending.
    photo = tmp_path / "den-duong.jpg"
    photo.write_bytes(jpeg((1600, 1200), gps=KIM_LONG_STREET))
    description = f"Đèn đường hỏng trên đường Kim Long ({variant})"
    page.locator("#category_id").select_option("public-order")
    page.locator("#description").fill(description)
    page.locator("#photos").set_input_files(str(photo))
    # the ward is looked up on the server (the first lookup loads the ward data, slow on a busy machine)
    expect(page.locator("#pick-map")).to_have_attribute("data-located", "1", timeout=30_000)
    expect(page.locator("#unit_id")).to_have_value("kim-long")
    assert WARD[locale] in page.get_by_test_id("place-status").inner_text()
    page.get_by_test_id("submit-report").click()
    page.wait_for_url("**/m/feedback/reports/*")
    report_path = page.url.replace(city.url, "").split("?")[0]
    report_id = int(report_path.rsplit("/", 1)[1])
    assert WARD[locale] in page.get_by_test_id("handling-unit").inner_text()
    resident.check()

    # A neighbour follows it instead of filing the same thing again.
    neighbour = _walk(walks, browser, city, variant)
    neighbour.context.add_cookies([{"name": "superapp_session", "value": city.neighbour_token, "url": city.url}])
    neighbour.goto(report_path)
    neighbour.page.get_by_test_id("follow").click()
    neighbour.page.wait_for_load_state()
    assert neighbour.page.get_by_test_id("follow").count() == 0
    neighbour.check()

    # Kim Long's official finds it in the queue and handles it through to resolved.
    official = _walk(walks, browser, city, variant)
    official.sign_in_official("kimlong.j", "/m/feedback/queue")
    official.check()
    row = official.page.locator(f'[data-testid="queue-row"][data-report="{report_id}"]')
    row.locator("a").first.click()
    official.page.wait_for_url(f"**{report_path}*")
    official.check()
    _take(official.page, "accept")
    _take(official.page, "start")
    _take(official.page, "resolve", response={"vi": "Đã thay bóng đèn.", "en": "The lamp is replaced."}[locale])
    assert official.page.get_by_test_id("report-state").get_attribute("data-state") == "resolved"
    official.check()

    # Each step reaches the resident's and the neighbour's linked inbox, in the page's language.
    steps = [f"{ {'vi': 'Phản ánh', 'en': 'Report'}[locale]} #{report_id}: {feedback.STATE_NAMES[s][locale]}"
             for s in STEPS]
    for walk, expected in ((resident, steps), (neighbour, steps[1:])):  # the neighbour followed after filing
        walk.goto("/inbox")
        items = walk.page.get_by_test_id("inbox-item")
        titles = [t for t in items.locator("strong").all_inner_texts() if f"#{report_id}:" in t]
        assert titles == expected[::-1], titles
        assert all(re.fullmatch(r"/inbox/\d+/open", href or "")
                   for href in items.locator("a.open").evaluate_all("links => links.map(a => a.getAttribute('href'))"))
        walk.check()

    # The resident's inbox asks them to rate it; the prompt leads to the rating form.
    prompt = page.get_by_test_id("prompt")
    assert prompt.count() == 1 and f"#{report_id}" in prompt.inner_text()
    assert prompt.get_by_test_id("prompt-action").inner_text() == RATE[locale]
    assert page.get_by_test_id("item-prompt").count() == 1  # beside the resolution notice
    prompt.get_by_test_id("prompt-action").click()
    page.wait_for_url(f"**{report_path}#rate")
    resident.check()
    page.get_by_test_id("stars-5").check()
    page.locator("#comment").fill({"vi": "Sửa nhanh, cảm ơn", "en": "Quick, thank you"}[locale])
    page.get_by_test_id("rate-form").locator('button[type="submit"]').click()
    page.wait_for_load_state()
    assert page.get_by_test_id("report-state").get_attribute("data-state") == "closed"
    resident.goto("/inbox")
    assert page.get_by_test_id("prompt").count() == 0 and page.get_by_test_id("item-prompt").count() == 0

    # The home screen counts what is unread, linked to the inbox.
    resident.goto("/")
    resident.check()
    assert page.get_by_test_id("inbox-link").is_visible()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_signed_out_visitor_sees_the_flood_warning_on_the_home_screen(variant: str, browser, city: City,
                                                                      walks: list[Walk]) -> None:
    visitor = _walk(walks, browser, city, variant)
    locale, page = visitor.locale, visitor.page
    visitor.goto("/")
    warning = page.get_by_test_id("warning-banner").get_by_test_id("banner-warning")
    assert WARNING[locale] in warning.inner_text() and EMERGENCY[locale] in warning.inner_text()
    visitor.check()
    warning.click()
    page.wait_for_url(f"**/warnings/{city.warning_id}")
    assert page.get_by_test_id("warning-title").inner_text() == WARNING[locale]
    visitor.check()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_a_department_answers_a_communes_question_live(variant: str, browser, city: City,
                                                       walks: list[Walk]) -> None:
    asker = _walk(walks, browser, city, variant)
    department = _walk(walks, browser, city, variant)
    locale = asker.locale
    title = f"Thu hồi đất nông nghiệp để mở đường liên thôn ({variant})"
    answer = f"UBND xã lập phương án thu hồi và trình UBND thành phố phê duyệt ({variant})."

    asker.sign_in_official("phuvang.j", "/m/interaction/ask")
    asker.check()
    asker.page.select_option("[data-testid=ask-field]", "land")
    asker.page.get_by_test_id("ask-title").fill(title)
    asker.page.get_by_test_id("ask-body").fill("Xã có thẩm quyền thu hồi đất nông nghiệp để mở đường không?")
    asker.page.get_by_test_id("ask-submit").click()
    asker.page.wait_for_url("**/m/interaction/questions/**")
    assert DEPARTMENT in asker.page.get_by_test_id("route").inner_text() or locale == "en"
    asker.page.wait_for_selector("[data-testid=live-status][data-state=live]", timeout=10_000)
    asker.check()
    asker.page.evaluate("window.__stillTheSamePage = true")

    department.sign_in_official("nnmt.j", "/m/interaction/inbox?box=new")
    department.check()
    department.page.get_by_test_id("inbox-list").get_by_text(title).click()
    department.check()
    department.page.get_by_test_id("reply-body").fill(answer)
    department.page.get_by_test_id("send-answer").click()
    department.page.wait_for_url("**#reply-*")

    asker.page.wait_for_selector(f"[data-testid=thread] [data-testid=reply] >> text={answer}", timeout=10_000)
    assert asker.page.evaluate("window.__stillTheSamePage") is True
    live = asker.page.locator("[data-testid=thread] [data-testid=reply]").last
    assert "[object Object]" not in live.inner_text()
    live.get_by_test_id("accept").click()
    asker.page.wait_for_selector("[data-testid=accepted]")
    asker.check()


@pytest.mark.parametrize("variant", [v for v in VARIANTS if v.endswith("desktop")])
def test_an_operator_reads_the_dashboards_at_desktop_width(variant: str, browser, city: City,
                                                           walks: list[Walk]) -> None:
    operator = _walk(walks, browser, city, variant)
    operator.sign_in_official("ops.j", DASHBOARDS[0])
    for path in DASHBOARDS:
        operator.goto(path)
        width = operator.page.evaluate("document.querySelector('main').getBoundingClientRect().width")
        assert width > 1000, (path, width)
        operator.check()
