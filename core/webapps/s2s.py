"""The server-to-server API for web mini-app backends: OAuth2 client credentials, scoped and rate-limited.

``POST /oauth/token`` (client_secret_post or HTTP Basic) gives a 15-minute bearer token; every call checks
that the client is still live (a revoked client's tokens stop at once), the token's scope, and the
mini-app's own rate (per minute, counted in Redis, in this process while Redis is down).
"""

from __future__ import annotations

import base64
import threading
import time
from datetime import datetime
from typing import Annotated, Any

import jwt
from fastapi import APIRouter, Depends, Form, Request
from limits import RateLimitItemPerMinute, storage, strategies
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from core.db import SessionDep
from core.errors import Problem
from core.fallback import LocalFallback
from core.feed import service as feed
from core.feed.models import FeedAudience
from core.feed.routes import announce, problem_of
from core.identity.models import MiniAppConsent
from core.identity.service import audit
from core.limits import jwt_nesting_exceeds
from core.units.models import OrgUnit
from core.units.service import CITY_ID
from core.webapps import analytics, one_time
from core.webapps.models import WebApp, WebAppSubject
from core.webapps.service import WebApps
from plugins.manifest import Audience, LocalizedText

router = APIRouter(tags=["web mini-apps: server API"])
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
S2S_SCOPES = ("notifications.send", "units.read", "analytics.read", "phone.read", "location.read",
              "feed.publish")
MAX_RECIPIENTS = 1000


class ClientRateLimiter:
    """Each web mini-app's calls per minute, in Redis (shared by workers) or in memory without it."""

    def __init__(self, redis_url: str | None, prefix: str = "superapp-webapps") -> None:
        local = strategies.MovingWindowRateLimiter(storage.storage_from_string("memory://"))
        self._limiter: Any = local
        if redis_url:
            shared = strategies.MovingWindowRateLimiter(storage.storage_from_string(redis_url, key_prefix=prefix))
            self._limiter = LocalFallback(shared, local, what="web mini-app rate limits")

    def hit(self, webapp_id: str, per_minute: int) -> bool:
        """Count one call; False when the mini-app is over its rate."""
        return bool(self._limiter.hit(RateLimitItemPerMinute(per_minute), "s2s", webapp_id))


def _unauthorized(detail: str) -> Problem:
    return Problem(401, detail, type="/problems/unauthorized", error="invalid_client",
                   headers={"WWW-Authenticate": 'Bearer realm="superapp-s2s"'})


