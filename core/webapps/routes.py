"""The web mini-apps API: operators' registration and review, residents' launch and consent, and the JWKS."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Request
from pydantic import AwareDatetime, BaseModel, Field
from sqlmodel import Session, col, select

from core.db import SessionDep
from core.errors import Problem
from core.i18n import negotiate
from core.identity.authn import client_address
from core.identity.authz import require_permission
from core.identity.deps import CurrentUser
from core.identity.models import utcnow
from core.identity.principal import Principal
from core.webapps import analytics, one_time, webhooks
from core.webapps.models import WebApp, WebAppVersion
from core.webapps.service import Registration, WebAppManifest, WebApps, view

router = APIRouter(tags=["web mini-apps"])
MANAGE = "core.webapps.manage"
Operator = Annotated[Principal, require_permission(MANAGE)]


def _webapps(request: Request) -> WebApps:
    return request.app.state.webapps


def _versions(db: SessionDep, webapp_id: str) -> list[WebAppVersion]:
    return list(db.exec(select(WebAppVersion).where(WebAppVersion.webapp_id == webapp_id)
                        .order_by(col(WebAppVersion.number).desc()).limit(50)))


@router.get("/.well-known/jwks.json", operation_id="webapp_jwks", summary="Public keys of launch tokens")
def jwks(request: Request) -> Any:
    """The host's current and previous signing keys (Ed25519, EdDSA) as a JWK set."""
    from fastapi.responses import JSONResponse

    return JSONResponse(_webapps(request).keys.jwks(), headers={"Cache-Control": "public, max-age=300"})


@router.post("/api/webapps", operation_id="register_webapp", status_code=201)
def register(request: Request, db: SessionDep, operator: Operator, registration: Registration) -> dict[str, Any]:
    """Register a web mini-app (version 1 is submitted for review); the client secret is shown only here."""
    webapp, _version, secret = _webapps(request).register(
        db, registration, actor_id=operator.user_id, address=client_address(request))
    db.commit()
    return {**view(webapp, _versions(db, webapp.id)), "client_id": webapp.id, "client_secret": secret}


@router.get("/api/webapps", operation_id="list_webapps")
def list_webapps(db: SessionDep, operator: Operator, after: str | None = None) -> dict[str, Any]:
    """Registered web mini-apps, 100 at a time by id."""
    query = select(WebApp).order_by(WebApp.id).limit(101)
    if after:
        query = query.where(WebApp.id > after)
    rows = list(db.exec(query))
    return {"webapps": [view(w, _versions(db, w.id)[:5]) for w in rows[:100]],
            "next_after": rows[99].id if len(rows) > 100 else None}


@router.get("/api/webapps/{webapp_id}", operation_id="get_webapp")
def get_webapp(request: Request, webapp_id: str, db: SessionDep, operator: Operator) -> dict[str, Any]:
    """One web mini-app with its last 50 versions."""
    webapp = _webapps(request).get(db, webapp_id)
    return {**view(webapp, _versions(db, webapp_id)),
            "rollback_to": _webapps(request).rollback_candidates(db, webapp_id)}


@router.post("/api/webapps/{webapp_id}/versions", operation_id="submit_webapp_version", status_code=201)
def submit(request: Request, webapp_id: str, db: SessionDep, operator: Operator,
           manifest: WebAppManifest) -> dict[str, Any]:
    """Submit a new version for review."""
    version = _webapps(request).submit(db, webapp_id, manifest, actor_id=operator.user_id,
                                       address=client_address(request))
    db.commit()
    return {"number": version.number, "status": version.status.value}


class Review(BaseModel):
    """A reviewer's decision; a rejection says why."""

    decision: Literal["approve", "reject"]
    reason: str | None = Field(default=None, max_length=500)


