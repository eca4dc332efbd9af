"""The demo in headless Chromium: the procedure dashboard shows Hue's published July 2025 figures, the
ranking puts the overdue unit last, and a ward official hands in the missing report through the form."""

from __future__ import annotations

from core.app import discover
from core.db import make_engine
from core.seed import DEMO_PASSWORD, seed_demo


def _seed(settings) -> None:
    engine = make_engine(settings.sqlalchemy_url)
    tasks = [m for m in discover(settings) if m.id == "tasks"]
    for _line in seed_demo(engine, tasks):
        pass
    engine.dispose()


def _sign_in(page, username: str, next_url: str) -> None:
    page.goto(f"/auth/login?next={next_url}")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", DEMO_PASSWORD)
    page.click("button[type=submit]")


def test_demo_dashboards_and_a_report_from_the_form(page, browser, live_url, settings) -> None:
    _seed(settings)
    _sign_in(page, "noivu.demo", "/m/tasks/procedures")
    page.wait_for_url("**/m/tasks/procedures")
    # Vietnamese number formats on a Vietnamese page
    assert page.get_by_test_id("city-received").inner_text() == "17.710"
    assert page.get_by_test_id("city-online-rate").inner_text() == "75,78%"
    assert "Phú Xuân" in page.get_by_test_id("most-received").inner_text()
    assert "1.758" in page.get_by_test_id("most-received").inner_text()
    assert "Hương An" in page.get_by_test_id("best-on-time").inner_text()
    assert "91% (309/338)" in page.get_by_test_id("best-on-time").inner_text()
    assert "99,59% (491/493)" in page.get_by_test_id("best-online").inner_text()
    assert page.locator("[data-testid=received-chart] rect").count() == 40

    page.goto("/m/tasks/procedures?lang=en")
    assert page.get_by_test_id("city-received").inner_text() == "17,710"
    page.goto("/m/tasks/rankings?lang=vi")
    last = page.locator("[data-testid=ranking] tbody tr").last
    assert last.get_attribute("data-unit") == "kim-long" and last.locator("td").nth(4).inner_text() == "1"
    assert page.locator("[data-testid=ranking-chart] rect").count() == 40
    page.goto("/m/tasks/rankings?period=2025-07&lang=en")
    assert "Closed period" in page.get_by_test_id("ranking-state").inner_text()

    page.goto("/m/tasks/?lang=vi")  # back to Vietnamese: the browser kept English since ?lang=en
    overdue = page.get_by_test_id("overdue-list")
    assert "Phường Kim Long" in overdue.inner_text()

    # Home Affairs assigns a new task to all 40 units from the form
    page.get_by_test_id("new-task").click()
    form = page.get_by_test_id("task-form")
    form.locator("input[name=title]").fill("Tổng hợp kết quả thi đua, khen thưởng")
    form.locator("input[name=deadline]").fill("2099-12-31")
    form.locator("select[name=assigner_unit_id]").select_option("so-noi-vu")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("[data-testid=task-title]")
    assert page.get_by_test_id("task-title").inner_text() == "Tổng hợp kết quả thi đua, khen thưởng"
    assert page.locator("[data-testid=assignments] tbody tr").count() == 40

    ward = browser.new_context(base_url=live_url, viewport={"width": 390, "height": 844}, locale="vi-VN")
    try:
        official = ward.new_page()
        _sign_in(official, "kimlong.demo", "/m/tasks/")
        official.wait_for_url("**/m/tasks/")
        official.get_by_test_id("overdue-list").locator("a").nth(1).click()
        assert "Quá hạn" in official.get_by_test_id("assignment-status").inner_text()
        form = official.get_by_test_id("report-form")
        form.locator("input[name=percent]").fill("100")
        form.locator("input[type=number][step=any]").fill("12")
        form.locator("input[name=note]").fill("Đã gửi danh sách")
        form.locator("input[name=complete]").check()
        form.locator("button[type=submit]").click()
        official.wait_for_selector("text=Chờ duyệt")
        assert "Đã gửi danh sách" in official.get_by_test_id("reports").inner_text()
        # the notification the overdue notice would bring links here; the status stays overdue until accepted
        assert "Quá hạn" in official.get_by_test_id("assignment-status").inner_text()
    finally:
        ward.close()
