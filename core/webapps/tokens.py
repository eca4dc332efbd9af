"""Launch tokens and server-to-server tokens of web mini-apps: Ed25519 keys with rotation, and pairwise ids.

Keys are derived from SUPERAPP_SECRET_KEY and a generation number (SUPERAPP_WEBAPP_KEY_GENERATION): every
worker derives the same keys with no key table to share, and rotating is raising the generation by one.
The JWKS publishes the current and the previous generation, so launches signed just before a rotation still
verify; a generation two steps back disappears, and tokens it signed (five minutes long) are long expired.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.limits import jwt_nesting_exceeds

LAUNCH_SECONDS = 300
S2S_SECONDS = 900
S2S_AUDIENCE = "superapp-s2s"


def _derive(secret: str, label: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"superapp-webapps", info=label.encode()).derive(
        secret.encode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    """One generation's Ed25519 key pair and its key id."""

    kid: str
    private: Ed25519PrivateKey

    def public_jwk(self) -> dict[str, str]:
        """The public half as a JWK (OKP, Ed25519)."""
        raw = self.private.public_key().public_bytes_raw()
        return {"kty": "OKP", "crv": "Ed25519", "x": _b64(raw), "kid": self.kid, "use": "sig", "alg": "EdDSA"}


class KeyRing:
    """The current signing key and the previous one, derived from the host secret and the generation."""

    def __init__(self, secret: str, generation: int) -> None:
        self._secret = secret
        self.current = self._key(generation)
        self.previous = self._key(generation - 1) if generation > 1 else None
        self._by_kid = {k.kid: k for k in (self.current, self.previous) if k is not None}
        self._pairwise_key = _derive(secret, "pairwise-subject")

    def _key(self, generation: int) -> SigningKey:
        private = Ed25519PrivateKey.from_private_bytes(_derive(self._secret, f"launch-key:{generation}"))
        thumb = hashlib.sha256(private.public_key().public_bytes_raw()).hexdigest()[:12]
        return SigningKey(kid=f"g{generation}-{thumb}", private=private)

    def jwks(self) -> dict[str, Any]:
        """The published key set: the current key first, then the previous generation's."""
        return {"keys": [k.public_jwk() for k in (self.current, self.previous) if k is not None]}

    def pairwise_id(self, user_id: int, webapp_id: str) -> str:
        """The resident's id towards one mini-app: an HMAC, so two mini-apps cannot join their residents."""
        return hmac.new(self._pairwise_key, f"{webapp_id}\x00{user_id}".encode(), hashlib.sha256).hexdigest()[:32]

    def sign(self, claims: dict[str, Any]) -> str:
        """A JWT signed with the current key."""
        return jwt.encode(claims, self.current.private, algorithm="EdDSA", headers={"kid": self.current.kid})

    def launch_token(self, *, issuer: str, webapp_id: str, subject: str, scopes: list[str], locale: str,
                     theme: str, start_param: str | None) -> tuple[str, dict[str, Any]]:
        """A five-minute launch token for one resident opening one mini-app, and its claims."""
        now = int(time.time())
        claims = {"iss": issuer, "aud": webapp_id, "sub": subject, "iat": now, "nbf": now,
                  "exp": now + LAUNCH_SECONDS, "jti": secrets.token_urlsafe(16), "scope": " ".join(scopes),
                  "locale": locale, "theme": theme, "start_param": start_param}
        return self.sign(claims), claims

    def s2s_token(self, *, issuer: str, webapp_id: str, scopes: list[str]) -> tuple[str, int]:
        """An access token for a mini-app's backend, and its lifetime in seconds."""
        now = int(time.time())
        claims = {"iss": issuer, "aud": S2S_AUDIENCE, "sub": webapp_id, "iat": now, "exp": now + S2S_SECONDS,
                  "jti": secrets.token_urlsafe(12), "scope": " ".join(scopes)}
        return self.sign(claims), S2S_SECONDS

    def read_s2s(self, token: str) -> dict[str, Any]:
        """The claims of a server-to-server token this host signed; raises jwt.PyJWTError otherwise."""
        if jwt_nesting_exceeds(token):
            raise jwt.DecodeError("the token's JSON is nested too deeply")
        kid = jwt.get_unverified_header(token).get("kid")
        key = self._by_kid.get(kid)
        if key is None:
            raise jwt.InvalidKeyError("unknown key id")
        return jwt.decode(token, key.private.public_key(), algorithms=["EdDSA"], audience=S2S_AUDIENCE)
