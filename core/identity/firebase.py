"""Verifying residents' Firebase ID tokens with firebase-admin."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any

import firebase_admin
from firebase_admin import auth, credentials
from google.auth.credentials import AnonymousCredentials


class FirebaseTokenError(ValueError):
    """The Firebase ID token is not acceptable; ``reason`` is safe to show the client."""

    def __init__(self, reason: str, *, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class FirebaseIdentity:
    """What we keep from a verified ID token."""

    uid: str
    phone: str | None
    sign_in_provider: str | None


class FirebaseVerifier:
    """Verifies ID tokens against one Firebase project through the real firebase-admin code."""

    def __init__(self, *, project_id: str, credential: credentials.Base | None = None,
                 check_revoked: bool = False, app: firebase_admin.App | None = None) -> None:
        self.check_revoked = check_revoked
        if app is None:
            # A named app per host, so several hosts (tests, workers) never share SDK state.
            app = firebase_admin.initialize_app(
                credential or _ProjectOnlyCredential(project_id),
                {"projectId": project_id},
                name=f"superapp-{uuid.uuid4().hex}",
            )
        self.app = app

    def verify(self, id_token: str) -> FirebaseIdentity:
        """Verify ``id_token`` (signature, expiry, audience, issuer, revocation when configured)."""
        if not id_token or len(id_token) > 8192:
            raise FirebaseTokenError("Firebase ID token is missing or too long")
        try:
            claims: dict[str, Any] = auth.verify_id_token(id_token, app=self.app, check_revoked=self.check_revoked)
        except auth.ExpiredIdTokenError:
            raise FirebaseTokenError("Firebase ID token expired") from None
        except auth.RevokedIdTokenError:
            raise FirebaseTokenError("Firebase ID token was revoked") from None
        except auth.UserDisabledError:
            raise FirebaseTokenError("this Firebase account is disabled", status=403) from None
        except auth.CertificateFetchError:
            raise FirebaseTokenError("cannot check Firebase tokens right now", status=503) from None
        except (auth.InvalidIdTokenError, ValueError) as exc:
            raise FirebaseTokenError(f"Firebase ID token is invalid: {_first_line(exc)}") from None
        provider = (claims.get("firebase") or {}).get("sign_in_provider")
        return FirebaseIdentity(uid=claims["uid"], phone=claims.get("phone_number"), sign_in_provider=provider)

    def close(self) -> None:
        """Release the SDK app."""
        firebase_admin.delete_app(self.app)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__


class _ProjectOnlyCredential(credentials.Base):
    """For verification without revocation checks no Google credential is needed, only the project.

    firebase-admin still asks for a credential when it builds its auth client, so this hands it
    anonymous Google credentials: signature checks use only the public certificates. Revocation
    checks need a service account (settings refuse ``check_revoked`` without one).
    """

    def __init__(self, project_id: str) -> None:
        self.project_id = project_id

    def get_credential(self) -> Any:
        """Anonymous Google credentials: enough to fetch public certificates."""
        return AnonymousCredentials()


def verifier_from_settings(settings: Any) -> FirebaseVerifier | None:
    """The verifier the settings describe, or None when Firebase sign-in is not configured."""
    if not settings.firebase_project_id:
        return None
    if settings.firebase_auth_emulator_host:
        # firebase-admin reads this variable itself and then skips signature checks.
        os.environ["FIREBASE_AUTH_EMULATOR_HOST"] = settings.firebase_auth_emulator_host
    credential = credentials.Certificate(str(settings.firebase_credentials)) if settings.firebase_credentials else None
    return FirebaseVerifier(project_id=settings.firebase_project_id, credential=credential,
                            check_revoked=settings.firebase_check_revoked)
