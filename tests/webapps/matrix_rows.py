"""The web mini-apps' rows of the authorisation matrix (merged by tests/core/identity/test_matrix.py).

The world holds ``matrix_app``, published to every resident; rows that change it get a fresh version or a
fresh grant per persona."""

from __future__ import annotations

from typing import Any

from core.identity.models import utcnow
from core.webapps.service import Registration, WebAppManifest
from tests.matrix import ALLOW, PUBLIC, RESIDENTS, SIGN_IN, Case, World, everyone, only, signed_in
from tests.webapps.helpers import registration

W = "/api/webapps/matrix_app"
MANAGERS = ("operator", "admin")
# Residents (its audience) and the admin (every audience) may open it; other officials are not its audience.
OPENERS = signed_in(404, resident_a=ALLOW, resident_b=ALLOW, admin=ALLOW)


def _published(world: World) -> None:
    if world.__dict__.get("webapp_published"):
        return
    webapps = world.api.app.state.webapps
    with world.db() as db:
        webapps.register(db, Registration.model_validate(registration("matrix_app", "https://matrix.example.vn")),
                         actor_id=None, address=None)
        webapps.review(db, "matrix_app", 1, approve=True, reason=None, actor_id=None, address=None)
        webapps.publish(db, "matrix_app", 1, rollout_percent=100, actor_id=None, address=None)
        db.commit()
    webapps.changed()
    world.__dict__["webapp_published"] = True


def _manifest() -> dict[str, Any]:
    body = registration("matrix_app", "https://matrix.example.vn")
    body.pop("id")
    return body


def _version(approved: bool, suffix: str, base: str = W) -> Any:
    def url(world: World, who: str) -> str:
        _published(world)
        webapps = world.api.app.state.webapps
        with world.db() as db:
            version = webapps.submit(db, "matrix_app", WebAppManifest.model_validate(_manifest()), actor_id=None,
                                     address=None)
            if approved:
                webapps.review(db, "matrix_app", version.number, approve=True, reason=None, actor_id=None,
                               address=None)
            number = version.number
            db.commit()
        return f"{base}/versions/{number}/{suffix}"
    return url


def _granted_location(world: World, who: str) -> str:
    _published(world)
    persona = world.personas[who]
    if who in RESIDENTS and persona.user_id is not None:
        world.api.app.state.consents.grant(user_id=persona.user_id, miniapp_id="matrix_app", scope="location",
                                           address=None)
    return f"{W}/consents/location"


def _granted_phone(world: World, who: str) -> str:
    _published(world)
    persona = world.personas[who]
    if who in RESIDENTS and persona.user_id is not None:
        world.api.app.state.consents.grant(user_id=persona.user_id, miniapp_id="matrix_app", scope="phone",
                                           address=None)
    return f"{W}/phone-token"


def _granted_location_token(world: World, who: str) -> str:
    _granted_location(world, who)
    return f"{W}/location-token"


def _in(path: str) -> Any:
    def url(world: World, who: str) -> str:
        _published(world)
        return path
    return url


A = "/admin/webapps/matrix_app"
PAGES = only(*MANAGERS, anonymous=SIGN_IN)


def _position(world: World, who: str) -> dict[str, Any]:
    """A fresh position in Hue (the host refuses one older than a token's life)."""
    return {"lat": 16.46, "lon": 107.59, "accuracy": 10, "taken_at": utcnow().isoformat()}


CARD = {"title": {"vi": "a", "en": "a"}, "body": {"vi": "b", "en": "b"}}
NOTE = {"residents": ["0" * 32], "topic": "activities", "title": {"vi": "a", "en": "a"}, "body": {"vi": "b", "en": "b"}}