@router.post("/api/webapps/{webapp_id}/versions/{number}/review", operation_id="review_webapp_version")
def review(request: Request, webapp_id: str, number: int, db: SessionDep, operator: Operator,
           decision: Review) -> dict[str, Any]:
    """Approve or reject a submitted version."""
    version = _webapps(request).review(db, webapp_id, number, approve=decision.decision == "approve",
                                       reason=decision.reason, actor_id=operator.user_id,
                                       address=client_address(request))
    db.commit()
    return {"number": version.number, "status": version.status.value, "review_reason": version.review_reason}


class Publication(BaseModel):
    """The share of residents a publication reaches."""

    rollout_percent: int = Field(default=100, ge=1, le=100)


FULL_PUBLICATION = Publication()


@router.post("/api/webapps/{webapp_id}/versions/{number}/publish", operation_id="publish_webapp_version")
def publish(request: Request, webapp_id: str, number: int, db: SessionDep, operator: Operator,
            publication: Annotated[Publication, Body()] = FULL_PUBLICATION) -> dict[str, Any]:
    """Publish an approved version to ``rollout_percent`` of residents (never fewer than before)."""
    webapps = _webapps(request)
    webapp = webapps.publish(db, webapp_id, number, rollout_percent=publication.rollout_percent,
                             actor_id=operator.user_id, address=client_address(request))
    db.commit()
    webapps.changed()
    return view(webapp, _versions(db, webapp_id))


class Rollout(BaseModel):
    """A wider rollout."""

    rollout_percent: int = Field(ge=1, le=100)


@router.post("/api/webapps/{webapp_id}/rollout", operation_id="widen_webapp_rollout")
def rollout(request: Request, webapp_id: str, db: SessionDep, operator: Operator, body: Rollout) -> dict[str, Any]:
    """Widen the rollout of the live version; narrowing is refused."""
    webapps = _webapps(request)
    webapp = webapps.set_rollout(db, webapp_id, body.rollout_percent, actor_id=operator.user_id,
                                 address=client_address(request))
    db.commit()
    webapps.changed()
    return view(webapp, _versions(db, webapp_id))


class Rollback(BaseModel):
    """The earlier version to make live again."""

    version: int


@router.post("/api/webapps/{webapp_id}/rollback", operation_id="rollback_webapp")
def rollback(request: Request, webapp_id: str, db: SessionDep, operator: Operator, body: Rollback) -> dict[str, Any]:
    """Make one of the last five published versions live again."""
    webapps = _webapps(request)
    webapp = webapps.rollback(db, webapp_id, body.version, actor_id=operator.user_id, address=client_address(request))
    db.commit()
    webapps.changed()
    return view(webapp, _versions(db, webapp_id))


class ClientState(BaseModel):
    """Whether the backend's client is revoked."""

    revoked: bool


@router.post("/api/webapps/{webapp_id}/client", operation_id="set_webapp_client")
def set_client(request: Request, webapp_id: str, db: SessionDep, operator: Operator, body: ClientState) -> dict[str, Any]:
    """Revoke or restore a mini-app backend's client credentials (effective on its next call)."""
    webapp = _webapps(request).set_client_revoked(db, webapp_id, body.revoked, actor_id=operator.user_id,
                                                  address=client_address(request))
    db.commit()
    return {"id": webapp.id, "client_revoked": webapp.client_revoked}


# --- residents: launch and consent ------------------------------------------------------------------


class LaunchRequest(BaseModel):
    """What the shell passes to a launch."""

    start_param: str | None = Field(default=None, max_length=200, pattern=r"^[A-Za-z0-9_\-.]*$")
    theme: Literal["light", "dark"] = "light"


def _issuer(request: Request) -> str:
    return request.app.state.settings.public_url or str(request.base_url).rstrip("/")