@router.post("/oauth/token", operation_id="webapp_client_token", summary="OAuth2 client credentials token")
def client_token(request: Request, db: SessionDep, grant_type: Annotated[str, Form()],
                 client_id: Annotated[str | None, Form()] = None, client_secret: Annotated[str | None, Form()] = None,
                 scope: Annotated[str | None, Form()] = None,
                 client_assertion_type: Annotated[str | None, Form()] = None,
                 client_assertion: Annotated[str | None, Form(max_length=4000)] = None) -> dict[str, Any]:
    """Exchange a web mini-app's client id and secret for a short-lived bearer token."""
    if grant_type != "client_credentials":
        raise Problem(400, "grant_type must be client_credentials", type="/problems/validation",
                      field="grant_type", error="unsupported_grant_type")
    basic = request.headers.get("authorization", "")
    if basic.lower().startswith("basic "):
        try:
            client_id, _, client_secret = base64.b64decode(basic[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise _unauthorized("the Basic credentials are not base64 of client_id:client_secret") from None
    webapps: WebApps = request.app.state.webapps
    if client_assertion_type == JWT_BEARER and client_assertion:
        webapp = _asserted_client(request, db, client_assertion)
    else:
        if not client_id or not client_secret:
            raise _unauthorized("send client_id and client_secret, or a private_key_jwt client_assertion")
        webapp = webapps.check_client(db, client_id, client_secret)
        if webapp is None:
            raise _unauthorized("unknown client, wrong secret or revoked client")
    asked = (scope or " ".join(S2S_SCOPES)).split()
    unknown = [s for s in asked if s not in S2S_SCOPES]
    if unknown:
        raise Problem(400, f"unknown scope(s) {unknown}; known: {list(S2S_SCOPES)}", type="/problems/validation",
                      field="scope", error="invalid_scope")
    token, lifetime = webapps.keys.s2s_token(issuer=_issuer(request), webapp_id=webapp.id, scopes=asked)
    return {"access_token": token, "token_type": "Bearer", "expires_in": lifetime, "scope": " ".join(asked)}


class _SeenAssertions:
    """Assertion ids already used, until they expire (per process: a replay to another worker is not caught)."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_use(self, jti: str, exp: float) -> bool:
        """True the first time ``jti`` is seen."""
        now = time.time()
        with self._lock:
            if len(self._seen) > 10000:
                self._seen = {j: e for j, e in self._seen.items() if e > now}
            if jti in self._seen and self._seen[jti] > now:
                return False
            self._seen[jti] = exp
            return True


def _asserted_client(request: Request, db: Any, assertion: str) -> WebApp:
    """The client a private_key_jwt assertion proves (RFC 7523): signed by its registered key, for this endpoint."""
    if jwt_nesting_exceeds(assertion):
        raise _unauthorized("client_assertion is not a JWT: its JSON is nested too deeply")
    try:
        client_id = str(jwt.decode(assertion, options={"verify_signature": False}).get("iss", ""))
    except jwt.PyJWTError as exc:
        raise _unauthorized(f"client_assertion is not a JWT: {exc}") from None
    webapp = db.get(WebApp, client_id)
    live = request.app.state.webapps.live().get(client_id)
    if webapp is None or webapp.client_revoked or live is None or not live.manifest.client_jwk:
        raise _unauthorized("unknown or revoked client, or no client_jwk registered for private_key_jwt")
    try:
        key = jwt.PyJWK(live.manifest.client_jwk).key
        claims = jwt.decode(assertion, key, algorithms=["EdDSA", "RS256", "ES256"], issuer=client_id,
                            audience=_issuer(request) + "/oauth/token",
                            options={"require": ["exp", "jti", "sub", "iss", "aud"]})
    except jwt.PyJWTError as exc:
        raise _unauthorized(f"client_assertion refused: {exc}") from None
    if claims["sub"] != client_id:
        raise _unauthorized("client_assertion: sub must equal iss (the client id)")
    if claims["exp"] - time.time() > 600:
        raise _unauthorized("client_assertion: exp must be within ten minutes")
    seen = getattr(request.app.state, "webapp_assertions", None)
    if seen is None:  # one memory per host, made on first use
        seen = request.app.state.webapp_assertions = _SeenAssertions()
    if not seen.first_use(str(claims["jti"]), float(claims["exp"])):
        raise _unauthorized("client_assertion replayed (jti already used)")
    return webapp


def _issuer(request: Request) -> str:
    return request.app.state.settings.public_url or str(request.base_url).rstrip("/")


class S2SClient:
    """A web mini-app's backend, as the token it sent says, checked live."""

    def __init__(self, webapp_id: str, scopes: set[str]) -> None:
        self.webapp_id = webapp_id
        self.scopes = scopes


def s2s_client(scope: str) -> Any:
    """A dependency: a live client whose token carries ``scope``, within its rate."""

    def check(request: Request, db: SessionDep) -> S2SClient:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            raise _unauthorized("send a bearer token from POST /oauth/token")
        webapps: WebApps = request.app.state.webapps
        try:
            claims = webapps.keys.read_s2s(header[7:].strip())
        except jwt.PyJWTError as exc:
            raise _unauthorized(f"token refused: {exc}") from None
        webapp = db.get(WebApp, claims["sub"])
        if webapp is None or webapp.client_revoked:
            raise _unauthorized("this client is revoked")
        granted = set(str(claims.get("scope", "")).split())
        if scope not in granted:
            raise Problem(403, f"the token lacks the scope {scope!r}", type="/problems/forbidden", scope=scope)
        live = webapps.live().get(webapp.id)
        rate = live.manifest.rate_per_minute if live else 60
        if not request.app.state.webapp_rates.hit(webapp.id, rate):
            raise Problem(429, f"over this mini-app's rate of {rate} calls a minute", type="/problems/rate-limited",
                          headers={"Retry-After": "60"})
        return S2SClient(webapp.id, granted)

    check.openapi_statuses = (401, 403, 429)  # type: ignore[attr-defined]  # documented by core.problems
    return Depends(check)


class S2SNotification(BaseModel):
    """A notification a web mini-app's backend sends to residents, addressed by their pairwise ids."""

    residents: list[str] = Field(min_length=1, max_length=MAX_RECIPIENTS)
    topic: str = Field(max_length=40)
    title: LocalizedText
    body: LocalizedText


@router.post("/api/s2s/notifications", operation_id="webapp_send_notification", status_code=202)
def send_notification(request: Request, db: SessionDep, note: S2SNotification,
                      client: Annotated[S2SClient, s2s_client("notifications.send")]) -> dict[str, Any]:
    """Send to residents who granted this mini-app the ``notifications`` scope; anyone else refuses the whole send."""
    webapps: WebApps = request.app.state.webapps
    live = webapps.live().get(client.webapp_id)
    if live is None:
        raise Problem(403, "this mini-app is not published", type="/problems/forbidden")
    wanted = list(dict.fromkeys(note.residents))
    subjects = {s.pairwise_id: s.user_id for s in db.exec(select(WebAppSubject).where(
        WebAppSubject.webapp_id == client.webapp_id, col(WebAppSubject.pairwise_id).in_(wanted)))}
    consenting = set(db.exec(select(MiniAppConsent.user_id).where(
        MiniAppConsent.miniapp_id == client.webapp_id, MiniAppConsent.scope == "notifications",
        col(MiniAppConsent.user_id).in_(list(subjects.values())))).all()) if subjects else set()
    refused = [p for p in wanted if subjects.get(p) not in consenting]
    if refused:
        raise Problem(403, f"{len(refused)} resident(s) have not granted (or have revoked) the notifications scope",
                      type="/problems/scope-not-granted", field="residents", refused=refused[:50],
                      scope="notifications")
    try:
        receipt = request.app.state.notifier.send(
            db, miniapp=client.webapp_id, topic=note.topic, title=note.title, body=note.body,
            users=[subjects[p] for p in wanted], url=f"/webapps/{client.webapp_id}")
    except ValueError as exc:  # push.notifier.NotifierError (core does not import push), naming the field
        raise Problem(422, str(exc), type="/problems/validation", field=getattr(exc, "field", None)) from None
    audit(db, "webapp_notification_sent", webapp=client.webapp_id, notification=receipt.notification_id,
          recipients=len(wanted))
    db.commit()
    return {"notification_id": receipt.notification_id, "recipients": len(wanted)}


@router.get("/api/s2s/units", operation_id="webapp_units_directory")
def units_directory(db: SessionDep, client: Annotated[S2SClient, s2s_client("units.read")],
                    after: str | None = None, limit: int = 200) -> dict[str, Any]:
    """The city's units (id, names, kind, parent), a page at a time by id."""
    limit = max(1, min(limit, 500))
    query = select(OrgUnit).order_by(OrgUnit.id).limit(limit + 1)
    if after:
        query = query.where(OrgUnit.id > after)
    rows = list(db.exec(query))
    page = rows[:limit]
    return {"units": [_unit(u) for u in page], "next_after": page[-1].id if len(rows) > limit else None}


def _unit(unit: OrgUnit) -> dict[str, Any]:
    data = unit.model_dump(mode="json")
    return {k: data.get(k) for k in ("id", "name_vi", "name_en", "kind", "parent_id", "code") if k in data}


@router.get("/api/s2s/analytics", operation_id="webapp_own_analytics")
def own_analytics(db: SessionDep, client: Annotated[S2SClient, s2s_client("analytics.read")],
                  days: int = 90) -> dict[str, Any]:
    """The calling mini-app's own opens, unique residents and errors per day (up to 90 days)."""
    return {"webapp": client.webapp_id, "days": analytics.daily(db, client.webapp_id, days)}


class TokenExchange(BaseModel):
    """A one-time phone or location token the mini-app's page got from the bridge."""

    token: str = Field(min_length=10, max_length=100)


@router.post("/api/s2s/phone", operation_id="webapp_exchange_phone")
def exchange_phone(request: Request, db: SessionDep, body: TokenExchange,
                   client: Annotated[S2SClient, s2s_client("phone.read")]) -> dict[str, Any]:
    """Exchange a one-time phone token (once, within two minutes) for the resident's pairwise id and phone."""
    user_id = one_time.exchange(db, kind="phone", webapp_id=client.webapp_id, token=body.token).user_id
    number = one_time.phone_of(db, user_id)
    audit(db, "webapp_phone_shared", actor_id=user_id, subject_id=user_id, webapp=client.webapp_id)
    db.commit()
    if number is None:
        raise Problem(404, "the resident has no verified phone number", type="/problems/not-found", field="token")
    return {"sub": request.app.state.webapps.keys.pairwise_id(user_id, client.webapp_id), "phone": number}


@router.post("/api/s2s/location", operation_id="webapp_exchange_location")
def exchange_location(request: Request, db: SessionDep, body: TokenExchange,
                      client: Annotated[S2SClient, s2s_client("location.read")]) -> dict[str, Any]:
    """Exchange a one-time location token (once, within two minutes) for the resident's pairwise id and position
    (lat, lon, accuracy in metres, taken_at) as their device gave it to the shell."""
    row = one_time.exchange(db, kind="location", webapp_id=client.webapp_id, token=body.token)
    audit(db, "webapp_location_shared", actor_id=row.user_id, subject_id=row.user_id, webapp=client.webapp_id)
    db.commit()
    return {"sub": request.app.state.webapps.keys.pairwise_id(row.user_id, client.webapp_id), **(row.payload or {})}


class S2SFeedCard(BaseModel):
    """A news card a web mini-app's backend publishes in the host's feed; tapping it opens the mini-app."""

    title: LocalizedText
    body: LocalizedText
    audience: FeedAudience = FeedAudience.residents
    unit_ids: list[str] = Field(default_factory=list, max_length=20)
    start_param: str | None = Field(default=None, max_length=200, pattern=r"^[A-Za-z0-9_\-.]*$")
    expires_at: datetime | None = None


@router.post("/api/s2s/feed", operation_id="webapp_publish_feed_card", status_code=201)
async def publish_feed_card(request: Request, card: S2SFeedCard,
                            client: Annotated[S2SClient, s2s_client("feed.publish")]) -> dict[str, Any]:
    """Publish a news card in the host's feed (the city's or some units'), under the feed's audience rules."""
    webapps: WebApps = request.app.state.webapps
    live = webapps.live().get(client.webapp_id)
    if live is None:
        raise Problem(403, "this mini-app is not published", type="/problems/forbidden")
    # A card reaches only people the mini-app itself is for: the feed's audience must be within its audiences.
    residents = Audience.resident in live.manifest.audiences
    officials = bool(set(live.manifest.audiences) - {Audience.resident})
    reachable = {FeedAudience.residents: residents, FeedAudience.officials: officials,
                 FeedAudience.everyone: residents and officials}
    if not reachable[card.audience]:
        raise Problem(422, f"this mini-app is for {[a.value for a in live.manifest.audiences]}; its cards cannot "
                           f"reach the audience {card.audience.value!r}", type="/problems/validation",
                      field="audience")
    url = f"/webapps/{client.webapp_id}" + (f"?start={card.start_param}" if card.start_param else "")

    def store() -> tuple[Any, list[str]]:
        with Session(request.app.state.engine, expire_on_commit=False) as db:
            item = feed.publish_item(db, author_unit_id=CITY_ID, author_user_id=None, kind="news", severity=None,
                                     audience=card.audience, title=card.title, body=card.body, url=url,
                                     unit_ids=card.unit_ids, expires_at=card.expires_at, miniapp=client.webapp_id)
            audit(db, "webapp_feed_card_published", webapp=client.webapp_id, feed_item=item.id,
                  units=card.unit_ids or None)
            db.commit()
            return item, feed.target_units(db, item.id or 0)

    try:
        item, units = await run_in_threadpool(store)
    except feed.FeedError as exc:
        raise problem_of(exc) from None
    await announce(request, feed.published_event(item, units))
    return {"feed_item_id": item.id, "url": url, "unit_ids": units, "audience": card.audience.value}
