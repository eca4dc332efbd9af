"""The warnings banner honours the units a resident follows, not only their home ward (issue 16)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlmodel import Session

from core.feed import service as feed
from tests.core.identity.conftest import Persona

TITLE = "Báo động III sông Hương tại Kim Long"


def _banner(api: TestClient, who: Persona) -> bool:
    html = api.get("/?lang=vi", headers=who).text
    return TITLE in html and 'data-testid="banner-warning"' in html


def test_a_followed_wards_warning_shows_until_unfollowed(api: TestClient, resident_a: Persona) -> None:
    with Session(api.app.state.engine) as db:
        feed.publish_item(db, author_unit_id="hue", author_user_id=None, kind="warning", severity="critical",
                          audience="everyone", title={"vi": TITLE, "en": "Alarm level III at Kim Long"},
                          body={"vi": "Di chuyển lên chỗ cao.", "en": "Move to higher ground."}, unit_ids=["kim-long"],
                          expires_at=datetime.now(UTC) + timedelta(hours=6))
    assert _banner(api, {}) is True  # a visitor with no place sees every warning in the city
    assert _banner(api, resident_a) is False  # Phú Xuân's resident: not their ward
    assert api.put("/api/me/follows/kim-long", headers=resident_a).status_code == 204
    assert _banner(api, resident_a) is True
    assert api.delete("/api/me/follows/kim-long", headers=resident_a).status_code == 204
    assert _banner(api, resident_a) is False
