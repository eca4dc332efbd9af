"""Identity API: sign-in (Firebase, development code, officials' password), tokens, profile, consent,
unit members, memberships and the audit log."""

from __future__ import annotations

import json
import logging
import unicodedata
from datetime import datetime
from typing import Annotated, Any, Literal

from anyio import from_thread
from fastapi import APIRouter, Query, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator
from sqlmodel import select
from starlette.concurrency import run_in_threadpool

from core.db import SessionDep
from core.errors import Problem
from core.identity import resident, service
from core.identity.authn import SESSION_COOKIE, client_address
from core.identity.authz import require_permission
from core.identity.deps import CurrentUser
from core.identity.firebase import FirebaseTokenError
from core.identity.models import AuditEvent, Membership, User, UserKind
from core.identity.principal import Principal
from core.identity.ratelimit import Throttled
from core.identity.service import IdentityError, TokenPair
from core.identity.tokens import (
    DEVICE_TTL,
    WEB_SESSION_TTL,
    device_cookie_name,
    issue_device_token,
    read_device_token,
)
from core.units.models import OrgUnit, UnitKind
from core.units.service import CITY_ID
from core.webapps import webhooks as webapp_webhooks
from plugins.manifest import Scope

log = logging.getLogger(__name__)
router = APIRouter(tags=["identity"])

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Strict(BaseModel):
    """Request bodies refuse unknown fields, so a misspelt field is named instead of ignored."""

    model_config = ConfigDict(extra="forbid")


class TokenResponse(BaseModel):
    """Tokens issued at sign-in or refresh."""

    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    user_id: int


def _tokens(pair: TokenPair) -> TokenResponse:
    return TokenResponse(access_token=pair.access_token, refresh_token=pair.refresh_token,
                         expires_in=pair.expires_in, user_id=pair.user_id)


def _problem(exc: IdentityError) -> Problem:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return Problem(exc.status, exc.reason, field=exc.field, headers=headers)


# --- Sign-in ------------------------------------------------------------------------------------------


class FirebaseSignIn(Strict):
    """The Firebase ID token the app got from Firebase Authentication; ``web`` for a browser session."""

    id_token: Annotated[str, StringConstraints(min_length=1, max_length=8192)]
    web: bool = Field(False, description="True from the web sign-in page: answer 204 and set the session "
                                         "cookie instead of returning tokens.")


WEB_SIGN_IN: dict[int | str, dict[str, Any]] = {204: {"description": "Signed in (``web``: the session cookie is set, no tokens returned)"}}


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    """The browser's session: an HttpOnly, SameSite=Lax cookie holding a web session's access token."""
    response.set_cookie(SESSION_COOKIE, token, max_age=int(WEB_SESSION_TTL.total_seconds()), httponly=True,
                        samesite="lax", secure=request.app.state.settings.env == "production", path="/")


def _web_session(request: Request, pair: TokenPair) -> Response:
    response = Response(status_code=204)
    set_session_cookie(request, response, pair.access_token)
    return response


@router.post("/api/auth/firebase", operation_id="sign_in_with_firebase", response_model=TokenResponse,
             responses={**WEB_SIGN_IN, 401: {"description": "The Firebase ID token is refused"},
                        404: {"description": "Firebase sign-in is not configured on this server"}})
async def sign_in_with_firebase(body: FirebaseSignIn, request: Request) -> Any:
    """Residents: exchange a Firebase ID token (phone sign-in) for our tokens, or a browser session."""
    if body.web:
        request.app.state.authenticator.check_origin(request)  # no one else's page signs a browser in
    verifier = request.app.state.firebase
    if verifier is None:
        raise Problem(404, "Firebase sign-in is not configured on this server")
    try:
        identity = await run_in_threadpool(verifier.verify, body.id_token)
    except FirebaseTokenError as exc:
        raise Problem(exc.status, exc.reason, field="id_token", type="/problems/invalid-token") from None
    if not identity.phone:
        raise Problem(422, "the Firebase account has no phone number; sign in with a phone number",
                      field="id_token")
    try:
        phone = service.normalize_phone(identity.phone)
    except IdentityError as exc:
        raise _problem(exc) from None
    pair = await run_in_threadpool(_resident_session, request, identity.uid, phone, "firebase", body.web)
    return _web_session(request, pair) if body.web else _tokens(pair)


