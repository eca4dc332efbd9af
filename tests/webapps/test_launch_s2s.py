"""Launch tokens, the JWKS with rotation, consent, and the server-to-server API (401/403/429), on both databases."""

from __future__ import annotations

import base64
import time

import jwt
import pytest
from fastapi.testclient import TestClient

from core.webapps.tokens import KeyRing
from tests.conftest import TEST_SECRET
from tests.webapps.helpers import publish, registration


def launch_claims(api: TestClient, who: dict[str, str], webapp_id: str = "youth_union") -> dict:
    """Launch as ``who`` and read the token with the key the JWKS publishes."""
    answer = api.post(f"/api/webapps/{webapp_id}/launch", json={"start_param": "event-12"}, headers=who)
    assert answer.status_code == 200, answer.text
    token = answer.json()["token"]
    jwk = jwt.PyJWKSet.from_dict(api.get("/.well-known/jwks.json").json())[jwt.get_unverified_header(token)["kid"]]
    return jwt.decode(token, jwk.key, algorithms=["EdDSA"], audience=webapp_id)


def s2s_token(api: TestClient, secret: str, scope: str = "notifications.send units.read",
              client_id: str = "youth_union") -> str:
    """A backend's bearer token by client credentials."""
    answer = api.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": client_id,
                                            "client_secret": secret, "scope": scope})
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def notify(api: TestClient, token: str, sub: str):
    """Send one notification to ``sub`` as the backend."""
    return api.post("/api/s2s/notifications", headers={"Authorization": f"Bearer {token}"}, json={
        "residents": [sub], "topic": "activities", "title": {"vi": "Hoạt động", "en": "Activity"},
        "body": {"vi": "Chủ nhật xanh", "en": "Green Sunday"}})


def test_launch_token_is_pairwise_short_and_scoped(api, operator, resident_a):
    publish(api, operator, registration())
    publish(api, operator, registration("tree_care", "https://trees.example.vn"))
    claims = launch_claims(api, resident_a)
    assert claims["aud"] == "youth_union" and claims["start_param"] == "event-12"
    assert claims["exp"] - claims["iat"] == 300 and claims["jti"] and claims["scope"] == ""
    assert claims["sub"] not in (str(resident_a.user_id), resident_a.user_id)
    assert "+84" not in claims["sub"]
    other = launch_claims(api, resident_a, "tree_care")
    assert other["sub"] != claims["sub"]  # two mini-apps cannot join their residents
    assert launch_claims(api, resident_a)["sub"] == claims["sub"]  # stable for one mini-app
    assert launch_claims(api, resident_a)["jti"] != claims["jti"]


def test_unpublished_or_unknown_webapps_do_not_launch(api, operator, resident_a):
    api.post("/api/webapps", json=registration(), headers=operator)
    assert api.post("/api/webapps/youth_union/launch", headers=resident_a).status_code == 404
    assert api.post("/api/webapps/nobody_here/launch", headers=resident_a).status_code == 404
    assert api.post("/api/webapps/youth_union/launch").status_code == 401


def test_jwks_rotation_keeps_the_previous_key():
    before, after = KeyRing(TEST_SECRET, 1), KeyRing(TEST_SECRET, 2)
    kids = [k["kid"] for k in after.jwks()["keys"]]
    assert kids == [after.current.kid, before.current.kid]
    token = before.sign({"aud": "x", "sub": "s"})
    published = jwt.PyJWKSet.from_dict(after.jwks())[before.current.kid]
    assert jwt.decode(token, published.key, algorithms=["EdDSA"], audience="x")["sub"] == "s"
    assert before.current.kid not in [k["kid"] for k in KeyRing(TEST_SECRET, 3).jwks()["keys"]]


def test_notifications_follow_consent_at_once(api, operator, resident_a, resident_b):
    secret = publish(api, operator, registration())["client_secret"]
    sub = launch_claims(api, resident_a)["sub"]
    token = s2s_token(api, secret)
    refused = notify(api, token, sub)
    assert refused.status_code == 403 and refused.json()["refused"] == [sub]
    assert refused.headers["content-type"].startswith("application/problem+json")
    # A scope the mini-app did not declare is refused; a declared one is granted.
    assert api.post("/api/webapps/youth_union/consents", json={"scope": "camera"}, headers=resident_a).json()["field"] == "scope"
    assert api.post("/api/webapps/youth_union/consents", json={"scope": "notifications"}, headers=resident_a).status_code == 201
    sent = notify(api, token, sub)
    assert sent.status_code == 202, sent.text
    inbox = api.get("/api/inbox", headers=resident_a).json()["items"]
    assert [i["title"] for i in inbox if i["miniapp"] == "youth_union"] == ["Hoạt động"]
    assert not [i for i in api.get("/api/inbox", headers=resident_b).json()["items"] if i["miniapp"] == "youth_union"]
    # Revocation counts from the next call.
    assert api.delete("/api/webapps/youth_union/consents/notifications", headers=resident_a).status_code == 204
    assert notify(api, token, sub).status_code == 403
    # A pairwise id of another mini-app (or made up) addresses nobody.
    assert notify(api, token, "0" * 32).status_code == 403


