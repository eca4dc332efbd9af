"""Our own tokens: short-lived signed access tokens and opaque refresh tokens stored hashed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from core.limits import jwt_nesting_exceeds

ISSUER = "superapp"
ALGORITHM = "HS256"
ACCESS_TTL = timedelta(minutes=15)
WEB_SESSION_TTL = timedelta(hours=8)
REFRESH_TTL = timedelta(days=30)


class TokenError(ValueError):
    """An access token that cannot be used; the message is the reason given to the client."""


@dataclass(frozen=True)
class AccessClaims:
    """What an access token says: whose it is and which session it belongs to."""

    user_id: int
    session_id: str
    expires_at: datetime


def issue_access_token(*, secret: str, user_id: int, session_id: str, ttl: timedelta = ACCESS_TTL) -> str:
    """A signed access token for ``user_id`` in ``session_id``."""
    now = datetime.now(UTC)
    claims = {
        "iss": ISSUER, "typ": "access", "sub": str(user_id), "sid": session_id,
        "iat": int(now.timestamp()), "exp": int((now + ttl).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def read_access_token(token: str, *, secret: str) -> AccessClaims:
    """Verify ``token`` and return its claims, or raise TokenError with the reason."""
    if jwt_nesting_exceeds(token):
        raise TokenError("access token is malformed")
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], issuer=ISSUER,
            options={"require": ["exp", "iat", "iss", "sub", "sid"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("access token expired") from None
    except jwt.InvalidIssuerError:
        raise TokenError("access token was not issued by this service") from None
    except jwt.InvalidSignatureError:
        raise TokenError("access token signature is invalid") from None
    except jwt.PyJWTError:
        raise TokenError("access token is malformed") from None
    if claims.get("typ") != "access" or not str(claims["sub"]).isdigit():
        raise TokenError("not an access token")
    return AccessClaims(int(claims["sub"]), str(claims["sid"]), datetime.fromtimestamp(claims["exp"], UTC))


def new_refresh_token() -> tuple[str, str]:
    """A new refresh token and the hash to store (the token itself is never stored)."""
    token = secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def successor_refresh_token(*, secret: str, refresh_token: str) -> str:
    """The token that replaces ``refresh_token`` at rotation: derived with the secret, so the same for every
    request presenting it, and unguessable without both."""
    digest = hmac.new(secret.encode(), b"refresh-successor:" + refresh_token.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def hash_refresh_token(token: str) -> str:
    """The stored form of a refresh token."""
    return hashlib.sha256(token.encode()).hexdigest()


# --- Device cookies (OWASP "device cookies"): a browser or app that signed in to an account before ---

DEVICE_TTL = timedelta(days=180)
DEVICE_COOKIE_PREFIX = "superapp_device_"


def device_cookie_name(username: str) -> str:
    """One cookie per account, so officials sharing a computer each keep theirs (the name reveals no username)."""
    return DEVICE_COOKIE_PREFIX + hashlib.sha256(username.strip().lower().encode()).hexdigest()[:16]


def issue_device_token(*, secret: str, username: str) -> str:
    """A signed token saying "this client signed in to ``username`` before"; its ``jti`` is the device's id."""
    now = datetime.now(UTC)
    claims = {"iss": ISSUER, "typ": "device", "sub": username.strip().lower(), "jti": secrets.token_urlsafe(12),
              "iat": int(now.timestamp()), "exp": int((now + DEVICE_TTL).timestamp())}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def read_device_token(token: str | None, *, secret: str, username: str) -> str | None:
    """The device id of a valid device token issued for ``username``, else None (never an error)."""
    if not token or len(token) > 1024 or jwt_nesting_exceeds(token):
        return None
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], issuer=ISSUER,
                            options={"require": ["exp", "iat", "iss", "sub", "jti"]})
    except jwt.PyJWTError:
        return None
    if claims.get("typ") != "device" or claims["sub"] != username.strip().lower():
        return None
    return str(claims["jti"])
