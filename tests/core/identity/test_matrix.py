"""The authorisation matrix: every route of the host, core and mini-apps, against eight personas."""

from __future__ import annotations

import html
import importlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIWebSocketRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlmodel import Session, select
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from core.app import CORE_ROUTERS, create_app
from core.identity import service
from core.identity.authz import CORE_PERMISSIONS, permission_checks
from core.identity.models import AuthSession, Membership, MiniAppConsent
from push.models import Device, InboxItem, Notification
from tests.conftest import base_settings
from tests.core.identity.conftest import PASSWORD, PERSONAS, Persona
from tests.matrix import (
    ALLOW,
    NOT_IN_MATRIX,
    OFFICIALS,
    PUBLIC,
    RESIDENTS,
    SIGN_IN,
    VICTIM_UNITS,
    Case,
    Outcome,
    World,
    everyone,
    only,
    residents,
    resolve,
    signed_in,
)

# --- Object-level and side-effect checks -----------------------------------------------------------


def own_profile(world: World, who: str, creds: Persona, response: Any) -> None:
    """/api/me answers with the caller's own account, never anyone else's."""
    if creds.user_id is None:
        return
    body = response.json()
    assert body["id"] == creds.user_id, f"/api/me gave account {body['id']} to {who} (account {creds.user_id})"
    if creds.username:
        assert body["username"] == creds.username


def own_sessions(world: World, who: str, creds: Persona, response: Any) -> None:
    """/api/me/sessions lists only the caller's sessions, marking the current one."""
    if creds.user_id is None:
        return
    listed = {row["id"]: row["current"] for row in response.json()}
    with world.db() as db:
        mine = set(db.exec(select(AuthSession.id).where(AuthSession.user_id == creds.user_id)))
    assert set(listed) <= mine, f"{who} sees sessions of other accounts: {set(listed) - mine}"
    assert listed.get(creds.session_id) is True, f"{who}'s current session is not marked current"


def own_profile_page(world: World, who: str, creds: Persona, response: Any) -> None:
    """The /me page shows the caller's own name, and sends an anonymous caller to the sign-in form."""
    if creds.user_id is None:
        assert response.headers["location"] == "/auth/phone?next=/me"
        return
    assert html.escape(creds.display_name or "") in response.text, f"/me does not show {who}'s name"


def members_of(unit_persona: str, absent: str) -> Callable[[World, str, Persona, Any], None]:
    """An allowed members list names the unit's official and not another unit's."""

    def check(world: World, who: str, creds: Persona, response: Any) -> None:
        if response.status_code != 200:
            return
        ids = {row["user_id"] for row in response.json()}
        assert world.personas[unit_persona].user_id in ids, f"{unit_persona} missing from the members list"
        assert world.personas[absent].user_id not in ids, f"{absent} listed as a member of the wrong unit"

    return check


def consent_field(world: World, who: str, creds: Persona, response: Any) -> None:
    """A scope the manifest does not ask for (or no scope at all) is a 422 naming ``path.scope``."""
    if response.status_code == 422:
        assert response.json()["field"] == "path.scope", response.json()


def session_ended(world: World, who: str, creds: Persona, response: Any) -> None:
    """After a successful sign-out the same token gets 401."""
    if creds.user_id is None:
        return
    assert world.status_of(dict(creds)) == 401, f"{who}'s token still works after signing out"


def membership_removed(world: World, who: str, creds: Persona, response: Any) -> None:
    """An allowed removal deletes the membership and ends the victim's sessions; a denied one changes nothing."""
    with world.db() as db:
        still_there = db.get(Membership, world.victim_memberships[who]) is not None
    if response.status_code == 204:
        assert not still_there, "204 but the membership is still there"
        assert world.status_of(dict(world.victim)) == 401, "the official's token still works after removal"
    else:
        assert still_there, f"{who} was refused ({response.status_code}) yet the membership is gone"


def membership_added(world: World, who: str, creds: Persona, response: Any) -> None:
    """An allowed grant answers with the new membership."""
    if response.status_code == 201:
        assert response.json()["unit_id"] == "thuan-hoa" and response.json()["role"] == "commune_official"


def tokens_issued(world: World, who: str, creds: Persona, response: Any) -> None:
    """A successful sign-in or refresh returns working tokens."""
    if response.status_code == 200:
        token = response.json()["access_token"]
        assert world.status_of({"Authorization": f"Bearer {token}"}) == 204


def signed_in_cookie(world: World, who: str, creds: Persona, response: Any) -> None:
    """The sign-in form sets the session cookie on success and stays on the form (role=alert) on failure."""
    if response.status_code == 303:
        assert response.headers["location"] == "/me" and "superapp_session=" in response.headers["set-cookie"]
    else:
        assert 'role="alert"' in response.text and "set-cookie" not in response.headers


def _victim_membership(world: World, who: str) -> str:
    return f"/api/memberships/{world.victim_memberships[who]}"


def _victim_memberships_url(world: World, who: str) -> str:
    return f"/api/users/{world.victim.user_id}/memberships"


def _victim_page(world: World, who: str) -> str:
    return f"/admin/officials/{world.victim.user_id}"


def _resident_page(world: World, who: str) -> str:
    return f"/admin/officials/{world.personas['resident_a'].user_id}"


def _victim_page_part(part: str) -> Callable[[World, str], str]:
    return lambda world, who: f"/admin/officials/{world.victim.user_id}/{part}"


def _resident_memberships_url(world: World, who: str) -> str:
    return f"/api/users/{world.personas['resident_a'].user_id}/memberships"


def _login(world: World, who: str) -> dict[str, str]:
    return {"username": world.personas["department"].username or "", "password": PASSWORD}


