"""The inbox page in headless Chromium: a notification sent through the API appears without reload."""

from __future__ import annotations

import httpx
from sqlmodel import Session

from core.db import make_engine
from core.identity.service import create_official, start_session
from tests.conftest import TEST_SECRET

PASSWORD = "Hue-2025-strong-pw"


def _officials(settings) -> str:
    engine = make_engine(settings.sqlalchemy_url)
    with Session(engine, expire_on_commit=False) as db:
        create_official(db, username="px.reader", display_name="Lê Văn Đọc", password=PASSWORD,
                        memberships=[("commune_official", "phu-xuan")])
        operator = create_official(db, username="ops.sender", display_name="Trung tâm", password=PASSWORD,
                                   memberships=[("operator", "hue")])
        token = start_session(db, secret=TEST_SECRET, user=operator, method="test", client=None,
                              address=None).access_token
    engine.dispose()
    return token


def test_notification_appears_live_on_the_open_inbox_page(page, live_url, settings) -> None:
    operator_token = _officials(settings)
    page.goto("/auth/login?next=%2Finbox%3Flang%3Den&lang=en")
    page.fill("input[name=username]", "px.reader")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/inbox?lang=en")
    page.wait_for_selector("[data-testid=live-status][data-state=live]", timeout=10_000)
    assert page.get_by_test_id("unread").inner_text() == "0"

    sent = httpx.post(f"{live_url}/api/notifications", headers={"Authorization": f"Bearer {operator_token}"},
                      json={"title": {"vi": "Họp giao ban", "en": "Briefing at 14:00"},
                            "body": {"vi": "Phòng họp số 2", "en": "Meeting room 2"},
                            "roles": [["commune_official", "phu-xuan"]]})
    assert sent.status_code == 202, sent.text
    page.wait_for_selector("text=Briefing at 14:00", timeout=10_000)
    assert page.get_by_test_id("unread").inner_text() == "1"