def _resident_session(request: Request, firebase_uid: str | None, phone: str, method: str,
                      web: bool = False) -> TokenPair:
    from sqlmodel import Session

    with Session(request.app.state.engine, expire_on_commit=False) as db:
        try:
            user = service.find_or_create_resident(db, firebase_uid=firebase_uid, phone=phone,
                                                   address=client_address(request))
            return service.start_session(db, secret=request.app.state.settings.secret_key, user=user,
                                         method=method, client=request.headers.get("user-agent"),
                                         address=client_address(request), web=web)
        except IdentityError as exc:
            raise _problem(exc) from None


class DevCodeRequest(Strict):
    """A phone number to send a development sign-in code to."""

    phone: Annotated[str, StringConstraints(strip_whitespace=True, min_length=9, max_length=20)]


class DevCodeCheck(DevCodeRequest):
    """The phone number and the code from the log."""

    code: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d{6}$")]
    web: bool = Field(False, description="True from the web sign-in page: answer 204 and set the session "
                                         "cookie instead of returning tokens.")


def _dev_only(request: Request) -> None:
    if request.app.state.settings.env != "dev":
        raise Problem(404, "the development sign-in exists only when SUPERAPP_ENV=dev")


@router.post("/api/auth/dev/code", operation_id="request_dev_code", status_code=202)
def request_dev_code(body: DevCodeRequest, request: Request, db: SessionDep) -> dict[str, Any]:
    """Development only: write a one-time sign-in code for a phone number to the server log."""
    _dev_only(request)
    try:
        phone = service.normalize_phone(body.phone)
        throttled = request.app.state.sign_in_limiter.code_request(phone=phone, address=client_address(request))
        if throttled is not None:
            what = "this phone number" if throttled.reason == "phone" else "your network address"
            raise IdentityError(429, f"too many codes asked for {what}; try again in {_wait(throttled.seconds)}",
                                field="phone" if throttled.reason == "phone" else None,
                                retry_after=throttled.seconds)
        code = service.start_dev_sign_in(db, secret=request.app.state.settings.secret_key, phone=phone)
    except IdentityError as exc:
        raise _problem(exc) from None
    log.warning("development sign-in code for %s: %s", phone, code)
    return {"phone": phone, "sent_to": "server log", "expires_in": int(service.DEV_CODE_TTL.total_seconds())}


@router.post("/api/auth/dev/verify", operation_id="verify_dev_code", response_model=TokenResponse,
             responses=WEB_SIGN_IN)
def verify_dev_code(body: DevCodeCheck, request: Request, db: SessionDep) -> Any:
    """Development only: sign a resident in with the code from the log (``web``: a browser session)."""
    _dev_only(request)
    if body.web:
        request.app.state.authenticator.check_origin(request)
    try:
        phone = service.check_dev_code(db, secret=request.app.state.settings.secret_key, phone=body.phone,
                                       code=body.code)
    except IdentityError as exc:
        raise _problem(exc) from None
    db.commit()
    pair = _resident_session(request, None, phone, "dev_code", body.web)
    return _web_session(request, pair) if body.web else _tokens(pair)


class PasswordSignIn(Strict):
    """An official's username and password."""

    username: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