def launch_for(request: Request, db: SessionDep, principal: Principal, webapp_id: str,
               body: LaunchRequest) -> dict[str, Any]:
    """Issue a launch token for ``principal`` opening ``webapp_id`` (shared by the API and the frame page)."""
    webapps = _webapps(request)
    webapp = webapps.openable(principal, webapp_id)
    assert principal.user_id is not None
    subject = webapps.subject(db, principal.user_id, webapp_id)
    analytics.record(db, webapp_id, subject, opens=1)
    db.commit()
    granted = sorted(request.app.state.consents.granted_by_miniapp(principal).get(webapp_id, set())
                     & set(webapp.manifest.scope_names()))
    locale = negotiate(user_locale=principal.locale, accept_language=request.headers.get("accept-language"),
                       default=request.app.state.settings.locale)
    issuer = request.app.state.settings.public_url or str(request.base_url).rstrip("/")
    token, claims = webapps.keys.launch_token(issuer=issuer, webapp_id=webapp_id, subject=subject, scopes=granted,
                                              locale=locale, theme=body.theme, start_param=body.start_param)
    return {"token": token, "expires_at": claims["exp"], "entry_url": webapp.manifest.entry_url,
            "frame_url": f"{webapp.manifest.entry_url}#superapp_launch={token}",
            "origins": webapp.manifest.allowed_origins, "scopes": granted}


PLAIN_LAUNCH = LaunchRequest()


@router.post("/api/webapps/{webapp_id}/launch", operation_id="launch_webapp")
def launch(request: Request, webapp_id: str, db: SessionDep, principal: CurrentUser,
           body: Annotated[LaunchRequest, Body()] = PLAIN_LAUNCH) -> dict[str, Any]:
    """A five-minute signed launch token for the caller and the URL the shell frames."""
    return launch_for(request, db, principal, webapp_id, body)


@router.get("/api/webapps/{webapp_id}/consents", operation_id="my_webapp_consents")
def my_consents(request: Request, webapp_id: str, principal: CurrentUser) -> dict[str, Any]:
    """The scopes I granted this web mini-app (read fresh: the bridge asks before each capability)."""
    webapp = _webapps(request).openable(principal, webapp_id)
    granted = request.app.state.consents.granted_by_miniapp(principal).get(webapp_id, set())
    return {"webapp": webapp_id, "granted": sorted(granted & set(webapp.manifest.scope_names())),
            "declared": webapp.manifest.scope_names()}


class Grant(BaseModel):
    """A scope the resident grants in the shell's dialog."""

    scope: str = Field(max_length=20)


@router.post("/api/webapps/{webapp_id}/consents", operation_id="grant_webapp_scope", status_code=201)
def grant(request: Request, webapp_id: str, principal: CurrentUser, body: Grant) -> dict[str, Any]:
    """Grant a declared scope (the shell's consent dialog calls this, never the mini-app)."""
    webapp = _webapps(request).openable(principal, webapp_id)
    if principal.kind != "resident" or principal.user_id is None:
        raise Problem(403, "only residents grant scopes", type="/problems/forbidden")
    if body.scope not in webapp.manifest.scope_names():
        raise Problem(422, f"{webapp_id!r} did not declare the scope {body.scope!r}", type="/problems/validation",
                      field="scope")
    request.app.state.consents.grant(user_id=principal.user_id, miniapp_id=webapp_id, scope=body.scope,
                                     address=client_address(request))
    return {"webapp": webapp_id, "scope": body.scope, "granted": True}


@router.delete("/api/webapps/{webapp_id}/consents/{scope}", operation_id="revoke_webapp_scope", status_code=204)
def revoke(request: Request, webapp_id: str, scope: str, principal: CurrentUser) -> None:
    """Withdraw a grant; the backend's next notification and the bridge's next call are refused."""
    if principal.user_id is None:
        raise Problem(403, "only residents revoke scopes", type="/problems/forbidden")
    if not request.app.state.consents.revoke(user_id=principal.user_id, miniapp_id=webapp_id, scope=scope,
                                             address=client_address(request)):
        raise Problem(404, f"you had not granted {scope!r} to {webapp_id!r}", type="/problems/not-found",
                      field="scope")
    webhooks.consent_revoked(request.app.state, issuer=_issuer(request), webapp_id=webapp_id,
                             user_id=principal.user_id, scope=scope)


