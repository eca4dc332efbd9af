"""Registration, review, publication, rollout and rollback of web mini-apps, on SQLite and PostgreSQL."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from core.identity.models import AuditEvent
from tests.webapps.helpers import publish, registration


def tile_ids(api: TestClient, who: dict[str, str]) -> list[str]:
    """The ids on ``who``'s home screen according to /api/miniapps."""
    answer = api.get("/api/miniapps", headers=who)
    assert answer.status_code == 200
    return [m["id"] for m in answer.json()["miniapps"]]


def test_entry_url_outside_origins_is_refused_naming_the_field(api, operator):
    answer = api.post("/api/webapps", json=registration(entry_url="https://evil.example.com/app"), headers=operator)
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["field"] == "entry_url"


def test_scope_without_reason_is_refused_naming_it(api, operator):
    answer = api.post("/api/webapps", json=registration(scopes=[{"scope": "location"}]), headers=operator)
    assert answer.status_code == 422
    assert answer.json()["field"] == "body.scopes.0.reason"


def test_only_operators_register(api, resident_a, commune_px):
    for who, status in ((resident_a, 403), (commune_px, 403), ({}, 401)):
        assert api.post("/api/webapps", json=registration(), headers=who).status_code == status


def test_lifecycle_to_the_home_screen_audited(api, operator, resident_a):
    created = api.post("/api/webapps", json=registration(), headers=operator)
    assert created.status_code == 201
    assert created.json()["client_secret"]
    # Submitted is not published: nobody sees it, and it cannot be published before approval.
    assert "youth_union" not in tile_ids(api, resident_a)
    early = api.post("/api/webapps/youth_union/versions/1/publish", json={"rollout_percent": 100}, headers=operator)
    assert early.status_code == 409
    reject = api.post("/api/webapps/youth_union/versions/1/review", json={"decision": "reject"}, headers=operator)
    assert reject.status_code == 422 and reject.json()["field"] == "reason"
    api.post("/api/webapps/youth_union/versions/1/review", json={"decision": "approve"}, headers=operator)
    published = api.post("/api/webapps/youth_union/versions/1/publish", json={"rollout_percent": 100}, headers=operator)
    assert published.status_code == 200
    assert "youth_union" in tile_ids(api, resident_a)
    tile = next(m for m in api.get("/api/miniapps", headers=resident_a).json()["miniapps"] if m["id"] == "youth_union")
    assert tile["entry_url"] == "/webapps/youth_union" and tile["kind"] == "web"
    home = api.get("/", headers=resident_a)
    assert 'data-miniapp="youth_union"' in home.text
    # Rollout only grows.
    narrower = api.post("/api/webapps/youth_union/rollout", json={"rollout_percent": 50}, headers=operator)
    assert narrower.status_code == 422 and narrower.json()["field"] == "rollout_percent"
    with Session(api.app.state.engine) as db:
        actions = [e.action for e in db.exec(select(AuditEvent).where(AuditEvent.action.startswith("webapp_")))]
    assert actions.count("webapp_registered") == 1
    for action in ("webapp_version_submitted", "webapp_version_approved", "webapp_version_published"):
        assert action in actions


def test_staged_rollout_is_stable_per_resident(api, operator, make_persona):
    publish(api, operator, registration(), percent=1)
    webapps = api.app.state.webapps
    residents = [make_persona("resident_a") for _ in range(12)]
    live = webapps.live()["youth_union"]
    expected = {r.user_id for r in residents if webapps.in_rollout(live, r.user_id)}
    seen = {r.user_id for r in residents if "youth_union" in tile_ids(api, r)}
    assert seen == expected
    api.post("/api/webapps/youth_union/rollout", json={"rollout_percent": 60}, headers=operator)
    wider = {r.user_id for r in residents if "youth_union" in tile_ids(api, r)}
    assert seen <= wider  # nobody who had it loses it
    api.post("/api/webapps/youth_union/rollout", json={"rollout_percent": 100}, headers=operator)
    assert {r.user_id for r in residents if "youth_union" in tile_ids(api, r)} == {r.user_id for r in residents}


def test_rollback_to_one_of_the_last_five(api, operator, resident_a):
    publish(api, operator, registration())
    for number in range(2, 8):
        body = registration(name={"vi": f"Đoàn v{number}", "en": f"Youth v{number}"})
        body.pop("id")
        assert api.post("/api/webapps/youth_union/versions", json=body, headers=operator).json()["number"] == number
        api.post(f"/api/webapps/youth_union/versions/{number}/review", json={"decision": "approve"}, headers=operator)
        api.post(f"/api/webapps/youth_union/versions/{number}/publish", json={}, headers=operator)
    detail = api.get("/api/webapps/youth_union", headers=operator).json()
    assert detail["live_version"] == 7 and detail["rollback_to"] == [7, 6, 5, 4, 3]
    too_old = api.post("/api/webapps/youth_union/rollback", json={"version": 2}, headers=operator)
    assert too_old.status_code == 422 and too_old.json()["field"] == "version"
    back = api.post("/api/webapps/youth_union/rollback", json={"version": 4}, headers=operator)
    assert back.status_code == 200 and back.json()["live_version"] == 4
    tile = next(m for m in api.get("/api/miniapps", headers=resident_a).json()["miniapps"] if m["id"] == "youth_union")
    assert tile["name"] == "Đoàn v4"
