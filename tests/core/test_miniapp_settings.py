"""Mini-app settings: admins edit them (API and generated form), secrets are encrypted, mini-apps read them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlmodel import Session

from config import Settings
from core.app import create_app
from core.identity import service
from plugins.manager import load_miniapps
from plugins.registry import ContractError
from tests.plugins.sample import candidate

URL = "/api/admin/miniapps/festival/settings"
PAGE = "/admin/miniapps/festival/settings"


def _signed_in(client: TestClient, name: str, role: str, unit: str) -> dict[str, str]:
    with Session(client.app.state.engine) as db:
        user = service.create_official(db, username=name, display_name=name, password="Sen-Hue-2025-vang",
                                       memberships=[(role, unit)])
        pair = service.start_session(db, secret=client.app.state.settings.secret_key, user=user, method="test",
                                     client="pytest", address="127.0.0.1")
    return {"Authorization": f"Bearer {pair.access_token}"}


@pytest.fixture
def api(database_url: str, tmp_path) -> Iterator[TestClient]:
    from tests.conftest import base_settings

    with TestClient(create_app(base_settings(database_url=database_url, var_dir=tmp_path))) as client:
        yield client


@pytest.fixture
def admin(api: TestClient) -> dict[str, str]:
    return _signed_in(api, "settings.admin", "admin", "hue")


def test_defaults_then_a_change_reaches_the_mini_app(api: TestClient, admin: dict[str, str]) -> None:
    described = api.get(URL, headers=admin).json()
    assert described["values"] == {"max_events": 50, "ordering": "soonest", "show_venue": True,
                                   "ticket_office_url": ""}
    assert described["secrets"] == {"tickets_api_key": False}
    assert described["schema"]["properties"]["max_events"]["maximum"] == 500

    changed = api.patch(URL, headers=admin, json={"max_events": 1, "tickets_api_key": "tk-live-0042"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["values"]["max_events"] == 1 and changed.json()["secrets"] == {"tickets_api_key": True}
    assert "tk-live-0042" not in changed.text
    current = api.app.state.miniapp_settings.get("festival")
    assert current.max_events == 1 and current.tickets_api_key.get_secret_value() == "tk-live-0042"


def test_the_secret_is_encrypted_at_rest_and_survives_a_restart(api: TestClient, admin: dict[str, str],
                                                                database_url: str, tmp_path) -> None:
    from tests.conftest import base_settings

    api.patch(URL, headers=admin, json={"tickets_api_key": "tk-live-0042"})
    with api.app.state.engine.connect() as connection:
        raw = connection.execute(text("SELECT secrets FROM miniapp_settings WHERE miniapp = 'festival'")).scalar_one()
    assert "tk-live-0042" not in str(raw) and "tickets_api_key" in str(raw)
    fresh = create_app(base_settings(database_url=database_url, var_dir=tmp_path))
    assert fresh.state.miniapp_settings.get("festival").tickets_api_key.get_secret_value() == "tk-live-0042"
    # another secret key cannot read it: the mini-app gets the default, not garbage
    other = create_app(base_settings(database_url=database_url, var_dir=tmp_path,
                                     secret_key="another-secret-key-0123456789abcdef"))
    assert other.state.miniapp_settings.get("festival").tickets_api_key.get_secret_value() == ""


def test_the_programme_api_follows_the_settings(api: TestClient, admin: dict[str, str]) -> None:
    from superapp_festival.service import load_demo_programme

    list(load_demo_programme(api.app.state.host))
    assert len(api.get("/api/miniapps/festival/events").json()) == 3
    api.patch(URL, headers=admin, json={"max_events": 2, "ordering": "venue"})
    venues = [e["venue"] for e in api.get("/api/miniapps/festival/events").json()]
    assert venues == ["Đường Lê Lợi", "Đại Nội Huế"]


@pytest.mark.parametrize(("change", "field"), [
    ({"max_events": 0}, "body.max_events"),
    ({"max_events": "many"}, "body.max_events"),
    ({"ordering": "random"}, "body.ordering"),
    ({"colour": "red"}, "body.colour"),
])
def test_a_refused_change_names_the_field_and_saves_nothing(api: TestClient, admin: dict[str, str],
                                                            change: dict, field: str) -> None:
    response = api.patch(URL, headers=admin, json={"show_venue": False, **change})
    assert response.status_code == 422 and response.json()["field"] == field, response.text
    assert api.get(URL, headers=admin).json()["values"]["show_venue"] is True  # all or nothing


def test_null_resets_to_the_default_and_changes_are_audited(api: TestClient, admin: dict[str, str]) -> None:
    api.patch(URL, headers=admin, json={"max_events": 7, "tickets_api_key": "k"})
    reset = api.patch(URL, headers=admin, json={"max_events": None, "tickets_api_key": None}).json()
    assert reset["values"]["max_events"] == 50 and reset["secrets"] == {"tickets_api_key": False}
    events = api.get("/api/audit", params={"action": "miniapp_settings_changed"}, headers=admin).json()["items"]
    assert len(events) == 2 and events[0]["details"]["miniapp"] == "festival"
    assert "k" not in str([e["details"].get("fields") for e in events if "values" in e["details"]])


def test_only_admins_and_only_mini_apps_with_settings(api: TestClient, admin: dict[str, str]) -> None:
    operator = _signed_in(api, "settings.operator", "operator", "hue")
    assert api.get(URL).status_code == 401
    assert api.get(URL, headers=operator).status_code == 403
    assert api.patch(URL, headers=operator, json={"max_events": 2}).status_code == 403
    missing = api.get("/api/admin/miniapps/nosuch/settings", headers=admin)
    assert missing.status_code == 404 and missing.json()["field"] == "path.miniapp_id"


def test_the_generated_form_saves_keeps_secrets_and_shows_errors(api: TestClient, admin: dict[str, str]) -> None:
    form = api.get(PAGE, headers=admin)
    assert form.status_code == 200
    for name in ('name="max_events"', 'type="password" name="tickets_api_key"', '<select name="ordering"',
                 'type="checkbox" name="show_venue"'):
        assert name in form.text
    saved = api.post(PAGE, headers=admin, follow_redirects=False, data={
        "max_events": "12", "ordering": "venue", "ticket_office_url": "https://ve.huefestival.com",
        "tickets_api_key": "tk-form-1"})  # show_venue unticked
    assert saved.status_code == 303 and "?saved=1" in saved.headers["location"]
    current = api.app.state.miniapp_settings.get("festival")
    assert (current.max_events, current.ordering, current.show_venue) == (12, "venue", False)
    again = api.post(PAGE, headers=admin, follow_redirects=False, data={
        "max_events": "12", "ordering": "venue", "show_venue": "on", "tickets_api_key": ""})  # blank keeps it
    assert again.status_code == 303
    assert api.app.state.miniapp_settings.get("festival").tickets_api_key.get_secret_value() == "tk-form-1"
    page = api.get(PAGE, headers=admin).text
    assert "tk-form-1" not in page
    bad = api.post(PAGE, headers=admin, data={"max_events": "9999", "ordering": "venue"})
    assert bad.status_code == 422 and 'data-field="max_events"' in bad.text


def test_settings_page_sends_strangers_to_sign_in(api: TestClient) -> None:
    assert api.get(PAGE, follow_redirects=False).headers["location"].startswith("/auth/login")


def test_a_model_without_defaults_or_with_a_structured_field_stops_start_up() -> None:
    class NoDefault(BaseModel):
        url: str

    class Structured(BaseModel):
        ids: list[int] = Field(default_factory=list)

    for model, message in ((NoDefault, "need defaults"), (Structured, "form can edit")):
        with pytest.raises(ContractError, match=message):
            load_miniapps([candidate("sample", superapp_register_settings=lambda register, m=model: register(m))],
                          host_version="1.0.0")


def test_settings_form_in_chromium(settings: Settings, page) -> None:
    """An admin signs in, changes the settings on the generated form and sees them saved."""
    from core.db import make_engine

    with Session(make_engine(settings.database_url)) as db:
        service.create_official(db, username="form.admin", display_name="Quản trị", password="Sen-Hue-2025-vang",
                                memberships=[("admin", "hue")])
    page.goto("/auth/login?next=/admin/miniapps/festival/settings")
    page.fill("input[name=username]", "form.admin")
    page.fill("input[name=password]", "Sen-Hue-2025-vang")
    page.click("button[type=submit]")
    page.goto("/admin/miniapps/festival/settings?lang=en")
    page.fill("#s-max_events", "5")
    page.select_option("#s-ordering", "venue")
    page.fill("#s-tickets_api_key", "tk-browser")
    page.click("[data-testid=settings-form] button[type=submit]")
    page.locator("[data-testid=saved]").wait_for()
    assert page.input_value("#s-max_events") == "5"
    assert page.input_value("#s-tickets_api_key") == ""  # never sent back
    assert "leave blank to keep" in (page.get_attribute("#s-tickets_api_key", "placeholder") or "")
