"""Web mini-apps' domain logic: registration, review, publication, rollout, rollback, launch and the live list.

No HTTP here; every step of the lifecycle is written to the audit log in the caller's transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from core.errors import Problem
from core.identity.models import utcnow
from core.identity.principal import Principal
from core.identity.service import audit
from core.webapps.models import VersionStatus, WebApp, WebAppSubject, WebAppVersion
from core.webapps.tokens import KeyRing
from plugins.manifest import Audience, Developer, LocalizedText, NotificationTopic, Scope

WEBAPP_ID = r"^[a-z][a-z0-9_]{2,39}$"
ROLLBACK_DEPTH = 5
LIVE_CACHE_SECONDS = 5.0
Url = Annotated[str, StringConstraints(pattern=r"^https?://[^\s/]+(/\S*)?$", max_length=500)]


class ScopeWithReason(BaseModel):
    """A scope the web mini-app asks for; the reason, in both languages, is what the resident reads."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    scope: Scope
    reason: LocalizedText


class WebAppManifest(BaseModel):
    """What an outside organisation submits for review (one version of its web mini-app)."""

    model_config = ConfigDict(extra="forbid")
    name: LocalizedText
    description: LocalizedText
    icon: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    entry_url: Url
    allowed_origins: list[Url] = Field(min_length=1, max_length=5)
    audiences: list[Audience] = Field(default_factory=lambda: [Audience.resident], min_length=1)
    scopes: list[ScopeWithReason] = Field(default_factory=list, max_length=len(Scope))
    notification_topics: list[NotificationTopic] = Field(default_factory=list, max_length=20)
    webhook_url: Url | None = None
    contact: Developer
    rate_per_minute: int = Field(default=120, ge=1, le=10000)
    # The backend's public key (a JWK) for private_key_jwt client authentication, instead of the secret.
    client_jwk: dict[str, Any] | None = None

    @field_validator("client_jwk")
    @classmethod
    def _public_jwk(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        if value.get("kty") not in ("OKP", "RSA", "EC"):
            raise ValueError("must be a JWK with kty OKP (Ed25519), RSA or EC")
        if any(k in value for k in ("d", "p", "q", "dp", "dq", "qi")):
            raise ValueError("must be the public key only (no private parts)")
        return value

    @field_validator("allowed_origins")
    @classmethod
    def _origins_only(cls, value: list[str]) -> list[str]:
        for origin in value:
            parts = urlsplit(origin)
            if parts.path not in ("", "/") or parts.query or parts.fragment:
                raise ValueError(f"{origin!r} must be an origin (scheme, host and port, no path)")
        return [o.rstrip("/") for o in value]

    def check(self) -> None:
        """Cross-field rules pydantic cannot express per field; raises a 422 Problem naming the field."""
        if origin_of(self.entry_url) not in self.allowed_origins:
            raise Problem(422, f"entry_url {self.entry_url!r} is outside allowed_origins {self.allowed_origins}",
                          type="/problems/validation", field="entry_url")
        if self.webhook_url and origin_of(self.webhook_url) not in self.allowed_origins:
            raise Problem(422, "webhook_url must be inside allowed_origins", type="/problems/validation",
                          field="webhook_url")
        seen: set[str] = set()
        for index, scope in enumerate(self.scopes):
            if scope.scope in seen:
                raise Problem(422, f"scope {scope.scope.value!r} is listed twice", type="/problems/validation",
                              field=f"scopes.{index}.scope")
            seen.add(scope.scope)

    def scope_names(self) -> list[str]:
        """The scopes this version may ask residents for."""
        return [s.scope.value for s in self.scopes]


class Registration(WebAppManifest):
    """A new web mini-app: its id and its first version."""

    id: Annotated[str, StringConstraints(pattern=WEBAPP_ID)]


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class LiveWebApp:
    """A published web mini-app as residents get it: its manifest version and rollout."""

    id: str
    version: int
    rollout_percent: int
    manifest: WebAppManifest


class WebApps:
    """The host's web mini-apps: keys, the live list (cached briefly) and the lifecycle operations."""

    def __init__(self, engine: Engine, *, secret: str, key_generation: int, reserved_ids: set[str]) -> None:
        self.engine = engine
        self.keys = KeyRing(secret, key_generation)
        self._reserved = reserved_ids
        self._lock = threading.Lock()
        self._live: tuple[float, dict[str, LiveWebApp]] | None = None

    # --- the live list ---------------------------------------------------------------------------

    def live(self) -> dict[str, LiveWebApp]:
        """Every published web mini-app, re-read at most every few seconds (at once after a change here)."""
        with self._lock:
            if self._live is not None and time.monotonic() - self._live[0] < LIVE_CACHE_SECONDS:
                return self._live[1]
        with Session(self.engine) as db:
            rows = db.exec(select(WebApp, WebAppVersion).join(
                WebAppVersion, (WebAppVersion.webapp_id == WebApp.id) & (WebAppVersion.number == WebApp.live_version))
                .where(col(WebApp.live_version).is_not(None))).all()
            live = {app.id: LiveWebApp(app.id, version.number, app.rollout_percent,
                                       WebAppManifest.model_validate(version.manifest)) for app, version in rows}
        with self._lock:
            self._live = (time.monotonic(), live)
        return live

    def changed(self) -> None:
        """Forget the cached live list (after a publication, rollout or rollback in this process)."""
        with self._lock:
            self._live = None

    def topics(self) -> dict[str, dict[str, bool]]:
        """``{webapp_id: {topic: critical}}`` for the notifier's topic check."""
        return {w.id: {t.id: t.critical for t in w.manifest.notification_topics} for w in self.live().values()}

    def in_rollout(self, webapp: LiveWebApp, user_id: int) -> bool:
        """Whether a person is inside the rollout: a stable bucket from their pairwise id, so it only grows."""
        bucket = int(self.keys.pairwise_id(user_id, webapp.id)[:8], 16) % 100
        return bucket < webapp.rollout_percent

    def visible(self, principal: Principal) -> list[LiveWebApp]:
        """The web mini-apps ``principal`` may open: signed in, in an audience and inside the rollout."""
        if not principal.is_authenticated or principal.user_id is None:
            return []
        audiences = principal.audiences()
        return sorted((w for w in self.live().values()
                       if audiences & set(w.manifest.audiences) and self.in_rollout(w, principal.user_id)),
                      key=lambda w: w.id)

    def openable(self, principal: Principal, webapp_id: str) -> LiveWebApp:
        """The live web mini-app ``principal`` may open, or a 404 Problem (never revealing unpublished ones)."""
        for webapp in self.visible(principal):
            if webapp.id == webapp_id:
                return webapp
        raise Problem(404, f"no web mini-app {webapp_id!r} is available to you", type="/problems/not-found",
                      field="webapp_id")

    def subject(self, db: Session, user_id: int, webapp_id: str) -> str:
        """The resident's pairwise id towards ``webapp_id``, remembered so its backend can address them."""
        pairwise = self.keys.pairwise_id(user_id, webapp_id)
        if db.get(WebAppSubject, (webapp_id, pairwise)) is None:
            db.add(WebAppSubject(webapp_id=webapp_id, pairwise_id=pairwise, user_id=user_id))
        return pairwise

    # --- lifecycle -------------------------------------------------------------------------------

    def register(self, db: Session, registration: Registration, *, actor_id: int | None,
                 address: str | None) -> tuple[WebApp, WebAppVersion, str]:
        """Create a web mini-app with version 1 submitted; returns the client secret (shown only now)."""
        registration.check()
        if registration.id in self._reserved:
            raise Problem(409, f"id {registration.id!r} is taken by the host or a built-in mini-app",
                          type="/problems/conflict", field="id")
        if db.get(WebApp, registration.id) is not None:
            raise Problem(409, f"a web mini-app {registration.id!r} is already registered",
                          type="/problems/conflict", field="id")
        secret = secrets.token_urlsafe(32)
        webapp = WebApp(id=registration.id, client_secret_hash=_secret_hash(secret), created_by=actor_id)
        db.add(webapp)
        db.flush()
        manifest = WebAppManifest.model_validate(registration.model_dump(exclude={"id"}))
        version = self._add_version(db, webapp.id, 1, manifest)
        audit(db, "webapp_registered", actor_id=actor_id, address=address, webapp=webapp.id)
        audit(db, "webapp_version_submitted", actor_id=actor_id, address=address, webapp=webapp.id, version=1)
        return webapp, version, secret

    @staticmethod
    def _add_version(db: Session, webapp_id: str, number: int, manifest: WebAppManifest) -> WebAppVersion:
        version = WebAppVersion(webapp_id=webapp_id, number=number, manifest=manifest.model_dump(mode="json"))
        db.add(version)
        db.flush()
        return version

    def get(self, db: Session, webapp_id: str) -> WebApp:
        """A registered web mini-app or a 404 Problem."""
        webapp = db.get(WebApp, webapp_id)
        if webapp is None:
            raise Problem(404, f"no web mini-app {webapp_id!r}", type="/problems/not-found", field="webapp_id")
        return webapp

    def version(self, db: Session, webapp_id: str, number: int) -> WebAppVersion:
        """One version of a web mini-app or a 404 Problem."""
        found = db.exec(select(WebAppVersion).where(WebAppVersion.webapp_id == webapp_id,
                                                    WebAppVersion.number == number)).first()
        if found is None:
            raise Problem(404, f"web mini-app {webapp_id!r} has no version {number}", type="/problems/not-found",
                          field="version")
        return found

    def submit(self, db: Session, webapp_id: str, manifest: WebAppManifest, *, actor_id: int | None,
               address: str | None) -> WebAppVersion:
        """Submit a new version for review."""
        manifest.check()
        self.get(db, webapp_id)
        last = db.exec(select(WebAppVersion.number).where(WebAppVersion.webapp_id == webapp_id)
                       .order_by(col(WebAppVersion.number).desc())).first() or 0
        version = self._add_version(db, webapp_id, last + 1, manifest)
        audit(db, "webapp_version_submitted", actor_id=actor_id, address=address, webapp=webapp_id,
              version=version.number)
        return version

    def review(self, db: Session, webapp_id: str, number: int, *, approve: bool, reason: str | None,
               actor_id: int | None, address: str | None) -> WebAppVersion:
        """Approve or reject a submitted version; a rejection needs its reason."""
        version = self.version(db, webapp_id, number)
        if version.status != VersionStatus.submitted:
            raise Problem(409, f"version {number} is {version.status.value}, not submitted",
                          type="/problems/conflict", field="version")
        if not approve and not (reason or "").strip():
            raise Problem(422, "a rejection needs a reason the developer can act on", type="/problems/validation",
                          field="reason")
        version.status = VersionStatus.approved if approve else VersionStatus.rejected
        version.review_reason = (reason or "").strip() or None
        version.reviewed_at = utcnow()
        db.add(version)
        audit(db, "webapp_version_approved" if approve else "webapp_version_rejected", actor_id=actor_id,
              address=address, webapp=webapp_id, version=number, reason=version.review_reason)
        return version

    def publish(self, db: Session, webapp_id: str, number: int, *, rollout_percent: int, actor_id: int | None,
                address: str | None) -> WebApp:
        """Publish an approved version to a share of residents; the previous live version is retired."""
        webapp = self.get(db, webapp_id)
        version = self.version(db, webapp_id, number)
        if version.status != VersionStatus.approved:
            raise Problem(409, f"version {number} is {version.status.value}; only an approved version is published",
                          type="/problems/conflict", field="version")
        self._go_live(db, webapp, version)
        webapp.rollout_percent = max(webapp.rollout_percent, rollout_percent)
        audit(db, "webapp_version_published", actor_id=actor_id, address=address, webapp=webapp_id,
              version=number, rollout_percent=webapp.rollout_percent)
        return webapp

    def _go_live(self, db: Session, webapp: WebApp, version: WebAppVersion) -> None:
        if webapp.live_version is not None and webapp.live_version != version.number:
            old = self.version(db, webapp.id, webapp.live_version)
            old.status = VersionStatus.retired
            db.add(old)
        version.status = VersionStatus.published
        version.published_at = utcnow()
        webapp.live_version = version.number
        db.add_all([version, webapp])
        db.flush()

    def set_rollout(self, db: Session, webapp_id: str, percent: int, *, actor_id: int | None,
                    address: str | None) -> WebApp:
        """Widen the rollout; it only grows, so nobody loses a mini-app they were given."""
        webapp = self.get(db, webapp_id)
        if webapp.live_version is None:
            raise Problem(409, "publish a version before setting its rollout", type="/problems/conflict",
                          field="rollout_percent")
        if percent < webapp.rollout_percent:
            raise Problem(422, f"rollout only grows: it is {webapp.rollout_percent}%, asked {percent}%",
                          type="/problems/validation", field="rollout_percent")
        webapp.rollout_percent = percent
        db.add(webapp)
        audit(db, "webapp_rollout_widened", actor_id=actor_id, address=address, webapp=webapp_id,
              rollout_percent=percent)
        return webapp

    def rollback_candidates(self, db: Session, webapp_id: str) -> list[int]:
        """The last five versions that were published, newest publication first."""
        return list(db.exec(select(WebAppVersion.number).where(
            WebAppVersion.webapp_id == webapp_id, col(WebAppVersion.published_at).is_not(None))
            .order_by(col(WebAppVersion.published_at).desc()).limit(ROLLBACK_DEPTH)).all())

    def rollback(self, db: Session, webapp_id: str, number: int, *, actor_id: int | None,
                 address: str | None) -> WebApp:
        """Make one of the last five published versions live again (the rollout is kept)."""
        webapp = self.get(db, webapp_id)
        candidates = self.rollback_candidates(db, webapp_id)
        if number not in candidates:
            raise Problem(422, f"version {number} is not one of the last {ROLLBACK_DEPTH} published: {candidates}",
                          type="/problems/validation", field="version")
        previous = webapp.live_version
        self._go_live(db, webapp, self.version(db, webapp_id, number))
        audit(db, "webapp_rolled_back", actor_id=actor_id, address=address, webapp=webapp_id,
              version=number, previous=previous)
        return webapp

    def set_client_revoked(self, db: Session, webapp_id: str, revoked: bool, *, actor_id: int | None,
                           address: str | None) -> WebApp:
        """Revoke (or restore) the backend's client: its tokens are refused from the next call."""
        webapp = self.get(db, webapp_id)
        webapp.client_revoked = revoked
        db.add(webapp)
        audit(db, "webapp_client_revoked" if revoked else "webapp_client_restored", actor_id=actor_id,
              address=address, webapp=webapp_id)
        return webapp

    def check_client(self, db: Session, client_id: str, client_secret: str) -> WebApp | None:
        """The web mini-app whose client these credentials are, if they are right and not revoked."""
        webapp = db.get(WebApp, client_id)
        expected = webapp.client_secret_hash if webapp is not None else _secret_hash("")
        right = hmac.compare_digest(expected, _secret_hash(client_secret))
        if webapp is None or not right or webapp.client_revoked:
            return None
        return webapp


def view(webapp: WebApp, versions: list[WebAppVersion]) -> dict[str, Any]:
    """An operator's view of a web mini-app and its versions (never the client secret)."""
    return {
        "id": webapp.id, "live_version": webapp.live_version, "rollout_percent": webapp.rollout_percent,
        "client_revoked": webapp.client_revoked, "created_at": webapp.created_at.isoformat(),
        "versions": [{"number": v.number, "status": v.status.value, "review_reason": v.review_reason,
                      "submitted_at": v.submitted_at.isoformat(),
                      "published_at": v.published_at.isoformat() if v.published_at else None,
                      "manifest": v.manifest} for v in versions],
    }


def tile(webapp: LiveWebApp, *, locale: str, granted: set[str]) -> dict[str, Any]:
    """A web mini-app's home-screen entry, shaped like a built-in manifest's."""
    m = webapp.manifest
    return {
        "id": webapp.id, "name": m.name.get(locale), "description": m.description.get(locale), "icon": m.icon,
        "version": str(webapp.version), "min_host_version": None,
        "audiences": [a.value for a in m.audiences], "public": False, "placement": "home", "order": 1000,
        "entry_url": f"/webapps/{webapp.id}", "api_base": None,
        "scopes": [{"scope": s.scope.value, "reason": s.reason.get(locale), "granted": s.scope.value in granted}
                   for s in m.scopes],
        "notification_topics": [{"id": t.id, "name": t.name.get(locale), "critical": t.critical}
                                for t in m.notification_topics],
        "developer": m.contact.model_dump(exclude_none=True), "source": "web",
        "kind": "web", "origins": m.allowed_origins,
    }