def _one_time_token(request: Request, db: Session, principal: Principal, webapp_id: str, kind: one_time.Kind,
                    payload: dict[str, Any] | None = None) -> dict[str, Any]:
    """A one-time ``kind`` token for the signed-in resident, while they grant the scope of that name."""
    webapps = _webapps(request)
    webapp = webapps.openable(principal, webapp_id)
    if principal.kind != "resident" or principal.user_id is None:
        raise Problem(403, f"only residents share their {kind}", type="/problems/forbidden")
    granted = request.app.state.consents.granted_by_miniapp(principal).get(webapp_id, set())
    if kind not in granted or kind not in webapp.manifest.scope_names():
        raise Problem(403, f"you have not granted the {kind} scope to {webapp_id!r}",
                      type="/problems/scope-not-granted", field="scope", scope=kind)
    webapps.subject(db, principal.user_id, webapp_id)
    token, lifetime = one_time.issue(db, kind=kind, user_id=principal.user_id, webapp_id=webapp_id, payload=payload)
    db.commit()
    return {"token": token, "expires_in": lifetime}


@router.post("/api/webapps/{webapp_id}/phone-token", operation_id="webapp_phone_token", status_code=201)
def phone_token(request: Request, webapp_id: str, db: SessionDep, principal: CurrentUser) -> dict[str, Any]:
    """A one-time token for my phone number that only this mini-app's backend can exchange (bridge getPhone)."""
    return _one_time_token(request, db, principal, webapp_id, "phone")


class Position(BaseModel):
    """Where the resident's device says it is, as the shell read it (never the mini-app's page)."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    accuracy: float = Field(ge=0, le=100_000, description="metres")
    taken_at: AwareDatetime


@router.post("/api/webapps/{webapp_id}/location-token", operation_id="webapp_location_token", status_code=201)
def location_token(request: Request, webapp_id: str, body: Position, db: SessionDep,
                   principal: CurrentUser) -> dict[str, Any]:
    """A one-time token for my position that only this mini-app's backend can exchange (bridge getLocation)."""
    now = utcnow()
    # A device clock a little ahead is tolerated; a position older than a token's life is not handed on as current.
    if not now - one_time.TOKEN_LIFETIME <= body.taken_at <= now + timedelta(minutes=1):
        raise Problem(422, "taken_at must be within the last two minutes", type="/problems/validation",
                      field="taken_at")
    return _one_time_token(request, db, principal, webapp_id, "location", body.model_dump(mode="json"))


@router.post("/api/webapps/{webapp_id}/errors", operation_id="report_webapp_error", status_code=204)
def report_error(request: Request, webapp_id: str, db: SessionDep, principal: CurrentUser) -> None:
    """Count an error the mini-app reported through the bridge (its analytics show errors per day)."""
    webapps = _webapps(request)
    webapps.openable(principal, webapp_id)
    assert principal.user_id is not None
    analytics.record(db, webapp_id, webapps.subject(db, principal.user_id, webapp_id), errors=1)
    db.commit()


@router.get("/api/webapps/{webapp_id}/analytics", operation_id="webapp_analytics")
def usage(request: Request, webapp_id: str, db: SessionDep, operator: Operator, days: int = 90,
          format: Literal["json", "csv"] = "json") -> Any:
    """Opens, unique residents and errors per day for up to 90 days, as JSON or CSV."""
    from fastapi.responses import Response

    _webapps(request).get(db, webapp_id)
    rows = analytics.daily(db, webapp_id, days)
    if format == "csv":
        return Response(analytics.as_csv(rows), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="{webapp_id}-analytics.csv"'})
    return {"webapp": webapp_id, "days": rows}