def _wrong_password(world: World, who: str) -> dict[str, str]:
    # each official tries their own account, the others the department official's: no account is locked
    account = world.personas[who if who in OFFICIALS else "department"].username or ""
    return {"username": account, "password": PASSWORD + "-wrong"}


def _withdraw_consents(world: World) -> None:
    with world.db() as db:
        for row in db.exec(select(MiniAppConsent)):
            db.delete(row)
        db.commit()


def _grant_location(world: World) -> None:
    for resident in RESIDENTS:
        world.api.put("/api/me/consents/festival/location", headers=dict(world.personas[resident]))


def _refresh(world: World, who: str) -> dict[str, str]:
    return {"refresh_token": world.refresh_token(who)}



# --- a resident's own account rows (core/identity/resident_pages.py) ------------------------------------


def own_data(world: World, who: str, creds: Persona, response: Any) -> None:
    """Download my data holds the caller's own account, and no other account's sessions."""
    if creds.user_id is None:
        return
    body = response.json()
    assert body["account"]["id"] == creds.user_id, f"{who} downloaded account {body['account']['id']}"
    owners = {row["user_id"] for row in body["records"].get("auth_session", [])}
    assert owners <= {creds.user_id}, f"{who}'s download holds other accounts' sessions: {owners}"
    assert "password_hash" not in body["account"] and "token_hash" not in str(body["records"].get("refresh_token"))


def account_erased(world: World, who: str, creds: Persona, response: Any) -> None:
    """Deleting my account removes that account only; an official's stays."""
    from core.identity.models import User

    with world.db() as db:
        gone = db.get(User, creds.user_id) is None if creds.user_id else True
    if who in RESIDENTS:
        assert gone, f"{who}'s account is still there after deleting it"
    elif creds.user_id:
        assert not gone, f"{who}'s official account was deleted from the profile page"


def _own_profile_form(world: World, who: str) -> dict[str, Any]:
    """The profile form as the persona would send it unchanged (their own home ward, Vietnamese)."""
    home = {"resident_a": "phu-xuan", "resident_b": "kim-long"}.get(who, "")
    return {"display_name": f"Người dân {who}", "home_unit_id": home, "locale": "vi"}


# --- notifications rows ---------------------------------------------------------------------------------

_MADE: dict[str, int] = {}


def _give_resident_a_a_notification(world: World) -> None:
    with world.db() as db:
        note = Notification(miniapp="core", topic="announcements", title_vi="a", title_en="a", body_vi="b",
                            body_en="b")
        db.add(note)
        db.flush()
        db.add(InboxItem(user_id=world.personas["resident_a"].user_id, notification_id=note.id))
        db.commit()
        _MADE["inbox_item"] = note.id  # an inbox entry is known by its notification's id


def _inbox_item_url(world: World, who: str) -> str:
    return f"/api/inbox/{_MADE['inbox_item']}/read"


def _notify_phu_xuan(world: World) -> None:
    with world.db() as db:
        receipt = world.api.app.state.notifier.send(
            db, miniapp="core", topic="announcements", title={"vi": "a", "en": "a"}, body={"vi": "b", "en": "b"},
            units=["phu-xuan"])
        db.commit()
        _MADE["phu_xuan_notice"] = receipt.notification_id


def _notice_status_url(world: World, who: str) -> str:
    return f"/api/notifications/{_MADE['phu_xuan_notice']}"


def _give_resident_a_a_device(world: World) -> None:
    with world.db() as db:
        device = Device(user_id=world.personas["resident_a"].user_id, token="matrix-device-" + "z" * 30,
                        platform="android", app_version="1.0")
        db.add(device)
        db.commit()
        _MADE["device"] = device.id


def _device_url(world: World, who: str) -> str:
    return f"/api/devices/{_MADE['device']}"


def _device_body(world: World, who: str) -> dict[str, str]:
    return {"token": f"matrix-{who.replace('_', '-')}-" + "t" * 24, "platform": "android", "app_version": "1.0"}

# --- feed rows --------------------------------------------------------------------------------------------


def _feed_item(world: World, name: str, **fields: Any) -> int:
    """The id of feed item ``name`` of this world, published through the service the first time it is asked for."""
    from core.feed import service as feed

    made = world.__dict__.setdefault("feed_items", {})
    if name not in made:
        values: dict[str, Any] = {"author_unit_id": "hue", "author_user_id": None, "kind": "news", "severity": None,
                                  "audience": "everyone", "title": {"vi": "Tin", "en": "News"},
                                  "body": {"vi": "Nội dung", "en": "Text"}}
        withdrawn = fields.pop("withdrawn", False)
        with world.db() as db:
            item = feed.publish_item(db, **{**values, **fields})
            if withdrawn:
                feed.withdraw_item(db, item_id=item.id)
        made[name] = item.id
    return made[name]


def _feed_url(name: str, **fields: Any) -> Callable[[World, str], str]:
    """The URL of one shared feed item (read-only rows)."""
    return lambda world, who: f"/api/feed/{_feed_item(world, name, **fields)}"


def _own_feed_url(name: str, **fields: Any) -> Callable[[World, str], str]:
    """The URL of a feed item of each persona's own (rows that withdraw it)."""
    return lambda world, who: f"/api/feed/{_feed_item(world, f'{name} for {who}', **fields)}"


_PHU_XUAN_ONLY = dict(unit_ids=["phu-xuan"], title={"vi": "Chỉ Phú Xuân", "en": "Phu Xuan only"})
_SEES_PHU_XUAN = ("resident_a", "commune_px", "operator", "admin")


def feed_targeting(world: World, who: str, creds: Persona, response: Any) -> None:
    """The feed shows Phú Xuân's item to Phú Xuân's resident and officials (and operators, admins) only."""
    ids = {item["id"] for item in response.json()["items"]}
    shown = _feed_item(world, "phu-xuan", **_PHU_XUAN_ONLY) in ids
    assert shown == (who in _SEES_PHU_XUAN), f"Phú Xuân's item {'shown to' if shown else 'hidden from'} {who}"
    assert _feed_item(world, "city") in ids