ROWS: dict[tuple[str, str], list[Case]] = {
    ("GET", "/.well-known/jwks.json"): [Case("launch-token keys", "/.well-known/jwks.json", PUBLIC)],
    ("POST", "/api/webapps"): [Case("register a web mini-app", "/api/webapps", only(*MANAGERS),
                                    json=lambda world, who: registration(f"reg_{who}", "https://reg.example.vn"))],
    ("GET", "/api/webapps"): [Case("registered web mini-apps", "/api/webapps", only(*MANAGERS))],
    ("GET", "/api/webapps/{webapp_id}"): [Case("one web mini-app", _in(W), only(*MANAGERS))],
    ("POST", "/api/webapps/{webapp_id}/versions"): [
        Case("submit a version", _in(f"{W}/versions"), only(*MANAGERS), json=_manifest())],
    ("POST", "/api/webapps/{webapp_id}/versions/{number}/review"): [
        Case("approve a version", _version(False, "review"), only(*MANAGERS), json={"decision": "approve"})],
    ("POST", "/api/webapps/{webapp_id}/versions/{number}/publish"): [
        Case("publish a version", _version(True, "publish"), only(*MANAGERS), json={"rollout_percent": 100})],
    ("POST", "/api/webapps/{webapp_id}/rollout"): [
        Case("widen the rollout", _in(f"{W}/rollout"), only(*MANAGERS), json={"rollout_percent": 100})],
    ("POST", "/api/webapps/{webapp_id}/rollback"): [
        Case("roll back to version 1", _in(f"{W}/rollback"), only(*MANAGERS), json={"version": 1})],
    ("POST", "/api/webapps/{webapp_id}/client"): [
        Case("keep the client", _in(f"{W}/client"), only(*MANAGERS), json={"revoked": False})],
    ("POST", "/api/webapps/{webapp_id}/launch"): [Case("launch", _in(f"{W}/launch"), OPENERS)],
    ("GET", "/api/webapps/{webapp_id}/consents"): [Case("my grants", _in(f"{W}/consents"), OPENERS)],
    ("POST", "/api/webapps/{webapp_id}/consents"): [
        Case("grant location", _in(f"{W}/consents"), {**OPENERS, "admin": 403}, json={"scope": "location"},
             fresh="account")],
    ("DELETE", "/api/webapps/{webapp_id}/consents/{scope}"): [
        Case("revoke location", _granted_location, signed_in(404, resident_a=ALLOW, resident_b=ALLOW))],
    ("POST", "/oauth/token"): [
        Case("wrong client secret", "/oauth/token", everyone(401),
             data={"grant_type": "client_credentials", "client_id": "matrix_app", "client_secret": "wrong"})],
    ("POST", "/api/s2s/notifications"): [
        Case("a person's token is no backend's", _in("/api/s2s/notifications"), everyone(401), json=NOTE)],
    ("GET", "/api/s2s/units"): [Case("a person's token is no backend's", "/api/s2s/units", everyone(401))],
    ("GET", "/webapps/{webapp_id}"): [
        Case("open in the frame", _in("/webapps/matrix_app"), {**OPENERS, "anonymous": SIGN_IN})],
    ("GET", "/me/webapps"): [Case("my grants page", "/me/webapps", signed_in(anonymous=SIGN_IN))],
    ("POST", "/me/webapps/{webapp_id}/revoke"): [
        Case("revoke from the page", _in("/me/webapps/matrix_app/revoke"), signed_in(anonymous=SIGN_IN),
             data={"scope": "location"})],
    ("POST", "/api/webapps/{webapp_id}/errors"): [Case("report an error", _in(f"{W}/errors"), OPENERS)],
    ("GET", "/api/webapps/{webapp_id}/analytics"): [Case("analytics", _in(f"{W}/analytics"), only(*MANAGERS))],
    ("GET", "/api/s2s/analytics"): [Case("a person's token is no backend's", "/api/s2s/analytics", everyone(401))],
    ("GET", "/admin/webapps/{webapp_id}/analytics"): [
        Case("analytics dashboard", _in("/admin/webapps/matrix_app/analytics"), only(*MANAGERS, anonymous=SIGN_IN))],
    ("POST", "/api/webapps/{webapp_id}/phone-token"): [
        Case("a one-time phone token (after granting phone)", _granted_phone,
             signed_in(404, resident_a=ALLOW, resident_b=ALLOW, admin=403))],
    ("POST", "/api/webapps/{webapp_id}/location-token"): [
        Case("a one-time location token (after granting location)", _granted_location_token,
             signed_in(404, resident_a=ALLOW, resident_b=ALLOW, admin=403), json=_position)],
    ("POST", "/api/s2s/location"): [
        Case("a person's token is no backend's", "/api/s2s/location", everyone(401), json={"token": "x" * 20})],
    ("POST", "/api/s2s/phone"): [
        Case("a person's token is no backend's", "/api/s2s/phone", everyone(401), json={"token": "x" * 20})],
    ("POST", "/api/s2s/feed"): [Case("a person's token is no backend's", "/api/s2s/feed", everyone(401), json=CARD)],
    ("GET", "/admin/webapps"): [Case("review list page", "/admin/webapps", PAGES)],
    ("GET", "/admin/webapps/{webapp_id}"): [Case("one web mini-app's page", _in(A), PAGES)],
    ("POST", "/admin/webapps/{webapp_id}/versions/{number}/review"): [
        Case("approve from the page", _version(False, "review", A), PAGES, data={"decision": "approve"})],
    ("POST", "/admin/webapps/{webapp_id}/versions/{number}/publish"): [
        Case("publish from the page", _version(True, "publish", A), PAGES, data={"rollout_percent": "100"})],
    ("POST", "/admin/webapps/{webapp_id}/rollout"): [
        Case("widen from the page", _in(f"{A}/rollout"), PAGES, data={"rollout_percent": "100"})],
    ("POST", "/admin/webapps/{webapp_id}/rollback"): [
        Case("roll back from the page", _in(f"{A}/rollback"), PAGES, data={"version": "1"})],
}
