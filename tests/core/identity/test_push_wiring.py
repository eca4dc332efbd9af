"""What core's pages use of push arrives through the composition root (core.app), not by importing push:
the home screen's unread badge and the profile page's followed units."""

from __future__ import annotations

import asyncio

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from core.notifications.models import UnitFollow
from tests.core.identity.conftest import Persona


def _follows(api: TestClient, user_id: int | None) -> set[str]:
    with Session(api.app.state.engine) as db:
        return set(db.exec(select(UnitFollow.unit_id).where(UnitFollow.user_id == user_id)))


def test_the_home_screen_shows_the_unread_badge(api: TestClient, resident_a: Persona) -> None:
    assert 'data-testid="home-unread"' not in api.get("/", headers=resident_a).text
    asyncio.run(api.app.state.notifier.notify(miniapp="core", topic="announcements", title={"vi": "t", "en": "t"},
                                              body={"vi": "b", "en": "b"}, units=["phu-xuan"]))
    home = api.get("/", headers=resident_a)
    assert home.status_code == 200
    assert 'data-testid="home-unread">1<' in home.text


def test_the_profile_page_follows_and_unfollows_units(api: TestClient, resident_a: Persona) -> None:
    form = {"display_name": "Lan", "home_unit_id": "phu-xuan", "locale": "vi", "quiet_start": "", "quiet_end": ""}
    saved = api.post("/me", data={**form, "follows": ["kim-long", "an-cuu"]}, headers=resident_a,
                     follow_redirects=False)
    assert saved.status_code == 303, saved.text
    assert _follows(api, resident_a.user_id) == {"kim-long", "an-cuu"}
    saved = api.post("/me", data={**form, "follows": ["an-cuu"]}, headers=resident_a, follow_redirects=False)
    assert saved.status_code == 303, saved.text
    assert _follows(api, resident_a.user_id) == {"an-cuu"}
