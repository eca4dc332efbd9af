"""The server API's location exchange, on both databases: the shell hands the resident's position to the host
for a one-time token that only the mini-app's backend exchanges (consent, single use, expiry, kind and mini-app
checked, audited), sharing the phone tokens' store."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlmodel import Session, select

from core.identity.models import utcnow
from core.retention import purge
from core.webapps.models import WebAppOneTimeToken
from tests.webapps.helpers import publish, registration
from tests.webapps.test_launch_s2s import s2s_token
from tests.webapps.test_server_api import audited, bearer


def position(**changes):
    """A position in Hue as the shell reads it from the device."""
    return {"lat": 16.4637, "lon": 107.5909, "accuracy": 12.5, "taken_at": utcnow().isoformat(), **changes}


def test_location_is_a_one_time_token_exchanged_server_to_server(api, operator, resident_a):
    secret = publish(api, operator, registration())["client_secret"]
    other_secret = publish(api, operator, registration("tree_care", "https://trees.example.vn"))["client_secret"]
    url = "/api/webapps/youth_union/location-token"
    refused = api.post(url, json=position(), headers=resident_a)
    assert refused.status_code == 403 and refused.json()["scope"] == "location"
    assert api.post("/api/webapps/youth_union/consents", json={"scope": "location"},
                    headers=resident_a).status_code == 201
    sent = position()
    issued = api.post(url, json=sent, headers=resident_a)
    assert issued.status_code == 201 and issued.json()["expires_in"] == 120
    token = issued.json()["token"]
    with Session(api.app.state.engine) as db:
        stored = db.exec(select(WebAppOneTimeToken).where(WebAppOneTimeToken.kind == "location")).all()
        assert len(stored) == 1 and stored[0].token_hash != token and len(stored[0].token_hash) == 64
    backend = bearer(s2s_token(api, secret, "location.read"))
    # Another mini-app's backend cannot use it, and its attempt does not spend it.
    stolen = api.post("/api/s2s/location", json={"token": token},
                      headers=bearer(s2s_token(api, other_secret, "location.read", client_id="tree_care")))
    assert stolen.status_code == 422 and stolen.json()["field"] == "token"
    # A location token is no phone token, and the phone scope does not open the location exchange.
    as_phone = api.post("/api/s2s/phone", json={"token": token}, headers=bearer(s2s_token(api, secret, "phone.read")))
    assert as_phone.status_code == 422 and as_phone.json()["field"] == "token"
    without_scope = api.post("/api/s2s/location", json={"token": token},
                             headers=bearer(s2s_token(api, secret, "phone.read")))
    assert without_scope.status_code == 403
    answer = api.post("/api/s2s/location", json={"token": token}, headers=backend)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["sub"] == api.app.state.webapps.keys.pairwise_id(resident_a.user_id, "youth_union")
    assert (body["lat"], body["lon"], body["accuracy"]) == (16.4637, 107.5909, 12.5)
    assert body["taken_at"][:19] == sent["taken_at"][:19]
    again = api.post("/api/s2s/location", json={"token": token}, headers=backend)
    assert again.status_code == 422 and again.json()["field"] == "token"  # single use
    # Expired: two minutes at most.
    late = api.post(url, json=position(), headers=resident_a).json()["token"]
    with Session(api.app.state.engine) as db:
        for row in db.exec(select(WebAppOneTimeToken).where(WebAppOneTimeToken.used_at == None)):  # noqa: E711
            row.expires_at = utcnow() - timedelta(seconds=1)
            db.add(row)
        db.commit()
    assert api.post("/api/s2s/location", json={"token": late}, headers=backend).status_code == 422
    # Revoked after the token was given: the exchange is refused.
    fresh = api.post(url, json=position(), headers=resident_a).json()["token"]
    assert api.delete("/api/webapps/youth_union/consents/location", headers=resident_a).status_code == 204
    revoked = api.post("/api/s2s/location", json={"token": fresh}, headers=backend)
    assert revoked.status_code == 403 and revoked.json()["scope"] == "location"
    assert api.post(url, json=position(), headers=resident_a).status_code == 403
    assert len(audited(api, "webapp_location_shared")) == 1


def test_a_position_the_host_would_not_hand_on_is_refused_naming_the_field(api, operator, resident_a):
    publish(api, operator, registration())
    assert api.post("/api/webapps/youth_union/consents", json={"scope": "location"},
                    headers=resident_a).status_code == 201
    url = "/api/webapps/youth_union/location-token"
    for bad, field in ((position(lat=91), "lat"), (position(lon=-181), "lon"), (position(accuracy=-1), "accuracy"),
                       (position(taken_at=(utcnow() - timedelta(minutes=5)).isoformat()), "taken_at"),
                       (position(taken_at="2026-12-02T10:00:00"), "taken_at")):
        refused = api.post(url, json=bad, headers=resident_a)
        assert refused.status_code == 422, (bad, refused.text)
        assert field in refused.text, (field, refused.text)
    with Session(api.app.state.engine) as db:
        assert db.exec(select(WebAppOneTimeToken)).all() == []


def test_location_exchange_is_rate_limited_like_the_other_server_calls(api, operator, resident_a):
    secret = publish(api, operator, registration(rate_per_minute=2))["client_secret"]
    backend = bearer(s2s_token(api, secret, "location.read"))
    codes = [api.post("/api/s2s/location", json={"token": "x" * 20}, headers=backend).status_code for _ in range(3)]
    assert codes == [422, 422, 429]


def test_expired_one_time_tokens_are_purged_by_the_retention_job(api, operator, resident_a):
    publish(api, operator, registration())
    for scope in ("location", "phone"):
        assert api.post("/api/webapps/youth_union/consents", json={"scope": scope},
                        headers=resident_a).status_code == 201
    api.post("/api/webapps/youth_union/location-token", json=position(), headers=resident_a).raise_for_status()
    api.post("/api/webapps/youth_union/phone-token", headers=resident_a).raise_for_status()
    kept = api.post("/api/webapps/youth_union/phone-token", headers=resident_a).json()["token"]
    settings = api.app.state.settings
    with Session(api.app.state.engine) as db:
        rows = db.exec(select(WebAppOneTimeToken)).all()
        for row in rows:
            if row.token_hash != hashlib.sha256(kept.encode()).hexdigest():
                row.expires_at = utcnow() - timedelta(days=settings.retention_session_days + 1)
                db.add(row)
        db.commit()
    outcome, = purge(api.app.state.engine, settings, only={"web mini-app one-time tokens"})
    assert outcome.rows == 2
    with Session(api.app.state.engine) as db:
        assert [r.token_hash for r in db.exec(select(WebAppOneTimeToken))] == [hashlib.sha256(kept.encode()).hexdigest()]
