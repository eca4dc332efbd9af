"""One-time tokens that hand a resident's phone number or position to a web mini-app's backend, as Zalo does.

The bridge's ``getPhoneToken`` (scope ``phone``) and ``getLocation({token: true})`` (scope ``location``) ask the
host for a one-time token and hand only that to the mini-app's page; the page sends it to its backend, which
exchanges it server to server (``POST /api/s2s/phone`` with ``phone.read``, ``POST /api/s2s/location`` with
``location.read``). A token works once, for two minutes, for the mini-app it was made for, and only while the
resident still grants the scope of its kind. Phone and location tokens share this store (one table, a ``kind``).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import update
from sqlmodel import Session, col

from core.errors import Problem
from core.identity.models import MiniAppConsent, User, utcnow
from core.webapps.models import WebAppOneTimeToken

TOKEN_LIFETIME = timedelta(minutes=2)

# A token's kind is also the consent scope the resident must still grant when the backend exchanges it.
Kind = Literal["phone", "location"]


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(db: Session, *, kind: Kind, user_id: int, webapp_id: str,
          payload: dict[str, Any] | None = None) -> tuple[str, int]:
    """A one-time ``kind`` token for ``user_id`` towards ``webapp_id`` (the caller checked the consent), carrying
    ``payload`` for the backend, and its lifetime in seconds; the caller commits."""
    token = secrets.token_urlsafe(24)
    db.add(WebAppOneTimeToken(token_hash=_hash(token), kind=kind, webapp_id=webapp_id, user_id=user_id,
                              payload=payload, expires_at=utcnow() + TOKEN_LIFETIME))
    return token, int(TOKEN_LIFETIME.total_seconds())


def exchange(db: Session, *, kind: Kind, webapp_id: str, token: str) -> WebAppOneTimeToken:
    """The token's row, marked used; a 422 Problem naming ``token`` when it is unknown, of another kind, another
    mini-app's, used or expired, a 403 when the resident has since revoked the scope of its kind."""
    now = utcnow()
    # One UPDATE claims the token: two concurrent exchanges cannot both see it unused.
    claimed = db.execute(update(WebAppOneTimeToken).where(
        WebAppOneTimeToken.token_hash == _hash(token), WebAppOneTimeToken.kind == kind,
        WebAppOneTimeToken.webapp_id == webapp_id, col(WebAppOneTimeToken.used_at).is_(None),
        WebAppOneTimeToken.expires_at > now).values(used_at=now))
    if claimed.rowcount != 1:
        raise Problem(422, f"the {kind} token is unknown, belongs to another mini-app, was already used or expired",
                      type="/problems/validation", field="token")
    row = db.get(WebAppOneTimeToken, _hash(token))
    assert row is not None
    if db.get(MiniAppConsent, (row.user_id, webapp_id, kind)) is None:
        raise Problem(403, f"the resident has revoked the {kind} scope", type="/problems/scope-not-granted",
                      field="token", scope=kind)
    return row


def phone_of(db: Session, user_id: int) -> str | None:
    """The resident's verified phone number."""
    user = db.get(User, user_id)
    return user.phone if user is not None else None