def feed_field(name: str) -> Callable[[World, str, Persona, Any], None]:
    """A 422 names ``name``."""

    def check(world: World, who: str, creds: Persona, response: Any) -> None:
        if response.status_code == 422:
            assert response.json()["field"] == name, response.json()

    return check


def feed_withdrawn(world: World, who: str, creds: Persona, response: Any) -> None:
    """An allowed withdrawal takes the item off the feed; a refused one leaves it there."""
    from core.feed.models import FeedItem

    item_id = int(response.request.url.path.rsplit("/", 1)[1])
    with world.db() as db:
        withdrawn = db.get(FeedItem, item_id).withdrawn_at is not None
    assert withdrawn == (response.status_code == 204), f"{who}: {response.status_code} but withdrawn={withdrawn}"


def feed_publish_link(world: World, who: str, creds: Persona, response: Any) -> None:
    """The feed page offers the publish form to those who may publish, and only to them."""
    shown = 'data-testid="publish-link"' in response.text
    assert shown == (who in OFFICIALS), f"publish link {'shown to' if shown else 'hidden from'} {who}"


def _feed_body(**change: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"author_unit_id": "phu-xuan", "kind": "warning", "severity": "warning",
                            "title": {"vi": "Cảnh báo", "en": "Warning"}, "body": {"vi": "Nội dung", "en": "Text"},
                            "unit_ids": ["phu-xuan"]}
    return {**body, **change}


_FEED_FORM = {"author_unit_id": "phu-xuan", "kind": "news", "severity": "", "audience": "everyone",
              "title_vi": "Tin phường", "title_en": "Ward news", "body_vi": "Nội dung", "body_en": "Text"}
PUBLISHERS = ("commune_px", "commune_kl", "department", "operator", "admin")

# --- The table: (method, path template) -> cases ----------------------------------------------------------

SIGN_IN_ROWS = dict(before=World.fresh_rate_limits)

