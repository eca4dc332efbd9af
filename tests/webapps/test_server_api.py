"""The server API's phone exchange and feed cards, on both databases: one-time phone tokens (consent, single
use, expiry, the right mini-app only) and news cards in residents' feeds under the feed's audience rules."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, select

from core.identity.models import AuditEvent, User, utcnow
from core.webapps.models import WebAppOneTimeToken
from tests.webapps.helpers import publish, registration
from tests.webapps.test_launch_s2s import s2s_token


def bearer(token: str) -> dict[str, str]:
    """The Authorization header of a backend token."""
    return {"Authorization": f"Bearer {token}"}


def audited(api, action: str) -> list[AuditEvent]:
    """The audit log's events of one action."""
    with Session(api.app.state.engine) as db:
        return list(db.exec(select(AuditEvent).where(AuditEvent.action == action)))


def test_phone_is_a_one_time_token_exchanged_server_to_server(api, operator, resident_a):
    secret = publish(api, operator, registration())["client_secret"]
    other_secret = publish(api, operator, registration("tree_care", "https://trees.example.vn"))["client_secret"]
    refused = api.post("/api/webapps/youth_union/phone-token", headers=resident_a)
    assert refused.status_code == 403 and refused.json()["scope"] == "phone"
    assert api.post("/api/webapps/youth_union/consents", json={"scope": "phone"}, headers=resident_a).status_code == 201
    issued = api.post("/api/webapps/youth_union/phone-token", headers=resident_a)
    assert issued.status_code == 201 and issued.json()["expires_in"] == 120
    token = issued.json()["token"]
    backend = bearer(s2s_token(api, secret, "phone.read"))
    # Another mini-app's backend cannot use it, and its attempt does not spend it.
    stolen = api.post("/api/s2s/phone", json={"token": token}, headers=bearer(s2s_token(api, other_secret, "phone.read",
                                                                                         client_id="tree_care")))
    assert stolen.status_code == 422 and stolen.json()["field"] == "token"
    without_scope = api.post("/api/s2s/phone", json={"token": token},
                             headers=bearer(s2s_token(api, secret, "notifications.send")))
    assert without_scope.status_code == 403
    answer = api.post("/api/s2s/phone", json={"token": token}, headers=backend)
    assert answer.status_code == 200, answer.text
    with Session(api.app.state.engine) as db:
        user = db.get(User, resident_a.user_id)
        assert user is not None and answer.json()["phone"] == user.phone
    launched = api.post("/api/webapps/youth_union/launch", headers=resident_a).json()
    assert answer.json()["sub"] == api.app.state.webapps.keys.pairwise_id(resident_a.user_id, "youth_union")
    assert launched["token"]
    again = api.post("/api/s2s/phone", json={"token": token}, headers=backend)
    assert again.status_code == 422 and again.json()["field"] == "token"  # single use
    # Expired: two minutes at most.
    late = api.post("/api/webapps/youth_union/phone-token", headers=resident_a).json()["token"]
    with Session(api.app.state.engine) as db:
        for row in db.exec(select(WebAppOneTimeToken).where(WebAppOneTimeToken.used_at == None)):  # noqa: E711
            row.expires_at = utcnow() - timedelta(seconds=1)
            db.add(row)
        db.commit()
    assert api.post("/api/s2s/phone", json={"token": late}, headers=backend).status_code == 422
    # Revoked after the token was given: the exchange is refused.
    fresh = api.post("/api/webapps/youth_union/phone-token", headers=resident_a).json()["token"]
    assert api.delete("/api/webapps/youth_union/consents/phone", headers=resident_a).status_code == 204
    revoked = api.post("/api/s2s/phone", json={"token": fresh}, headers=backend)
    assert revoked.status_code == 403 and revoked.json()["scope"] == "phone"
    assert api.post("/api/webapps/youth_union/phone-token", headers=resident_a).status_code == 403
    assert len(audited(api, "webapp_phone_shared")) == 1


def card(**overrides):
    """A feed card body."""
    return {"title": {"vi": "Ngày Chủ nhật xanh", "en": "Green Sunday"},
            "body": {"vi": "Dọn rác bờ sông Hương", "en": "Cleaning the Perfume River banks"}, **overrides}


def feed_titles(api, who) -> list[str]:
    """The titles of the first feed page ``who`` reads (in Vietnamese)."""
    page = api.get("/api/feed", headers={**who, "Accept-Language": "vi"})
    assert page.status_code == 200, page.text
    return [i["title"] for i in page.json()["items"]]


def test_backend_publishes_feed_cards_through_the_hosts_feed(api, operator, resident_a, resident_b):
    secret = publish(api, operator, registration(rate_per_minute=4))["client_secret"]
    token = s2s_token(api, secret, "feed.publish")
    sent = api.post("/api/s2s/feed", json=card(unit_ids=["phu-xuan"], start_param="event-12"), headers=bearer(token))
    assert sent.status_code == 201, sent.text
    assert sent.json()["url"] == "/webapps/youth_union?start=event-12" and sent.json()["unit_ids"] == ["phu-xuan"]
    # Targeted at Phú Xuân: its resident reads it, Kim Long's does not.
    assert "Ngày Chủ nhật xanh" in feed_titles(api, resident_a)
    assert "Ngày Chủ nhật xanh" not in feed_titles(api, resident_b)
    item = api.get(f"/api/feed/{sent.json()['feed_item_id']}", headers=resident_a).json()
    assert item["url"] == "/webapps/youth_union?start=event-12"
    # A residents' mini-app cannot reach officials; an unknown unit names the field.
    officials = api.post("/api/s2s/feed", json=card(audience="officials"), headers=bearer(token))
    assert officials.status_code == 422 and officials.json()["field"] == "audience"
    unknown = api.post("/api/s2s/feed", json=card(unit_ids=["atlantis"]), headers=bearer(token))
    assert unknown.status_code == 422 and unknown.json()["field"] == "body.unit_ids"
    # Scope-gated and rate-limited per mini-app (4 calls a minute; three were made).
    assert api.post("/api/s2s/feed", json=card(), headers=bearer(s2s_token(api, secret, "units.read"))).status_code == 403
    assert api.post("/api/s2s/feed", json=card(title={"vi": "Lần thứ tư", "en": "Fourth"}),
                    headers=bearer(token)).status_code == 201
    over = api.post("/api/s2s/feed", json=card(), headers=bearer(token))
    assert over.status_code == 429 and over.headers["Retry-After"] == "60"
    assert len(audited(api, "webapp_feed_card_published")) == 2
