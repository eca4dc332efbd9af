"""In Chromium: a wrong address under /m/ or anywhere else is a page in the shell, in the chosen language,
with a way home; never raw JSON. A visitor of the flood map is not offered the officials' dashboard."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(("lang", "heading", "home"), [("vi", "Không tìm thấy trang", "Về trang chủ"),
                                                       ("en", "Page not found", "Go to the home screen")])
def test_wrong_addresses_are_pages_in_the_chosen_language(page, live_url: str, lang: str, heading: str,
                                                          home: str) -> None:
    for path in ("/m/no-such-app/", "/no/such/page", "/m/feedback/reports/abc"):
        answer = page.goto(f"{path}?lang={lang}")
        assert answer is not None and answer.status in (404, 422)
        assert answer.headers["content-type"].startswith("text/html")
        assert page.locator("html").get_attribute("lang") == lang
        assert page.locator(".topbar").count() == 1  # in the shell
        if answer.status == 404:
            assert page.locator("h1").inner_text() == heading
    page.get_by_test_id("error-home").click()
    page.wait_for_url("**/?lang=*")
    assert page.get_by_test_id("error-page").count() == 0


def test_the_flood_map_offers_no_dashboard_to_a_visitor(page, live_url: str) -> None:
    page.goto("/m/floodmap/?lang=vi")
    assert page.get_by_test_id("dashboard-link").count() == 0
    answer = page.goto("/m/floodmap/dashboard?lang=vi")
    assert answer is not None and "/auth/login" in page.url  # (and a page, not JSON)