def test_backend_credentials_scope_and_revocation(api, operator, resident_a):
    secret = publish(api, operator, registration())["client_secret"]
    wrong = api.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "youth_union",
                                           "client_secret": secret + "x"})
    assert wrong.status_code == 401 and wrong.headers["content-type"].startswith("application/problem+json")
    units_only = s2s_token(api, secret, scope="units.read")
    listed = api.get("/api/s2s/units?limit=3", headers={"Authorization": f"Bearer {units_only}"})
    assert listed.status_code == 200 and len(listed.json()["units"]) == 3 and listed.json()["next_after"]
    missing = notify(api, units_only, launch_claims(api, resident_a)["sub"])
    assert missing.status_code == 403 and missing.json()["scope"] == "notifications.send"
    assert api.get("/api/s2s/units", headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    # The operator revokes the client: the token it already holds stops working, and so do new requests for one.
    assert api.post("/api/webapps/youth_union/client", json={"revoked": True}, headers=operator).status_code == 200
    assert api.get("/api/s2s/units", headers={"Authorization": f"Bearer {units_only}"}).status_code == 401
    again = api.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "youth_union",
                                           "client_secret": secret})
    assert again.status_code == 401


def test_backend_over_its_rate_gets_429(api, operator):
    secret = publish(api, operator, registration(rate_per_minute=3))["client_secret"]
    token = s2s_token(api, secret, scope="units.read")
    statuses = [api.get("/api/s2s/units?limit=1", headers={"Authorization": f"Bearer {token}"}).status_code
                for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    last = api.get("/api/s2s/units?limit=1", headers={"Authorization": f"Bearer {token}"})
    assert last.headers["content-type"].startswith("application/problem+json") and last.headers["retry-after"]


@pytest.mark.parametrize("path", ["/webapps/youth_union"])
def test_frame_page_frames_only_the_registered_origins(api, operator, resident_a, path):
    publish(api, operator, registration())
    page = api.get(path, headers=resident_a)
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "frame-src 'self' https://youth.example.vn" in policy and "script-src 'self';" in policy
    assert "#superapp_launch=" in page.text and page.headers["cache-control"] == "no-store"
    assert "https://youth.example.vn" not in api.get("/", headers=resident_a).headers["content-security-policy"]


def test_private_key_jwt_client_authentication(api, operator):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    own = Ed25519PrivateKey.generate()
    raw = own.public_key().public_bytes_raw()
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode()}
    leaked = api.post("/api/webapps", json=registration("leaky_app", client_jwk={**jwk, "d": "secret"}), headers=operator)
    assert leaked.status_code == 422 and leaked.json()["field"] == "body.client_jwk"
    publish(api, operator, registration(client_jwk=jwk))
    now = int(time.time())

    def assertion(**overrides):
        claims = {"iss": "youth_union", "sub": "youth_union", "aud": "http://testserver/oauth/token",
                  "iat": now, "exp": now + 120, "jti": f"a-{len(overrides)}-{sorted(overrides)}"}
        claims.update(overrides)
        return jwt.encode(claims, own, algorithm="EdDSA")

    def ask(token: str):
        return api.post("/oauth/token", data={
            "grant_type": "client_credentials", "scope": "units.read",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": token})

    good = assertion()
    first = ask(good)
    assert first.status_code == 200, first.text
    assert api.get("/api/s2s/units?limit=1", headers={"Authorization": f"Bearer {first.json()['access_token']}"}).status_code == 200
    assert ask(good).status_code == 401  # replayed
    assert ask(assertion(aud="https://elsewhere.example/oauth/token")).status_code == 401
    assert ask(assertion(exp=now - 10)).status_code == 401
    stranger = jwt.encode({"iss": "youth_union", "sub": "youth_union", "aud": "http://testserver/oauth/token",
                           "exp": now + 60, "jti": "x"}, Ed25519PrivateKey.generate(), algorithm="EdDSA")
    refused = ask(stranger)
    assert refused.status_code == 401 and refused.headers["content-type"].startswith("application/problem+json")
