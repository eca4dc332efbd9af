"""Our own tokens: short-lived signed access tokens and opaque refresh tokens stored hashed."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

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


def hash_refresh_token(token: str) -> str:
    """The stored form of a refresh token."""
    return hashlib.sha256(token.encode()).hexdigest()