def sign_in_official(request: Request, db: Any, *, username: str, password: str, web: bool = False) -> TokenPair:
    """Check the progressive delays and the password; one message for every failure (no enumeration).

    A client holding this account's device cookie is delayed only by its own failures, so an attack on
    the account or from the same network never keeps its owner out (see core/identity/ratelimit.py).
    """
    # One spelling of the account for the limiter, the audit and the look-up, so padding or case
    # cannot buy more guesses.
    username = username.strip().lower()
    limiter = request.app.state.sign_in_limiter
    address = client_address(request)
    secret = request.app.state.settings.secret_key
    device = read_device_token(request.cookies.get(device_cookie_name(username)), secret=secret, username=username)
    outcome = limiter.reserve(account=username, address=address, device=device)
    if isinstance(outcome, Throttled):
        what = "this account" if outcome.reason == "account" else "your network address"
        raise IdentityError(429, f"too many failed sign-ins for {what}; try again in {_wait(outcome.seconds)}",
                            retry_after=outcome.seconds)
    user = service.authenticate_official(db, username=username, password=password)
    if user is None:
        service.audit(db, "sign_in_failed", address=address, username=username[:64], known_device=device is not None)
        _alert_if_sustained(request, db, limiter.alarming(outcome))
        db.commit()
        raise IdentityError(401, "wrong username or password")
    limiter.succeeded(outcome)
    return service.start_session(db, secret=secret, user=user, method="password",
                                 client=request.headers.get("user-agent"), address=address, web=web)


def _wait(seconds: int) -> str:
    return f"{seconds} second(s)" if seconds < 120 else f"{round(seconds / 60)} minute(s)"


def remember_device(request: Request, response: Response, username: str) -> None:
    """After a successful sign-in: the device cookie that exempts this client from other clients' delays."""
    response.set_cookie(device_cookie_name(username),
                        issue_device_token(secret=request.app.state.settings.secret_key, username=username),
                        max_age=int(DEVICE_TTL.total_seconds()), httponly=True, samesite="strict",
                        secure=request.app.state.settings.env == "production", path="/")


def _alert_if_sustained(request: Request, db: Any, counts: list[str]) -> None:
    """A warning in the log, and a notice to the city's operators and admins (at most one per 15 minutes)."""
    if not counts:
        return
    what = ", ".join(counts)
    log.warning("sustained sign-in failures (%s failures or more each): %s",
                request.app.state.sign_in_limiter.alert_failures, what)
    service.audit(db, "sign_in_attack", address=client_address(request), counts=counts)
    if not request.app.state.sign_in_limiter.notify_operators_now():
        return
    try:
        request.app.state.notifier.send(
            db, miniapp="core", topic="security", severity="warning", url="/api/audit?action=sign_in_failed",
            roles=[("operator", CITY_ID), ("admin", CITY_ID)],
            title={"vi": "Nhiều lần đăng nhập sai", "en": "Many failed sign-ins"},
            body={"vi": f"Đăng nhập sai liên tục: {what}. Xem nhật ký kiểm toán.",
                  "en": f"Sustained failed sign-ins: {what}. See the audit log."})
    except Exception:  # the warning is logged; a notice that cannot be written must not hide the 401
        log.exception("could not notify operators of failed sign-ins")


@router.post("/api/auth/login", operation_id="sign_in_with_password", response_model=TokenResponse,
             responses={401: {"description": "Wrong username or password"}})
def sign_in_with_password(body: PasswordSignIn, request: Request, response: Response,
                          db: SessionDep) -> TokenResponse:
    """Officials: sign in with username and password (progressive delays per account and per address)."""
    try:
        pair = sign_in_official(request, db, username=body.username, password=body.password)
    except IdentityError as exc:
        raise _problem(exc) from None
    remember_device(request, response, body.username)
    return _tokens(pair)


class RefreshRequest(Strict):
    """The refresh token to exchange."""

    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=200)]


@router.post("/api/auth/refresh", operation_id="refresh_tokens", response_model=TokenResponse,
             responses={401: {"description": "The refresh token is unknown, used or revoked"}})