MATRIX: dict[tuple[str, str], list[Case]] = {
    ("GET", "/healthz"): [Case("liveness", "/healthz", PUBLIC)],
    ("GET", "/readyz"): [Case("readiness", "/readyz", PUBLIC)],
    ("GET", "/problems"): [Case("problem types", "/problems", PUBLIC)],
    ("GET", "/problems/{name}"): [Case("one problem type", "/problems/validation", PUBLIC)],
    ("GET", "/metrics"): [Case("metrics", "/metrics", PUBLIC)],
    ("GET", "/api/miniapps"): [Case("home screen manifests", "/api/miniapps", PUBLIC)],
    ("GET", "/schemas/miniapp-manifest.json"): [Case("manifest JSON Schema", "/schemas/miniapp-manifest.json", PUBLIC)],
    ("GET", "/api/units"): [Case("org units", "/api/units", PUBLIC)],
    ("GET", "/api/units/{unit_id}"): [
        Case("one unit", "/api/units/phu-xuan", PUBLIC),
        Case("unknown unit", "/api/units/no-such-unit", everyone(404)),
    ],
    ("POST", "/api/auth/firebase"): [
        # this host has no Firebase project: the route says so to everyone (see test_firebase_sign_in_is_public)
        Case("Firebase not configured", "/api/auth/firebase", everyone(404), json={"id_token": "x.y.z"}),
    ],
    ("POST", "/api/auth/dev/code"): [
        # a phone number each: codes are limited per phone number (five an hour)
        Case("ask for a dev code", "/api/auth/dev/code", PUBLIC,
             json=lambda world, who: {"phone": f"0912 345 {PERSONAS.index(who):03d}"}),
    ],
    ("POST", "/api/auth/dev/verify"): [
        Case("dev code sign-in", "/api/auth/dev/verify", PUBLIC, json=World.dev_code, check=tokens_issued),
        Case("wrong dev code", "/api/auth/dev/verify", everyone(401), json={"phone": "0912345678", "code": "000000"}),
    ],
    ("POST", "/api/auth/login"): [
        Case("password sign-in", "/api/auth/login", PUBLIC, json=_login, check=tokens_issued, **SIGN_IN_ROWS),
        Case("wrong password", "/api/auth/login", everyone(401), json=_wrong_password, **SIGN_IN_ROWS),
    ],
    ("POST", "/api/auth/refresh"): [
        Case("refresh", "/api/auth/refresh", PUBLIC, json=_refresh, check=tokens_issued),
        Case("bad refresh token", "/api/auth/refresh", everyone(401), json={"refresh_token": "not-a-token"}),
    ],
    ("POST", "/api/auth/logout"): [
        Case("sign out", "/api/auth/logout", signed_in(), fresh="session", check=session_ended),
    ],
    ("POST", "/api/auth/logout-all"): [
        Case("sign out everywhere", "/api/auth/logout-all", signed_in(), fresh="account", check=session_ended),
    ],
    ("GET", "/api/auth/check"): [Case("token check", "/api/auth/check", signed_in())],
    ("GET", "/api/me"): [Case("own profile", "/api/me", signed_in(), check=own_profile)],
    ("PATCH", "/api/me"): [
        Case("change own language", "/api/me", signed_in(), json={"locale": "vi"}, check=own_profile),
    ],
    ("GET", "/api/me/sessions"): [Case("own sessions", "/api/me/sessions", signed_in(), check=own_sessions)],
    ("GET", "/api/me/consents"): [Case("own consents", "/api/me/consents", residents())],
    ("PUT", "/api/me/consents/{miniapp_id}/{scope}"): [
        Case("grant festival/location", "/api/me/consents/festival/location", residents()),
        Case("grant to an unknown mini-app", "/api/me/consents/no-such-app/location", residents(404)),
        Case("grant a scope not asked for", "/api/me/consents/festival/camera", residents(422),
             check=consent_field),
        # a value that is no scope at all fails validation before the endpoint's own checks run
        Case("grant a non-scope", "/api/me/consents/festival/everything", residents(422, officials=422),
             check=consent_field),
    ],
    ("DELETE", "/api/me/consents/{miniapp_id}/{scope}"): [
        Case("revoke festival/location", "/api/me/consents/festival/location", residents()),
        Case("revoke from an unknown mini-app", "/api/me/consents/no-such-app/location", residents(404)),
        Case("revoke a scope not asked for", "/api/me/consents/festival/camera", residents(422),
             check=consent_field),
    ],
    ("GET", "/api/units/{unit_id}/members"): [
        Case("members of Phú Xuân", "/api/units/phu-xuan/members", only("commune_px", "operator", "admin"),
             check=members_of("commune_px", absent="commune_kl")),
        Case("members of Kim Long", "/api/units/kim-long/members", only("commune_kl", "operator", "admin"),
             check=members_of("commune_kl", absent="commune_px")),
        Case("members of the Department of Justice", "/api/units/so-tu-phap/members",
             only("department", "operator", "admin"), check=members_of("department", absent="commune_px")),
        Case("members of the city", "/api/units/hue/members", only("operator", "admin"),
             check=members_of("operator", absent="commune_px")),
        # the query string cannot name another unit than the path's
        Case("members with a smuggled unit", "/api/units/kim-long/members?unit_id=phu-xuan",
             only("commune_kl", "operator", "admin")),
    ],
    ("POST", "/api/users/{user_id}/memberships"): [
        Case("grant a role", _victim_memberships_url, only("admin"),
             json={"role": "commune_official", "unit_id": "thuan-hoa"}, check=membership_added),
        Case("grant a role to a resident", _resident_memberships_url, only("admin", admin=404),
             json={"role": "commune_official", "unit_id": "thuan-hoa"}),
        Case("grant a role in the wrong kind of unit", _victim_memberships_url, only("admin", admin=422),
             json={"role": "operator", "unit_id": "phu-xuan"}),
    ],
    ("DELETE", "/api/memberships/{membership_id}"): [
        Case("take a role away", _victim_membership, only("admin"), check=membership_removed),
        Case("unknown membership", "/api/memberships/987654", only("admin", admin=404)),
    ],
    ("GET", "/api/audit"): [Case("audit log", "/api/audit", only("admin"))],
    ("GET", "/manifest.webmanifest"): [Case("web app manifest", "/manifest.webmanifest?lang=en", PUBLIC)],
    ("GET", "/sw.js"): [Case("service worker", "/sw.js", PUBLIC)],
    # --- the admin pages (core/admin.py): the same permissions as the API, pages answer 403 or sign-in ---
    ("GET", "/admin"): [Case("admin menu", "/admin", only("operator", "admin", anonymous=SIGN_IN))],
    ("GET", "/admin/officials"): [Case("officials page", "/admin/officials", only("admin", anonymous=SIGN_IN))],
    ("POST", "/admin/officials"): [
        Case("create an official from the page", "/admin/officials", only("admin", anonymous=SIGN_IN),
             data={"username": "matrix.page", "display_name": "Cán bộ mới", "password": "Matrix-Trang-2025x",
                   "role": "commune_official", "unit_id": "thuan-hoa"}),
    ],
    ("GET", "/admin/officials/{user_id}"): [
        Case("an official's page", _victim_page, only("admin", anonymous=SIGN_IN)),
        Case("a resident is no official", _resident_page, only("admin", admin=404, anonymous=SIGN_IN)),
    ],
    ("POST", "/admin/officials/{user_id}/memberships"): [
        Case("grant a role from the page", _victim_page_part("memberships"), only("admin", anonymous=SIGN_IN),
             data={"role": "commune_official", "unit_id": "thuan-hoa"}),
    ],
    ("POST", "/admin/officials/{user_id}/memberships/{membership_id}/remove"): [
        Case("remove an unknown role from the page", _victim_page_part("memberships/987654/remove"),
             only("admin", admin=404, anonymous=SIGN_IN)),
    ],
    ("POST", "/admin/officials/{user_id}/active"): [
        Case("enable an active official", _victim_page_part("active"), only("admin", anonymous=SIGN_IN),
             data={"active": "1"}),
    ],
    ("POST", "/admin/officials/{user_id}/password"): [
        Case("a password the rules refuse", _victim_page_part("password"), only("admin", admin=422, anonymous=SIGN_IN),
             data={"password": "short"}),
    ],
    ("GET", "/admin/audit"): [Case("audit log page", "/admin/audit?action=sign_in", only("admin", anonymous=SIGN_IN))],
    ("GET", "/auth/login"): [Case("sign-in form", "/auth/login", PUBLIC)],
    ("POST", "/auth/login"): [
        Case("sign-in form posted", "/auth/login", PUBLIC, data=_login, check=signed_in_cookie, **SIGN_IN_ROWS),
        Case("sign-in form, wrong password", "/auth/login", everyone(401), data=_wrong_password,
             check=signed_in_cookie, **SIGN_IN_ROWS),
    ],
    ("GET", "/me"): [
        Case("profile page", "/me", signed_in(anonymous=SIGN_IN), check=own_profile_page),
    ],
    ("GET", "/inbox"): [Case("inbox page", "/inbox", signed_in(anonymous=SIGN_IN))],
    ("GET", "/inbox/{notification_id}/open"): [
        Case("open a notification not in the inbox", "/inbox/987654/open", signed_in(404, anonymous=SIGN_IN)),
    ],
    ("POST", "/inbox/read-all"): [Case("mark all read (page)", "/inbox/read-all", signed_in(anonymous=SIGN_IN))],
    # --- residents' sign-in, first run, profile, my data, deletion, WebView launch codes, chosen place ---
    ("GET", "/auth/phone"): [Case("residents' sign-in page", "/auth/phone?next=/inbox", PUBLIC)],
    ("GET", "/auth/continue"): [Case("after sign-in", "/auth/continue?next=/inbox", PUBLIC)],
    ("GET", "/me/home"): [Case("home ward step", "/me/home?first=1", signed_in(anonymous=SIGN_IN))],
    ("POST", "/me/home"): [
        Case("keep my home ward", "/me/home", residents(officials=403) | {"anonymous": SIGN_IN},
             data=lambda world, who: {"home_unit_id": _own_profile_form(world, who)["home_unit_id"] or "phu-xuan"}),
        Case("a home ward that is no ward", "/me/home", residents(422, officials=403) | {"anonymous": SIGN_IN},
             data={"home_unit_id": "so-tu-phap"}),
    ],
    ("POST", "/me"): [
        Case("save my profile", "/me", residents(officials=403) | {"anonymous": SIGN_IN}, data=_own_profile_form),
        Case("follow a department", "/me", residents(422, officials=403) | {"anonymous": SIGN_IN},
             data=lambda world, who: _own_profile_form(world, who) | {"follows": "so-tu-phap"}),
    ],
    ("POST", "/me/delete"): [
        Case("delete without ticking the box", "/me/delete", residents(422, officials=403) | {"anonymous": SIGN_IN}),
        Case("delete my account", "/me/delete", residents(officials=403) | {"anonymous": SIGN_IN},
             data={"confirm": "yes"}, fresh="account", check=account_erased),
    ],
    ("GET", "/me/delete"): [Case("the deletion form is on the profile page", "/me/delete", PUBLIC)],
    ("GET", "/auth/deleted"): [Case("account deleted page", "/auth/deleted", PUBLIC)],
    ("GET", "/auth/launch"): [Case("a wrong launch code", "/auth/launch?code=nope", everyone(401))],
    ("POST", "/auth/launch"): [Case("a wrong launch code", "/auth/launch", everyone(401), data={"code": "nope"})],
    ("POST", "/place"): [Case("choose Kim Long for warnings", "/place", PUBLIC, data={"unit": "kim-long"})],
    ("GET", "/warnings"): [Case("warnings in force", "/warnings", PUBLIC)],
    ("GET", "/warnings/{item_id}"): [Case("a warning that does not exist", "/warnings/987654", everyone(404))],
    ("POST", "/api/auth/launch-code"): [Case("a WebView launch code", "/api/auth/launch-code", signed_in())],
    ("GET", "/api/me/data"): [Case("download my data", "/api/me/data", signed_in(), check=own_data)],
    ("DELETE", "/api/me"): [
        Case("delete my account", "/api/me", residents(officials=403), fresh="account", check=account_erased),
    ],
    ("POST", "/auth/logout"): [
        # anonymous: nothing to sign out, back to the home page all the same
        Case("sign-out button", "/auth/logout", PUBLIC, fresh="session", check=session_ended),
    ],
    ("GET", "/"): [Case("home screen", "/", PUBLIC)],
    # --- the one search box: everyone may search; each provider filters what the caller may see ---
    ("GET", "/api/search"): [
        Case("search", "/api/search?q=le%20hoi", PUBLIC),
        Case("search for nothing", "/api/search?q=%20", everyone(422)),
    ],
    ("GET", "/search"): [Case("search page", "/search?q=le%20hoi", PUBLIC)],
    # --- mini-app settings: admins only ---
    ("GET", "/api/admin/miniapps/{miniapp_id}/settings"): [
        Case("festival settings", "/api/admin/miniapps/festival/settings", only("admin")),
        Case("settings of a mini-app without any", "/api/admin/miniapps/nosuch/settings", only("admin", admin=404)),
    ],
    ("PATCH", "/api/admin/miniapps/{miniapp_id}/settings"): [
        Case("change festival settings", "/api/admin/miniapps/festival/settings", only("admin"),
             json={"show_venue": True}),
        Case("a refused festival setting", "/api/admin/miniapps/festival/settings", only("admin", admin=422),
             json={"max_events": -1}),
    ],
    ("GET", "/admin/miniapps/{miniapp_id}/settings"): [
        Case("festival settings form", "/admin/miniapps/festival/settings", only("admin", anonymous=SIGN_IN)),
    ],
    ("POST", "/admin/miniapps/{miniapp_id}/settings"): [
        Case("festival settings form posted", "/admin/miniapps/festival/settings", only("admin", anonymous=SIGN_IN),
             data={"max_events": "40", "ordering": "soonest", "show_venue": "on"}),
    ],
    ("GET", "/api/miniapps/festival/events"): [Case("festival programme API", "/api/miniapps/festival/events", PUBLIC)],
    ("GET", "/m/festival/"): [Case("festival page", "/m/festival/", PUBLIC)],
    # --- notifications: inbox, devices, follows, sending ---
    ("GET", "/api/inbox"): [Case("own inbox", "/api/inbox", signed_in())],
    ("GET", "/api/inbox/badge"): [Case("own unread count", "/api/inbox/badge", signed_in())],
    ("POST", "/api/inbox/{item_id}/read"): [
        # resident_a's notification: everyone else is told it does not exist
        Case("mark resident_a's notification read", _inbox_item_url, only("resident_a", deny=404),
             before=lambda world: _give_resident_a_a_notification(world)),
    ],
    ("POST", "/api/inbox/read-all"): [Case("mark own inbox read", "/api/inbox/read-all", signed_in())],
    ("POST", "/api/devices"): [Case("register a device", "/api/devices", signed_in(), json=_device_body)],
    ("GET", "/api/devices"): [Case("own devices", "/api/devices", signed_in())],
    ("DELETE", "/api/devices/{device_id}"): [
        Case("unregister resident_a's device", _device_url, only("resident_a", deny=404),
             before=lambda world: _give_resident_a_a_device(world)),
    ],
    ("GET", "/api/me/follows"): [Case("own followed units", "/api/me/follows", signed_in())],
    ("PUT", "/api/me/follows/{unit_id}"): [Case("follow Kim Long", "/api/me/follows/kim-long", signed_in())],
    ("DELETE", "/api/me/follows/{unit_id}"): [Case("unfollow Kim Long", "/api/me/follows/kim-long", signed_in())],
    ("POST", "/api/notifications"): [
        Case("notify Phu Xuan's residents", "/api/notifications",
             only("commune_px", "department", "operator", "admin"),
             json={"title": {"vi": "Thông báo", "en": "Notice"}, "body": {"vi": "Nội dung", "en": "Text"},
                   "units": ["phu-xuan"]}),
    ],
    ("GET", "/api/notifications/{notification_id}"): [
        # a notice to Phu Xuan: its commune and the city-wide senders follow it; Kim Long is told it does not exist
        Case("follow a notice to Phu Xuan", _notice_status_url,
             only("commune_px", "department", "operator", "admin", commune_kl=404),
             before=_notify_phu_xuan),
    ],
    # --- feed: read, publish, withdraw, pages ---
    ("GET", "/api/feed"): [
        Case("the feed", "/api/feed", PUBLIC, check=feed_targeting,
             before=lambda world: (_feed_item(world, "city"), _feed_item(world, "phu-xuan", **_PHU_XUAN_ONLY))),
        Case("the feed, bad cursor", "/api/feed?cursor=nope", everyone(422), check=feed_field("query.cursor")),
    ],
    ("GET", "/api/feed/{item_id}"): [
        Case("city-wide news", _feed_url("city"), PUBLIC),
        Case("an item for Phú Xuân", _feed_url("phu-xuan", **_PHU_XUAN_ONLY),
             {**everyone(404), **dict.fromkeys(_SEES_PHU_XUAN, ALLOW)}),
        Case("an item for officials", _feed_url("officials", audience="officials"),
             {**everyone(404), **dict.fromkeys(OFFICIALS, ALLOW)}),
        Case("a withdrawn item", _feed_url("withdrawn", withdrawn=True), everyone(404)),
        Case("no such item", "/api/feed/987654", everyone(404)),
    ],
    ("POST", "/api/feed"): [
        Case("Phú Xuân's warning for Phú Xuân", "/api/feed", only("commune_px", "operator", "admin"),
             json=_feed_body()),
        Case("city-wide news of the Department of Justice", "/api/feed", only("department", "operator", "admin"),
             json=_feed_body(author_unit_id="so-tu-phap", kind="news", severity=None, unit_ids=[])),
        # a commune official speaks for their own unit only
        Case("Phú Xuân's warning for Kim Long", "/api/feed", only("operator", "admin"),
             json=_feed_body(unit_ids=["kim-long"])),
        Case("a warning without severity", "/api/feed",
             only("commune_px", "operator", "admin", commune_px=422, operator=422, admin=422),
             json=_feed_body(severity=None), check=feed_field("body.severity")),
    ],
    ("DELETE", "/api/feed/{item_id}"): [
        # Kim Long's and the department's officials cannot see a Phú Xuân-only item: 404, not 403
        Case("withdraw Phú Xuân's item for Phú Xuân", _own_feed_url("ward", author_unit_id="phu-xuan", **_PHU_XUAN_ONLY),
             only("commune_px", "operator", "admin", commune_kl=404, department=404), check=feed_withdrawn),
        Case("withdraw Phú Xuân's city-wide item", _own_feed_url("city", author_unit_id="phu-xuan"),
             only("commune_px", "operator", "admin"), check=feed_withdrawn),
        Case("withdraw no such item", "/api/feed/987654", only(*PUBLISHERS, **dict.fromkeys(PUBLISHERS, 404))),
    ],
    ("GET", "/feed"): [Case("feed page", "/feed", PUBLIC, check=feed_publish_link)],
    ("GET", "/feed/new"): [
        Case("publish form", "/feed/new", only(*PUBLISHERS, anonymous=SIGN_IN)),
    ],
    ("POST", "/feed/new"): [
        Case("publish form posted for Phú Xuân", "/feed/new", only("commune_px", "operator", "admin", anonymous=SIGN_IN),
             data=_FEED_FORM),
    ],
    ("GET", "/api/miniapps/festival/events/nearby"): [
        # needs the location scope: residents who have not granted it are refused, naming the scope
        Case("events near me, scope not granted", "/api/miniapps/festival/events/nearby?lat=16.47&lon=107.58",
             signed_in(**dict.fromkeys(RESIDENTS, 403)), before=lambda world: _withdraw_consents(world)),
        Case("events near me, scope granted", "/api/miniapps/festival/events/nearby?lat=16.47&lon=107.58",
             signed_in(), before=lambda world: _grant_location(world)),
    ],
}


