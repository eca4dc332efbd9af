"""Residents' phone numbers for web mini-apps, as Zalo gives them: never through the page.

The bridge's ``getPhone`` asks the host (with the ``phone`` scope granted in the shell's dialog) for a one-time
token and hands only that to the mini-app's page; the page sends it to its backend, which exchanges it server
to server (``POST /api/s2s/phone``, scope ``phone.read``) for the number. A token works once, for two minutes,
for the mini-app it was made for, and only while the resident still grants ``phone``.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session, col

from core.errors import Problem
from core.identity.models import MiniAppConsent, User, utcnow
from core.webapps.models import WebAppPhoneToken

TOKEN_LIFETIME = timedelta(minutes=2)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(db: Session, *, user_id: int, webapp_id: str) -> tuple[str, int]:
    """A one-time phone token for ``user_id`` towards ``webapp_id`` (the caller checked the consent) and its
    lifetime in seconds; the caller commits."""
    token = secrets.token_urlsafe(24)
    db.add(WebAppPhoneToken(token_hash=_hash(token), webapp_id=webapp_id, user_id=user_id,
                            expires_at=utcnow() + TOKEN_LIFETIME))
    return token, int(TOKEN_LIFETIME.total_seconds())


def exchange(db: Session, *, webapp_id: str, token: str) -> int:
    """The user id behind a phone token, marking it used; a 422 Problem naming ``token`` when it is unknown,
    another mini-app's, used or expired, a 403 when the resident has since revoked ``phone``."""
    now = utcnow()
    # One UPDATE claims the token: two concurrent exchanges cannot both see it unused.
    claimed = db.execute(update(WebAppPhoneToken).where(
        WebAppPhoneToken.token_hash == _hash(token), WebAppPhoneToken.webapp_id == webapp_id,
        col(WebAppPhoneToken.used_at).is_(None), WebAppPhoneToken.expires_at > now).values(used_at=now))
    if claimed.rowcount != 1:
        raise Problem(422, "the phone token is unknown, belongs to another mini-app, was already used or expired",
                      type="/problems/validation", field="token")
    row = db.get(WebAppPhoneToken, _hash(token))
    assert row is not None
    if db.get(MiniAppConsent, (row.user_id, webapp_id, "phone")) is None:
        raise Problem(403, "the resident has revoked the phone scope", type="/problems/scope-not-granted",
                      field="token", scope="phone")
    return row.user_id


def phone_of(db: Session, user_id: int) -> str | None:
    """The resident's verified phone number."""
    user = db.get(User, user_id)
    return user.phone if user is not None else None
