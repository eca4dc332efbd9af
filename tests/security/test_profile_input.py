"""PATCH /api/me: every bad value is a 422 naming its field, never a 500 or a value only one database
stores (issue 15)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from core.app import create_app
from core.identity import service
from core.identity.models import User, UserKind
from tests.conftest import base_settings


@pytest.fixture
def resident(database_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    app = create_app(base_settings(database_url=database_url, var_dir=tmp_path / "var"))
    with TestClient(app, raise_server_exceptions=False) as client:
        with Session(app.state.engine, expire_on_commit=False) as db:
            user = User(kind=UserKind.resident, display_name="Lan", phone="+84905344001", home_unit_id="phu-xuan")
            db.add(user)
            db.commit()
            pair = service.start_session(db, secret=app.state.settings.secret_key, user=user, method="test",
                                         client="pytest", address="127.0.0.1")
        yield client, {"Authorization": f"Bearer {pair.access_token}"}


@pytest.mark.parametrize(("body", "field"), [
    ({"home_unit_id": ""}, "body.home_unit_id"),
    ({"home_unit_id": "   "}, "body.home_unit_id"),
    ({"home_unit_id": "phu\x00xuan"}, "body.home_unit_id"),
    ({"home_unit_id": "x" * 65}, "body.home_unit_id"),
    ({"home_unit_id": "hue"}, "body.home_unit_id"),  # the city, not a commune or ward
    ({"display_name": "Lan\x00"}, "body.display_name"),
    ({"display_name": "\x07"}, "body.display_name"),
    ({"display_name": None}, "body.display_name"),
    ({"notification_prefs": None}, "body.notification_prefs"),
    ({"locale": ""}, "body.locale"),
])
def test_a_bad_profile_value_is_a_422_naming_the_field(resident, body: dict, field: str) -> None:
    client, headers = resident
    answer = client.patch("/api/me", json=body, headers=headers)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["field"] == field, answer.json()
    me = client.get("/api/me", headers=headers).json()
    assert me["home_unit_id"] == "phu-xuan" and me["display_name"] == "Lan"  # nothing was changed


def test_null_home_unit_and_locale_still_clear_them(resident) -> None:
    client, headers = resident
    answer = client.patch("/api/me", json={"home_unit_id": None, "locale": None, "display_name": " Lan Anh "},
                          headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["home_unit_id"] is None and answer.json()["display_name"] == "Lan Anh"
    assert client.patch("/api/me", json={"home_unit_id": " kim-long "}, headers=headers).json()["home_unit_id"] \
        == "kim-long"
