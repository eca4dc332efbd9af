"""The web shell in a real headless Chromium: home screen tiles open mini-apps."""


def test_home_shows_tiles_and_opens_a_miniapp(page) -> None:
    page.goto("/?lang=en")
    tile = page.locator('[data-miniapp="festival"] a')
    assert tile.inner_text().strip().endswith("Hue Festival")
    assert page.locator("#feed-heading").inner_text() == "News and warnings"
    # the shell is laid out for a phone: the tiles fit the viewport's width
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    tile.click()
    page.wait_for_url("**/m/festival/**")
    assert page.get_by_test_id("festival-title").inner_text() == "Hue Festival programme"


def test_home_in_vietnamese_by_default(page) -> None:
    page.goto("/")
    assert page.locator("html").get_attribute("lang") == "vi"
    assert page.locator('[data-miniapp="festival"] .name').inner_text() == "Festival Huế"