async def refresh_tokens(body: RefreshRequest, request: Request) -> TokenResponse:
    """Exchange a refresh token for new tokens; a reused one revokes its whole session."""
    from sqlmodel import Session

    def rotate() -> TokenPair:
        with Session(request.app.state.engine, expire_on_commit=False) as db:
            return service.rotate_refresh_token(db, secret=request.app.state.settings.secret_key,
                                                refresh_token=body.refresh_token, address=client_address(request))

    try:
        return _tokens(await run_in_threadpool(rotate))
    except IdentityError as exc:
        if exc.revoked_user_id is not None:
            await request.app.state.authenticator.invalidate(exc.revoked_user_id)
        raise _problem(exc) from None


async def end_sessions(request: Request, principal: Principal, *, everywhere: bool) -> None:
    """Revoke the caller's current session (or all of them) and make every worker forget it at once."""
    from sqlmodel import Session

    def revoke() -> None:
        with Session(request.app.state.engine) as db:
            if everywhere:
                service.revoke_all_sessions(db, user_id=principal.user_id or 0, reason="signed out everywhere")
            else:
                service.revoke_session(db, session_id=principal.session_id or "", user_id=principal.user_id or 0)

    await run_in_threadpool(revoke)
    await request.app.state.authenticator.invalidate(principal.user_id)


def _signed_out() -> Response:
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/api/auth/logout", operation_id="sign_out", status_code=204)
async def sign_out(principal: CurrentUser, request: Request) -> Response:
    """Sign this session out: its access and refresh tokens stop working."""
    await end_sessions(request, principal, everywhere=False)
    return _signed_out()


@router.post("/api/auth/logout-all", operation_id="sign_out_everywhere", status_code=204)
async def sign_out_everywhere(principal: CurrentUser, request: Request) -> Response:
    """Sign out of every device and browser."""
    await end_sessions(request, principal, everywhere=True)
    return _signed_out()


@router.get("/api/auth/check", operation_id="check_token", status_code=204)
async def check_token(principal: CurrentUser) -> Response:
    """204 when the token is valid (for gateways and the app's start-up)."""
    return Response(status_code=204)


# --- The caller's own account ------------------------------------------------------------------------------


class MembershipOut(BaseModel):
    """A role held in a unit."""

    id: int
    role: str
    unit_id: str


class Profile(BaseModel):
    """The caller's account as they see it."""

    id: int
    kind: UserKind
    display_name: str
    phone: str | None
    username: str | None
    home_unit_id: str | None
    locale: str | None
    notification_prefs: dict[str, Any]
    memberships: list[MembershipOut]


def profile_of(db: Any, user_id: int) -> Profile:
    """The profile of ``user_id``."""
    user = db.get(User, user_id)
    if user is None:
        raise Problem(404, "account not found")
    memberships = db.exec(select(Membership).where(Membership.user_id == user_id).order_by(Membership.id))
    return Profile(
        id=user.id, kind=user.kind, display_name=user.display_name, phone=user.phone, username=user.username,
        home_unit_id=user.home_unit_id, locale=user.locale, notification_prefs=user.notification_prefs or {},
        memberships=[MembershipOut(id=m.id, role=m.role.value, unit_id=m.unit_id) for m in memberships],
    )


@router.get("/api/me", operation_id="get_my_profile", response_model=Profile)
def get_my_profile(principal: CurrentUser, db: SessionDep) -> Profile:
    """The caller's profile."""
    return profile_of(db, principal.user_id or 0)


class QuietHours(Strict):
    """Hours when only critical warnings are pushed (local time, may wrap midnight)."""

    start: Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
    end: Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


class NotificationPrefs(Strict):
    """Per-mini-app topics the resident muted, and quiet hours."""

    muted: dict[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,39}$")], list[str]] = Field(
        default_factory=dict)
    quiet_hours: QuietHours | None = None


def _printable(value: str) -> str:
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError("must not contain control characters")
    return value


# A name as people read it: no control characters (SQLite would store a NUL that PostgreSQL refuses).
DisplayName = Annotated[Text, AfterValidator(_printable)]
UnitId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), AfterValidator(_printable)]


