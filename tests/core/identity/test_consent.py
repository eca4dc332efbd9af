"""Mini-app consent: per-resident grants on the home screen, ETags, races and a secret-free audit log."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from core.identity.models import AuditEvent, MiniAppConsent
from tests.core.identity.conftest import PASSWORD, Persona


def festival_location(api: TestClient, persona: Persona) -> tuple[bool, str]:
    """Whether the festival's location scope shows as granted to ``persona``, and the manifests' ETag."""
    response = api.get("/api/miniapps", headers=persona)
    assert response.status_code == 200
    [festival] = [m for m in response.json()["miniapps"] if m["id"] == "festival"]
    [scope] = [s for s in festival["scopes"] if s["scope"] == "location"]
    return scope["granted"], response.headers["etag"]


def test_grant_and_revoke_show_for_that_resident_only(api: TestClient, resident_a: Persona,
                                                       resident_b: Persona) -> None:
    granted, etag_before = festival_location(api, resident_a)
    assert granted is False
    b_view = festival_location(api, resident_b)
    assert b_view[0] is False

    assert api.put("/api/me/consents/festival/location", headers=resident_a).status_code == 204
    granted, etag_granted = festival_location(api, resident_a)
    assert granted is True and etag_granted != etag_before
    assert api.get("/api/me/consents", headers=resident_a).json() == {"festival": ["location"]}
    # the app's cached copy is stale: the old ETag no longer answers 304, the new one does
    assert api.get("/api/miniapps", headers={**resident_a, "If-None-Match": etag_before}).status_code == 200
    assert api.get("/api/miniapps", headers={**resident_a, "If-None-Match": etag_granted}).status_code == 304
    # the other resident's view is untouched (and is not served from resident_a's cache entry)
    assert festival_location(api, resident_b) == b_view
    assert api.get("/api/me/consents", headers=resident_b).json() == {}

    assert api.delete("/api/me/consents/festival/location", headers=resident_a).status_code == 204
    granted, etag_revoked = festival_location(api, resident_a)
    assert granted is False and etag_revoked != etag_granted
    assert api.get("/api/me/consents", headers=resident_a).json() == {}
    assert festival_location(api, resident_b) == b_view


def test_consent_is_audited_without_secrets(api: TestClient, resident_a: Persona, resident_b: Persona,
                                            admin: Persona, commune_px: Persona) -> None:
    # a password sign-in that fails and one that succeeds, so the log holds rows about passwords too
    failed = api.post("/api/auth/login", json={"username": commune_px.username, "password": PASSWORD + "x"})
    assert failed.status_code == 401
    signed_in = api.post("/api/auth/login", json={"username": commune_px.username, "password": PASSWORD})
    assert signed_in.status_code == 200
    for _ in range(2):  # granting or revoking twice records it once
        assert api.put("/api/me/consents/festival/location", headers=resident_a).status_code == 204
    for _ in range(2):
        assert api.delete("/api/me/consents/festival/location", headers=resident_a).status_code == 204

    log = api.get("/api/audit", params={"limit": 200}, headers=admin).json()["items"]
    consent = [(e["action"], e["actor_id"], e["subject_id"], e["details"]) for e in reversed(log)
               if e["action"].startswith("consent_")]
    assert consent == [
        ("consent_granted", resident_a.user_id, resident_a.user_id, {"miniapp": "festival", "scope": "location"}),
        ("consent_revoked", resident_a.user_id, resident_a.user_id, {"miniapp": "festival", "scope": "location"}),
    ]
    assert {"sign_in", "sign_in_failed", "user_created"} <= {e["action"] for e in log}

    secrets = {PASSWORD, PASSWORD + "x", signed_in.json()["access_token"], signed_in.json()["refresh_token"]}
    for persona in (resident_a, resident_b, admin, commune_px):
        secrets |= {persona.access_token, persona.refresh_token}
    with Session(api.app.state.engine) as db:
        rows = list(db.exec(select(AuditEvent)))
    assert len(rows) == len(log)
    for row in rows:
        stored = json.dumps(row.details, ensure_ascii=False) + (row.address or "")
        leaked = [s[:12] + "…" for s in secrets if s and s in stored]
        assert not leaked, f"audit row {row.id} ({row.action}) holds a secret: {leaked}"



def test_a_grant_that_loses_a_race_with_the_same_grant_still_answers_204(
        api: TestClient, resident_a: Persona, monkeypatch: pytest.MonkeyPatch) -> None:
    """A double tap sends the same grant twice at once; the request that loses the race must not fail."""
    # Deterministic interleaving: while the first request sits between its "already granted?" look-up
    # and its insert, the second, identical request runs to completion.
    url = "/api/me/consents/festival/location"
    real_get = Session.get
    second: list[int] = []

    def get_then_let_the_other_tap_through(self: Session, entity: Any, ident: Any, **kwargs: Any) -> Any:
        found = real_get(self, entity, ident, **kwargs)
        if entity is MiniAppConsent and not second:
            second.append(0)
            second[0] = api.put(url, headers=resident_a).status_code
        return found

    monkeypatch.setattr(Session, "get", get_then_let_the_other_tap_through)
    try:
        first = api.put(url, headers=resident_a).status_code
    except Exception as exc:  # TestClient re-raises the server's unhandled error
        first = f"500 ({type(exc).__name__})"
    monkeypatch.undo()
    assert second == [204]
    assert first == 204, f"the grant that lost the race answered {first}"
    assert api.get("/api/me/consents", headers=resident_a).json() == {"festival": ["location"]}


def test_a_route_needing_an_ungranted_scope_is_403_naming_it(api, resident_a, commune_px) -> None:
    """The festival's 'events near me' needs the location scope: refused until the resident grants it."""
    url = "/api/miniapps/festival/events/nearby?lat=16.47&lon=107.58"
    refused = api.get(url, headers=resident_a)
    assert refused.status_code == 403
    assert refused.json()["scope"] == "location" and "'location'" in refused.json()["detail"]
    assert api.put("/api/me/consents/festival/location", headers=resident_a).status_code == 204
    assert api.get(url, headers=resident_a).status_code == 200
    assert api.get(url).status_code == 401
    # officials act for their unit; a resident's consent does not apply to them
    assert api.get(url, headers=commune_px).status_code == 200
