"""Open311 api_keys: issued and revoked by admins, kept only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from sqlmodel import Session, col, select

from miniapps.feedback.models import FeedbackApiKey

KEY_PREFIX = "fb_"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def issue(session: Session, *, name: str, created_by: int | None) -> tuple[FeedbackApiKey, str]:
    """Make a key; returns the row and the key itself, which is shown this once and never stored."""
    key = KEY_PREFIX + secrets.token_urlsafe(24)
    row = FeedbackApiKey(name=name.strip()[:120], key_hash=_digest(key), prefix=key[:10], created_by=created_by)
    session.add(row)
    session.commit()
    session.refresh(row)
    return row, key


def revoke(session: Session, *, key_id: int) -> FeedbackApiKey | None:
    """Revoke a key (idempotent); None when there is no such key."""
    row = session.get(FeedbackApiKey, key_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        session.add(row)
        session.commit()
        session.refresh(row)
    return row


def verify(session: Session, key: str | None) -> FeedbackApiKey | None:
    """The live key row for ``key``, or None."""
    if not key:
        return None
    return session.exec(select(FeedbackApiKey).where(FeedbackApiKey.key_hash == _digest(key),
                                                     col(FeedbackApiKey.revoked_at).is_(None))).first()


def list_keys(session: Session) -> list[FeedbackApiKey]:
    """Every key, newest first (hashes are never shown)."""
    return list(session.exec(select(FeedbackApiKey).order_by(col(FeedbackApiKey.id).desc())))