class ProfileUpdate(Strict):
    """Fields a caller may change on their own account; a field left out is kept.

    ``home_unit_id`` and ``locale`` may be null (no home unit, the device's language); the name and the
    preferences may not: ``null`` is refused rather than silently ignored.
    """

    display_name: DisplayName | None = None
    home_unit_id: UnitId | None = None
    locale: Literal["vi", "en"] | None = None
    notification_prefs: NotificationPrefs | None = None

    @field_validator("display_name", "notification_prefs")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null; leave the field out to keep it")
        return value


@router.patch("/api/me", operation_id="update_my_profile", response_model=Profile)
def update_my_profile(body: ProfileUpdate, principal: CurrentUser, request: Request, db: SessionDep) -> Profile:
    """Change the caller's name, home unit, language or notification preferences."""
    # A plain def: FastAPI runs it in the thread pool, so its database calls never block the event loop.
    user = db.get(User, principal.user_id)
    assert user is not None
    changes = body.model_dump(exclude_unset=True)
    if "home_unit_id" in changes:
        unit = db.get(OrgUnit, body.home_unit_id) if body.home_unit_id else None
        if body.home_unit_id and (unit is None or unit.kind not in (UnitKind.ward, UnitKind.commune)):
            raise Problem(422, f"home_unit_id: {body.home_unit_id!r} is not a commune or ward", field="body.home_unit_id")
        user.home_unit_id = body.home_unit_id
    if body.display_name is not None:
        user.display_name = body.display_name
    if "locale" in changes:
        user.locale = body.locale
    if body.notification_prefs is not None:
        known = {m.id: {t.id for t in m.manifest.notification_topics} for m in request.app.state.miniapps}
        for miniapp_id, topics in body.notification_prefs.muted.items():
            if miniapp_id not in known:
                raise Problem(422, f"unknown mini-app {miniapp_id!r}", field=f"body.notification_prefs.muted.{miniapp_id}")
            unknown = sorted(set(topics) - known[miniapp_id])
            if unknown:
                raise Problem(422, f"mini-app {miniapp_id!r} has no topic(s) {unknown}",
                              field=f"body.notification_prefs.muted.{miniapp_id}")
        user.notification_prefs = body.notification_prefs.model_dump(exclude_none=True)
    db.add(user)
    db.commit()
    from_thread.run(request.app.state.authenticator.invalidate, user.id)
    return profile_of(db, user.id)


class SessionOut(BaseModel):
    """An open session of the caller."""

    id: str
    created_at: datetime
    client: str | None
    sign_in_method: str
    current: bool


@router.get("/api/me/sessions", operation_id="list_my_sessions", response_model=list[SessionOut])
def list_my_sessions(principal: CurrentUser, db: SessionDep) -> list[SessionOut]:
    """The caller's signed-in devices and browsers."""
    return [SessionOut(id=s.id, created_at=s.created_at, client=s.client, sign_in_method=s.sign_in_method,
                       current=s.id == principal.session_id)
            for s in service.list_sessions(db, user_id=principal.user_id or 0)]


class LaunchCode(BaseModel):
    """A one-time code that opens a browser session in the app's WebView (docs/push.md, "WebView")."""

    code: str
    expires_in: int
    exchange_url: str = "/auth/launch"


@router.post("/api/auth/launch-code", operation_id="issue_launch_code", response_model=LaunchCode, status_code=201)
def issue_launch_code(principal: CurrentUser, request: Request, db: SessionDep) -> LaunchCode:
    """The native app asks for this before it opens a mini-app page: the WebView POSTs it to
    ``/auth/launch`` and gets a cookie session of its own; it works once, for 60 seconds."""
    code, seconds = resident.issue_launch_code(db, user_id=principal.user_id or 0,
                                               from_session=principal.session_id, address=client_address(request))
    return LaunchCode(code=code, expires_in=seconds)


@router.get("/api/me/data", operation_id="download_my_data",
            responses={200: {"description": "Everything stored about the caller, as a JSON file"}})