def _miniapp_rows() -> dict[tuple[str, str], list[Case]]:
    """Every mini-app's rows, from ``tests/miniapps/<id>/matrix_rows.py`` (a route may have rows in one file only)."""
    rows: dict[tuple[str, str], list[Case]] = {}
    modules = [f"tests.miniapps.{path.parent.name}.matrix_rows"
               for path in sorted((Path(__file__).parents[2] / "miniapps").glob("*/matrix_rows.py"))]
    for name in [*modules, "tests.webapps.matrix_rows"]:  # the host's web mini-apps keep theirs beside their tests
        module = importlib.import_module(name)
        path = name
        for key, cases in module.ROWS.items():
            assert key not in rows and key not in MATRIX, f"{key} has rows in two places ({path})"
            rows[key] = cases
    return rows


MATRIX.update(_miniapp_rows())


def served_routes(app: Any) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, through included routers, minus docs and static files."""
    found: set[tuple[str, str]] = set()
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, Mount):
            assert isinstance(route.app, StaticFiles), f"mount {context.path} is not static files: add it here"
            continue
        if context.path in NOT_IN_MATRIX:
            continue
        if isinstance(route, APIWebSocketRoute):
            # /ws authorises at the handshake and per channel: tests/push/test_realtime.py covers it
            # for anonymous, bad tokens and every channel rule.
            assert context.path == "/ws", f"a WebSocket route {context.path} needs its authorisation tests"
            continue
        assert context.methods, f"route {context.path} ({type(route).__name__}) has no methods"
        found.update((method, context.path) for method in context.methods)
    return found


# --- Tests -----------------------------------------------------------------------------------------------------


def test_every_route_has_a_row(sqlite_url: str) -> None:
    app = create_app(base_settings(database_url=sqlite_url, env="dev"))
    served = served_routes(app)
    assert any(path.startswith("/api/miniapps/festival/") for _method, path in served), "mini-app routes not seen"
    missing = sorted(served - set(MATRIX))
    stale = sorted(set(MATRIX) - served)
    assert not missing, f"routes without a row in the authorisation matrix: {missing}"
    assert not stale, f"rows for routes the host does not serve: {stale}"
    for key, cases in MATRIX.items():
        assert cases, f"{key} has no case"
        for case in cases:
            assert set(case.expect) == set(PERSONAS), f"{key} '{case.label}' does not cover every persona"


def test_route_walk_agrees_with_the_openapi_schema(sqlite_url: str) -> None:
    app = create_app(base_settings(database_url=sqlite_url, env="dev"))
    # OpenAPI writes a path parameter without its Starlette convertor: {path:path} is documented as {path}
    served = {(method, re.sub(r"\{(\w+):\w+\}", r"{\1}", path)) for method, path in served_routes(app)}
    documented = {(method.upper(), path) for path, operations in app.openapi()["paths"].items()
                  for method in operations}
    # an independent enumeration: the walk sees through include_router and misses no documented route
    assert documented and documented <= served, sorted(documented - served)
    assert ("GET", "/me") in served and ("GET", "/m/festival/") in served  # pages are not in the schema


def test_host_finds_every_permission_its_routes_check(sqlite_url: str) -> None:
    """create_app refuses routes that check undeclared permissions; that check must see every route."""
    app = create_app(base_settings(database_url=sqlite_url))
    routers = list(CORE_ROUTERS) + [r for m in app.state.miniapps for r in m.api_routers + m.page_routers]
    checked = permission_checks(routers)
    assert {p.name for p in CORE_PERMISSIONS} <= checked, (
        f"permission_checks found {sorted(checked)}: some routes were not walked"
    )


@pytest.fixture
def world(fast_passwords: None, api: TestClient, personas: dict[str, Persona], make_persona: Callable[[str], Persona],
          sign_in_again: Callable[[Persona], Persona]) -> World:
    """The personas plus a victim official holding one membership per persona for the removal rows."""
    with Session(api.app.state.engine, expire_on_commit=False) as db:
        user = service.create_official(
            db, username="victim.official", display_name="Cán bộ thử nghiệm", password=PASSWORD,
            memberships=[("commune_official", unit) for unit in VICTIM_UNITS.values()])
        rows = {m.unit_id: m.id for m in db.exec(select(Membership).where(Membership.user_id == user.id))}
        pair = service.start_session(db, secret=api.app.state.settings.secret_key, user=user, method="test",
                                     client="pytest", address="127.0.0.1")
    victim = Persona("victim", user_id=user.id, session_id=pair.session_id, access_token=pair.access_token,
                     username=user.username, display_name=user.display_name)
    return World(api=api, personas=personas, make_persona=make_persona, sign_in_again=sign_in_again,
                 victim=victim, victim_memberships={p: rows[u] for p, u in VICTIM_UNITS.items()})


def _outcome_ok(expected: Outcome, response: Any) -> bool:
    status = response.status_code
    if expected == ALLOW:
        return 200 <= status < 400
    if expected == SIGN_IN:
        # officials' form or residents' phone sign-in, both coming back afterwards
        return status == 303 and response.headers.get("location", "").startswith(("/auth/login", "/auth/phone"))
    return status == expected


def test_authorisation_matrix(world: World) -> None:
    api = world.api
    failures: list[str] = []
    ran = 0
    for (method, _template), cases in MATRIX.items():
        for case in cases:
            if case.before:
                case.before(world)
            for who in PERSONAS:
                creds = world.credentials(who, case.fresh)
                url = resolve(case.url, world, who)
                api.cookies.clear()  # a sign-in form row must not leave a cookie for the next persona
                response = api.request(method, url, headers=dict(creds), json=resolve(case.json, world, who),
                                       data=resolve(case.data, world, who), follow_redirects=False)
                ran += 1
                expected = case.expect[who]
                where = f"{method} {url} [{case.label}] as {who}"
                if not _outcome_ok(expected, response):
                    failures.append(f"{where}: expected {expected}, got {response.status_code} "
                                    f"{response.text[:160]!r}")
                    continue
                if case.check:
                    try:
                        case.check(world, who, creds, response)
                    except AssertionError as exc:
                        failures.append(f"{where}: {exc}")
    assert ran >= len(MATRIX) * len(PERSONAS)
    assert not failures, f"{len(failures)} of {ran} requests broke the matrix:\n" + "\n".join(failures)


# --- Sessions end where the matrix says they do ------------------------------------------------------------


def test_removing_a_membership_ends_the_officials_sessions(api: TestClient, commune_px: Persona,
                                                           admin: Persona) -> None:
    # commune_px is signed in and recently verified (cached by the authenticator)
    assert api.get("/api/units/phu-xuan/members", headers=commune_px).status_code == 200
    [membership] = api.get("/api/me", headers=commune_px).json()["memberships"]
    assert api.delete(f"/api/memberships/{membership['id']}", headers=commune_px).status_code == 403
    assert api.delete(f"/api/memberships/{membership['id']}", headers=admin).status_code == 204
    # the very next request with the same token is refused, and so is its refresh token
    assert api.get("/api/units/phu-xuan/members", headers=commune_px).status_code == 401
    assert api.get("/api/me", headers=commune_px).status_code == 401
    refreshed = api.post("/api/auth/refresh", json={"refresh_token": commune_px.refresh_token})
    assert refreshed.status_code == 401
    removed = api.get("/api/audit", params={"action": "membership_removed"}, headers=admin).json()["items"]
    assert [(e["actor_id"], e["subject_id"]) for e in removed] == [(admin.user_id, commune_px.user_id)]


def test_membership_added_by_admin_applies_on_the_next_request(api: TestClient, commune_px: Persona,
                                                              admin: Persona) -> None:
    assert api.get("/api/units/kim-long/members", headers=commune_px).status_code == 403
    response = api.post(f"/api/users/{commune_px.user_id}/memberships", headers=admin,
                        json={"role": "commune_official", "unit_id": "kim-long"})
    assert response.status_code == 201
    assert api.get("/api/units/kim-long/members", headers=commune_px).status_code == 200


def test_logout_ends_only_that_session_and_logout_all_ends_every_one(
        api: TestClient, department: Persona, sign_in_again: Callable[[Persona], Persona]) -> None:
    phone, browser = department, sign_in_again(department)
    assert api.get("/api/auth/check", headers=phone).status_code == 204
    assert api.post("/api/auth/logout", headers=phone).status_code == 204
    assert api.get("/api/auth/check", headers=phone).status_code == 401
    assert api.post("/api/auth/refresh", json={"refresh_token": phone.refresh_token}).status_code == 401
    assert api.get("/api/auth/check", headers=browser).status_code == 204
    third = sign_in_again(department)
    assert api.post("/api/auth/logout-all", headers=browser).status_code == 204
    assert api.get("/api/auth/check", headers=browser).status_code == 401
    assert api.get("/api/auth/check", headers=third).status_code == 401


def test_sign_in_is_public_and_wrong_password_is_401(api: TestClient, anonymous: Persona,
                                                     operator: Persona) -> None:
    good = api.post("/api/auth/login", headers=anonymous,
                    json={"username": operator.username, "password": PASSWORD})
    assert good.status_code == 200 and good.json()["user_id"] == operator.user_id
    bad = api.post("/api/auth/login", headers=anonymous,
                   json={"username": operator.username, "password": "Sai-mat-khau-123"})
    assert bad.status_code == 401
    assert bad.json()["detail"] == "wrong username or password"
    unknown = api.post("/api/auth/login", headers=anonymous,
                       json={"username": "nobody.here", "password": "Sai-mat-khau-123"})
    assert unknown.status_code == 401 and unknown.json()["detail"] == bad.json()["detail"]


def test_firebase_sign_in_is_public(database_url: str, tmp_path: Path) -> None:
    """With a Firebase project configured, anyone with a valid phone ID token gets our tokens."""
    from plugins.fakes.firebase import serve_firebase_certs

    with serve_firebase_certs() as fake:
        settings = base_settings(database_url=database_url, env="dev", firebase_project_id=fake.project_id,
                                 var_dir=tmp_path / "var")
        with TestClient(create_app(settings)) as client:
            good = client.post("/api/auth/firebase", json={"id_token": fake.mint("fb-resident-1", "+84935000001")})
            forged = client.post("/api/auth/firebase",
                                 json={"id_token": fake.mint("fb-resident-2", "+84935000002", variant="unsigned")})
            assert good.status_code == 200, good.text
            me = client.get("/api/me", headers={"Authorization": f"Bearer {good.json()['access_token']}"})
            assert me.json()["kind"] == "resident" and me.json()["phone"] == "+84935000001"
            assert forged.status_code == 401


def test_a_request_in_flight_during_sign_out_does_not_revive_the_session(
        api: TestClient, department: Persona, sign_in_again: Callable[[Persona], Persona],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A sign-out landing while a request is being authenticated must not be undone by that request's cache."""
    # Deterministic interleaving: the account is signed out everywhere after the request loaded its
    # caller from the database but before it cached that caller.
    from core.identity import authn

    real_load = authn.load_principal
    phone = sign_in_again(department)
    signed_out: list[int] = []

    def load_then_sign_out_everywhere(db: Session, *, user_id: int, session_id: str) -> Any:
        principal = real_load(db, user_id=user_id, session_id=session_id)
        if not signed_out:
            signed_out.append(0)
            signed_out[0] = api.post("/api/auth/logout-all", headers=phone).status_code
        return principal

    monkeypatch.setattr(authn, "load_principal", load_then_sign_out_everywhere)
    in_flight = api.get("/api/auth/check", headers=department)
    monkeypatch.undo()
    assert signed_out == [204] and in_flight.status_code == 204  # it was valid when it was checked
    assert api.get("/api/auth/check", headers=phone).status_code == 401
    assert api.get("/api/auth/check", headers=department).status_code == 401, (
        "the in-flight request cached the caller after the sign-out: the token works for auth_cache_seconds more")
