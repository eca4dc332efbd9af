"""A resident's own account: WebView launch codes, the personal-data download and account deletion.

No HTTP here. Decree 13/2023/ND-CP gives a person the right to a copy of their data and to have it
erased; the city keeps reports and questions for its statistics, so erasure removes the person and
leaves their reports and questions unowned (every mini-app table points at ``user_account`` with
``ON DELETE SET NULL`` or ``CASCADE``, so one DELETE of the account does it on both databases).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import Table, select, update
from sqlmodel import Session, SQLModel

from core.identity.models import AuthSession, DevSignInCode, RefreshToken, User, UserKind, utcnow
from core.identity.service import IdentityError, TokenPair, audit
from core.identity.tokens import WEB_SESSION_TTL, hash_refresh_token, issue_access_token, new_refresh_token

# A launch code is good for one exchange within this time: long enough for a WebView to open a page.
LAUNCH_CODE_TTL = timedelta(seconds=60)
LAUNCH_METHOD = "launch_code"
# Columns never copied into the download: credentials and secrets, whoever's they are.
SECRET_MARKERS = ("password", "hash", "token", "secret", "code")
# Rows per table in the download: a resident has a handful; the bound keeps one request's memory small.
EXPORT_ROWS_PER_TABLE = 5000


# --- Launch codes: the native app hands its session to a mini-app page in a WebView ---------------------


def issue_launch_code(db: Session, *, user_id: int, from_session: str | None, address: str | None) -> tuple[str, int]:
    """A one-time code the app puts in the WebView's first request; returns (code, seconds it lasts).

    The code opens a session of its own (listed and revocable like any other), stored hashed as the
    single refresh token of that session, which expires after ``LAUNCH_CODE_TTL``.
    """
    session = AuthSession(id=str(uuid.uuid4()), user_id=user_id, sign_in_method=LAUNCH_METHOD, client="WebView")
    db.add(session)
    db.flush()
    code, code_hash = new_refresh_token()
    db.add(RefreshToken(session_id=session.id, token_hash=code_hash, expires_at=utcnow() + LAUNCH_CODE_TTL))
    audit(db, "launch_code_issued", actor_id=user_id, subject_id=user_id, address=address, session=session.id,
          from_session=from_session)
    db.commit()
    return code, int(LAUNCH_CODE_TTL.total_seconds())


def exchange_launch_code(db: Session, *, secret: str, code: str, address: str | None) -> TokenPair:
    """The web session a launch code stands for; the code works once, and only before it expires."""
    wrong = IdentityError(401, "the launch code is wrong, used or expired; open the page from the app again",
                          field="code")
    if not code or len(code) > 200:
        raise wrong
    row = db.execute(select(RefreshToken, AuthSession).join(AuthSession, AuthSession.id == RefreshToken.session_id)
                     .where(RefreshToken.token_hash == hash_refresh_token(code))).first()
    if row is None:
        raise wrong
    stored, session = row
    if session.sign_in_method != LAUNCH_METHOD or session.revoked_at is not None:
        raise wrong
    # Claimed atomically: of two requests racing with one code, exactly one gets the session.
    claimed = db.execute(update(RefreshToken).where(RefreshToken.id == stored.id, RefreshToken.used_at.is_(None))
                         .values(used_at=utcnow())).rowcount
    expires = stored.expires_at if stored.expires_at.tzinfo else stored.expires_at.replace(tzinfo=UTC)
    if claimed != 1 or expires <= utcnow():
        db.commit()
        raise wrong
    user = db.get(User, session.user_id)
    if user is None or not user.is_active:
        db.commit()
        raise wrong
    # A browser session's access token only: no refresh token is stored for a cookie nobody refreshes.
    access = issue_access_token(secret=secret, user_id=user.id or 0, session_id=session.id, ttl=WEB_SESSION_TTL)
    audit(db, "launch_code_used", actor_id=user.id, subject_id=user.id, address=address, session=session.id)
    db.commit()
    return TokenPair(access, "", int(WEB_SESSION_TTL.total_seconds()), session.id, user.id or 0)


# --- Download my data ----------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return None  # binary columns (images, keys) are not personal text; the media stay on their pages
    return value


def _personal_columns(table: Table) -> list[Any]:
    """The columns of ``table`` that point at an account."""
    return [column for column in table.columns
            if any(fk.column.table.name == "user_account" for fk in column.foreign_keys)]


def personal_data(db: Session, user_id: int) -> dict[str, Any]:
    """Everything stored about ``user_id``: the account and every row, in any table, that points at it.

    Mini-apps' tables are found through their foreign keys to ``user_account``, so a new mini-app's
    data is in the download without a line here. Secrets (password hashes, tokens, codes) are left out.
    """
    user = db.get(User, user_id)
    if user is None:
        raise IdentityError(404, "account not found")
    account = {c.name: _plain(getattr(user, c.name)) for c in User.__table__.columns
               if not any(m in c.name for m in SECRET_MARKERS)}
    tables: dict[str, list[dict[str, Any]]] = {}
    for table in sorted(SQLModel.metadata.sorted_tables, key=lambda t: t.name):
        owners = _personal_columns(table)
        if not owners or table.name == "user_account":
            continue
        keep = [c for c in table.columns if not any(m in c.name for m in SECRET_MARKERS)]
        clause = owners[0] == user_id if len(owners) == 1 else _any(owners, user_id)
        rows = db.execute(select(*keep).where(clause).limit(EXPORT_ROWS_PER_TABLE)).mappings().all()
        if rows:
            tables[table.name] = [{k: _plain(v) for k, v in row.items()} for row in rows]
    return {"exported_at": _plain(utcnow()), "account": account, "records": tables,
            "about": "Dữ liệu cá nhân của bạn trên Huế-S (Nghị định 13/2023/NĐ-CP). "
                     "Your personal data on Hue-S (Decree 13/2023/ND-CP)."}


def _any(columns: list[Any], user_id: int) -> Any:
    from sqlalchemy import or_

    return or_(*(c == user_id for c in columns))


# --- Delete my account ------------------------------------------------------------------------------------------


def delete_resident(db: Session, *, user_id: int) -> dict[str, int]:
    """Erase a resident: the account, sessions, devices, follows, consents and inbox go; reports and
    questions stay, without the person. Returns how many rows of each table were left unowned."""
    user = db.get(User, user_id)
    if user is None:
        raise IdentityError(404, "account not found")
    if user.kind != UserKind.resident:
        raise IdentityError(403, "officials' accounts are closed by an administrator, not from the profile page")
    kept: dict[str, int] = {}
    for table in SQLModel.metadata.sorted_tables:
        for column in _personal_columns(table):
            if table.name in ("user_account", "audit_event"):
                continue
            on_delete = next(iter(column.foreign_keys)).ondelete
            if on_delete and on_delete.upper() == "SET NULL":
                count = db.execute(select(table.c[column.name]).where(column == user_id)
                                   .limit(EXPORT_ROWS_PER_TABLE)).all()
                if count:
                    kept[table.name] = kept.get(table.name, 0) + len(count)
    if user.phone:
        pending = db.get(DevSignInCode, user.phone)
        if pending is not None:
            db.delete(pending)
    db.delete(user)
    db.flush()
    # Recorded without the person (no address, no phone): the number of the account that is gone and
    # what stayed for the city's statistics.
    audit(db, "account_deleted", user_id=user_id, kept=kept)
    db.commit()
    return kept