def download_my_data(principal: CurrentUser, request: Request, db: SessionDep) -> Response:
    """Download my data: the account and every record that points at it, secrets left out (audited)."""
    try:
        data = resident.personal_data(db, principal.user_id or 0)
    except IdentityError as exc:
        raise _problem(exc) from None
    service.audit(db, "personal_data_exported", actor_id=principal.user_id, subject_id=principal.user_id,
                  address=client_address(request), tables=sorted(data["records"]))
    db.commit()
    body = json.dumps(data, ensure_ascii=False, indent=1, default=str)
    stamp = data["exported_at"][:10]
    return Response(body, media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="hue-s-my-data-{stamp}.json"', "Cache-Control": "no-store"})


@router.delete("/api/me", operation_id="delete_my_account", status_code=204)
async def delete_my_account(principal: CurrentUser, request: Request) -> Response:
    """Residents: delete my account; my reports and questions stay for the city, without me (audited)."""
    await run_in_threadpool(erase_resident, request, principal)
    await request.app.state.authenticator.invalidate(principal.user_id)
    return _signed_out()


def _public_url(request: Request) -> str:
    return request.app.state.settings.public_url or str(request.base_url).rstrip("/")


def erase_resident(request: Request, principal: Principal) -> dict[str, int]:
    """Delete the caller's resident account (refusals as problems); the caller then invalidates their sessions."""
    from sqlmodel import Session

    with Session(request.app.state.engine) as db:
        service.audit(db, "account_deletion_requested", actor_id=principal.user_id, subject_id=principal.user_id,
                      address=client_address(request))
        db.commit()
        # Each web mini-app the resident used hears of it (a signed webhook queued with the deletion itself).
        hooks = webapp_webhooks.account_deleted(db, request.app.state, issuer=_public_url(request),
                                                user_id=principal.user_id or 0)
        try:
            kept = resident.delete_resident(db, user_id=principal.user_id or 0)
        except IdentityError as exc:
            raise _problem(exc) from None
    webapp_webhooks.kick(request.app.state, hooks)
    return kept


# --- Consent ---------------------------------------------------------------------------------------------


def _requested_scope(request: Request, miniapp_id: str, scope: str) -> None:
    miniapp = next((m for m in request.app.state.miniapps if m.id == miniapp_id), None)
    if miniapp is None:
        raise Problem(404, f"no mini-app {miniapp_id!r}", field="path.miniapp_id")
    if scope not in {s.scope.value for s in miniapp.manifest.scopes}:
        raise Problem(422, f"mini-app {miniapp_id!r} does not ask for the scope {scope!r}", field="path.scope")


def _resident(principal: Principal) -> int:
    if principal.kind != "resident":
        raise Problem(403, "only residents grant scopes to mini-apps")
    return principal.user_id or 0


@router.get("/api/me/consents", operation_id="list_my_consents")
def list_my_consents(principal: CurrentUser, request: Request) -> dict[str, list[str]]:
    """The scopes the resident granted, by mini-app."""
    _resident(principal)
    return {k: sorted(v) for k, v in request.app.state.consents.granted_by_miniapp(principal).items()}


@router.put("/api/me/consents/{miniapp_id}/{scope}", operation_id="grant_scope", status_code=204)
def grant_scope(miniapp_id: str, scope: Scope, principal: CurrentUser, request: Request) -> Response:
    """Grant a scope the mini-app's manifest asks for."""
    user_id = _resident(principal)
    _requested_scope(request, miniapp_id, scope.value)
    request.app.state.consents.grant(user_id=user_id, miniapp_id=miniapp_id, scope=scope.value,
                                     address=client_address(request))
    return Response(status_code=204)


@router.delete("/api/me/consents/{miniapp_id}/{scope}", operation_id="revoke_scope", status_code=204)
def revoke_scope(miniapp_id: str, scope: Scope, principal: CurrentUser, request: Request) -> Response:
    """Withdraw a scope from a mini-app."""
    user_id = _resident(principal)
    _requested_scope(request, miniapp_id, scope.value)
    request.app.state.consents.revoke(user_id=user_id, miniapp_id=miniapp_id, scope=scope.value,
                                      address=client_address(request))
    return Response(status_code=204)


# --- Units' officials, memberships, audit -----------------------------------------------------------------


class Member(BaseModel):
    """An official holding a role in a unit."""

    user_id: int
    display_name: str
    role: str


@router.get("/api/units/{unit_id}/members", operation_id="list_unit_members", response_model=list[Member],
            dependencies=[require_permission("core.units.members.read", unit_param="unit_id")])
def list_unit_members(unit_id: str, db: SessionDep) -> list[Member]:
    """The officials of a unit: visible to that unit's officials, operators and admins."""
    rows = db.exec(select(Membership, User).where(Membership.unit_id == unit_id, Membership.user_id == User.id)
                   .order_by(User.display_name))
    return [Member(user_id=u.id, display_name=u.display_name, role=m.role.value) for m, u in rows]


class MembershipCreate(Strict):
    """A role to grant in a unit."""

    role: str
    unit_id: str


@router.post("/api/users/{user_id}/memberships", operation_id="add_membership", response_model=MembershipOut,
             status_code=201)
def add_membership(user_id: int, body: MembershipCreate, request: Request, db: SessionDep,
                   principal=require_permission("core.users.manage")) -> MembershipOut:
    """Admins: grant an official a role in a unit."""
    try:
        membership = service.add_membership(db, user_id=user_id, role=body.role, unit_id=body.unit_id,
                                            actor_id=principal.user_id)
    except IdentityError as exc:
        if exc.field in ("role", "unit"):
            exc.field = f"body.{'unit_id' if exc.field == 'unit' else 'role'}"
        raise _problem(exc) from None
    from_thread.run(request.app.state.authenticator.invalidate, user_id)
    return MembershipOut(id=membership.id, role=membership.role.value, unit_id=membership.unit_id)


@router.delete("/api/memberships/{membership_id}", operation_id="remove_membership", status_code=204)
def remove_membership(membership_id: int, request: Request, db: SessionDep,
                      principal=require_permission("core.users.manage")) -> Response:
    """Admins: take a role away; the official's sessions end at once."""
    try:
        user_id = service.remove_membership(db, membership_id=membership_id, actor_id=principal.user_id)
    except IdentityError as exc:
        raise _problem(exc) from None
    from_thread.run(request.app.state.authenticator.invalidate, user_id)
    return Response(status_code=204)


class AuditOut(BaseModel):
    """One audit record."""

    id: int
    at: datetime
    action: str
    actor_id: int | None
    subject_id: int | None
    address: str | None
    details: dict[str, Any]


class AuditPage(BaseModel):
    """A page of audit records, newest first; pass ``next_before`` as ``before`` for the next page."""

    items: list[AuditOut]
    next_before: int | None


@router.get("/api/audit", operation_id="list_audit_events", response_model=AuditPage,
            dependencies=[require_permission("core.audit.read")])
def list_audit_events(db: SessionDep, action: Annotated[str | None, Query(max_length=40)] = None,
                      subject_id: int | None = None, before: Annotated[int | None, Query(ge=1)] = None,
                      limit: Annotated[int, Query(ge=1, le=200)] = 50) -> AuditPage:
    """Admins: security-relevant actions, filterable by action and subject."""
    query = select(AuditEvent)
    if action:
        query = query.where(AuditEvent.action == action)
    if subject_id is not None:
        query = query.where(AuditEvent.subject_id == subject_id)
    if before is not None:
        query = query.where(AuditEvent.id < before)
    rows = list(db.exec(query.order_by(AuditEvent.id.desc()).limit(limit + 1)))
    items = [AuditOut.model_validate(r, from_attributes=True) for r in rows[:limit]]
    return AuditPage(items=items, next_before=items[-1].id if len(rows) > limit else None)
