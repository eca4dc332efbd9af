"""Identity domain logic: accounts, memberships, sign-in, sessions and token rotation, audit. No HTTP."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.identity.models import (
    AuditEvent,
    AuthSession,
    DevSignInCode,
    Membership,
    RefreshToken,
    Role,
    User,
    UserKind,
    utcnow,
)
from core.identity.passwords import check_rules, hash_password, needs_rehash, verify_password
from core.identity.principal import Membership as MembershipView
from core.identity.principal import Principal
from core.identity.tokens import (
    ACCESS_TTL,
    REFRESH_TTL,
    WEB_SESSION_TTL,
    hash_refresh_token,
    issue_access_token,
    new_refresh_token,
    successor_refresh_token,
)
from core.units.models import OrgUnit, UnitKind

log = logging.getLogger(__name__)
PHONE = re.compile(r"^\+84\d{9,10}$")
USERNAME = re.compile(r"^[a-z][a-z0-9._-]{2,63}$")
DEV_CODE_TTL = timedelta(minutes=5)
DEV_CODE_ATTEMPTS = 5
# How long a rotated refresh token may still be presented and get the same next token (two refreshes
# racing, a retry after a lost answer); later, or once the next token was used, it revokes its session.
REFRESH_GRACE = timedelta(seconds=30)

# Which kind of unit each role is held in.
ROLE_UNIT_KINDS: dict[Role, tuple[UnitKind, ...]] = {
    Role.commune_official: (UnitKind.ward, UnitKind.commune),
    Role.department_official: (UnitKind.department,),
    Role.operator: (UnitKind.city,),
    Role.admin: (UnitKind.city,),
}


class IdentityError(Exception):
    """A sign-in or account operation refused; ``status`` and ``reason`` go to the client as is."""

    def __init__(self, status: int, reason: str, *, field: str | None = None,
                 retry_after: int | None = None, revoked_user_id: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.field = field
        self.retry_after = retry_after
        # Set when the refusal revoked someone's sessions, so every worker can forget them.
        self.revoked_user_id = revoked_user_id


@dataclass(frozen=True)
class TokenPair:
    """What a successful sign-in or refresh returns."""

    access_token: str
    refresh_token: str
    expires_in: int
    session_id: str
    user_id: int


# --- Audit ------------------------------------------------------------------------------------------


def audit(db: Session, action: str, *, actor_id: int | None = None, subject_id: int | None = None,
          address: str | None = None, **details: Any) -> None:
    """Record a security-relevant action (the caller commits). Never pass secrets in ``details``."""
    db.add(AuditEvent(action=action, actor_id=actor_id, subject_id=subject_id, address=address,
                      details={k: v for k, v in details.items() if v is not None}))


# --- Accounts and memberships ---------------------------------------------------------------------


def normalize_phone(phone: str) -> str:
    """E.164 for Vietnam: '0912 345 678' and '+84912345678' both give '+84912345678'."""
    digits = re.sub(r"[\s.\-()]", "", phone or "")
    if digits.startswith("0"):
        digits = "+84" + digits[1:]
    elif digits.startswith("84"):
        digits = "+" + digits
    if not PHONE.match(digits):
        raise IdentityError(422, "phone must be a Vietnamese number such as +84912345678", field="phone")
    return digits


def check_membership(db: Session, role: Role | str, unit_id: str) -> tuple[Role, OrgUnit]:
    """Validate that ``role`` can be held in ``unit_id``; raises IdentityError naming the field."""
    try:
        role = Role(role)
    except ValueError:
        raise IdentityError(422, f"unknown role {role!r}; roles are {[r.value for r in Role]}", field="role") from None
    unit = db.get(OrgUnit, unit_id)
    if unit is None:
        raise IdentityError(422, f"unknown unit {unit_id!r}", field="unit")
    if unit.kind not in ROLE_UNIT_KINDS[role]:
        kinds = " or ".join(k.value for k in ROLE_UNIT_KINDS[role])
        raise IdentityError(422, f"role {role.value} is held in a {kinds}, not in {unit.kind.value} {unit_id!r}",
                            field="unit")
    return role, unit


def create_official(db: Session, *, username: str, display_name: str, password: str,
                    memberships: list[tuple[str, str]], actor_id: int | None = None) -> User:
    """Create an official with a password and at least one membership."""
    username = username.strip().lower()
    if not USERNAME.match(username):
        raise IdentityError(422, "username must be 3-64 characters: lower-case letters, digits, . _ -",
                            field="username")
    if not display_name.strip():
        raise IdentityError(422, "name must not be empty", field="name")
    try:
        check_rules(password, username=username)
    except ValueError as exc:
        raise IdentityError(422, str(exc), field="password") from None
    checked = [check_membership(db, role, unit) for role, unit in memberships]
    if db.exec(select(User).where(User.username == username)).first():
        raise IdentityError(409, f"username {username!r} is taken", field="username")
    user = User(kind=UserKind.official, username=username, display_name=display_name.strip(),
                password_hash=hash_password(password))
    db.add(user)
    db.flush()
    for role, unit in checked:
        db.add(Membership(user_id=user.id, role=role, unit_id=unit.id))
    audit(db, "user_created", actor_id=actor_id, subject_id=user.id, kind="official",
          memberships=[f"{r.value}@{u.id}" for r, u in checked])
    db.commit()
    db.refresh(user)
    return user


def add_membership(db: Session, *, user_id: int, role: str, unit_id: str, actor_id: int | None) -> Membership:
    """Grant an official a role in a unit."""
    user = db.get(User, user_id)
    if user is None or user.kind != UserKind.official:
        raise IdentityError(404, f"no official with id {user_id}", field="user_id")
    checked_role, unit = check_membership(db, role, unit_id)
    existing = db.exec(select(Membership).where(
        Membership.user_id == user_id, Membership.role == checked_role, Membership.unit_id == unit.id)).first()
    if existing:
        return existing
    membership = Membership(user_id=user_id, role=checked_role, unit_id=unit.id)
    db.add(membership)
    audit(db, "membership_added", actor_id=actor_id, subject_id=user_id, role=checked_role.value, unit=unit.id)
    db.commit()
    db.refresh(membership)
    return membership


def remove_membership(db: Session, *, membership_id: int, actor_id: int | None) -> int:
    """Take a role away; the official's sessions are revoked so tokens stop working at once."""
    membership = db.get(Membership, membership_id)
    if membership is None:
        raise IdentityError(404, f"no membership with id {membership_id}", field="membership_id")
    user_id = membership.user_id
    audit(db, "membership_removed", actor_id=actor_id, subject_id=user_id,
          role=membership.role.value, unit=membership.unit_id)
    db.delete(membership)
    revoke_all_sessions(db, user_id=user_id, reason="membership removed", actor_id=actor_id)
    return user_id


def set_official_active(db: Session, *, user_id: int, active: bool, actor_id: int | None) -> User:
    """Disable an official (every session ends at once) or enable them again; audited."""
    user = db.get(User, user_id)
    if user is None or user.kind != UserKind.official:
        raise IdentityError(404, f"no official with id {user_id}", field="user_id")
    if not active and actor_id == user_id:
        raise IdentityError(422, "you cannot disable your own account", field="user_id")
    if user.is_active == active:
        return user
    user.is_active = active
    db.add(user)
    audit(db, "user_enabled" if active else "user_disabled", actor_id=actor_id, subject_id=user_id)
    db.commit()
    if not active:
        revoke_all_sessions(db, user_id=user_id, reason="account disabled", actor_id=actor_id)
    db.refresh(user)
    return user


def reset_official_password(db: Session, *, user_id: int, password: str, actor_id: int | None) -> User:
    """Give an official a new password (the rules apply); their sessions end so the old one stops at once."""
    user = db.get(User, user_id)
    if user is None or user.kind != UserKind.official:
        raise IdentityError(404, f"no official with id {user_id}", field="user_id")
    try:
        check_rules(password, username=user.username or "")
    except ValueError as exc:
        raise IdentityError(422, str(exc), field="password") from None
    user.password_hash = hash_password(password)
    db.add(user)
    audit(db, "password_reset", actor_id=actor_id, subject_id=user_id)
    db.commit()
    revoke_all_sessions(db, user_id=user_id, reason="password reset", actor_id=actor_id)
    db.refresh(user)
    return user


# --- Sessions and tokens ------------------------------------------------------------------------------


def _issue(db: Session, *, secret: str, user: User, session: AuthSession, web: bool,
           refresh_token: str | None = None) -> TokenPair:
    token, token_hash = (refresh_token, hash_refresh_token(refresh_token)) if refresh_token else new_refresh_token()
    db.add(RefreshToken(session_id=session.id, token_hash=token_hash, expires_at=utcnow() + REFRESH_TTL))
    ttl = WEB_SESSION_TTL if web else ACCESS_TTL
    assert user.id is not None
    access = issue_access_token(secret=secret, user_id=user.id, session_id=session.id, ttl=ttl)
    return TokenPair(access, token, int(ttl.total_seconds()), session.id, user.id)


def start_session(db: Session, *, secret: str, user: User, method: str, client: str | None,
                  address: str | None, web: bool = False) -> TokenPair:
    """Open a new session (a refresh-token family) for ``user`` and issue its first tokens."""
    session = AuthSession(id=str(uuid.uuid4()), user_id=user.id, sign_in_method=method,
                          client=(client or "")[:200] or None)
    db.add(session)
    db.flush()
    pair = _issue(db, secret=secret, user=user, session=session, web=web)
    audit(db, "sign_in", actor_id=user.id, subject_id=user.id, address=address, method=method, session=session.id)
    db.commit()
    return pair


def rotate_refresh_token(db: Session, *, secret: str, refresh_token: str, address: str | None) -> TokenPair:
    """Exchange a refresh token for new tokens; reusing a rotated one revokes its whole family."""
    if not refresh_token or len(refresh_token) > 200:
        raise IdentityError(401, "refresh token is missing or malformed", field="refresh_token")
    stored = db.exec(select(RefreshToken).where(RefreshToken.token_hash == hash_refresh_token(refresh_token))).first()
    if stored is None:
        raise IdentityError(401, "refresh token is not valid", field="refresh_token")
    session = db.get(AuthSession, stored.session_id)
    assert session is not None
    if session.revoked_at is not None:
        raise IdentityError(401, "this session was signed out", field="refresh_token")
    if session.sign_in_method == "launch_code":  # a WebView launch code opens a cookie session, nothing else
        raise IdentityError(401, "refresh token is not valid", field="refresh_token")
    now = utcnow()
    # The next token is derived from this one, so every request that presents this token within the
    # grace window gets the same next token: two refreshes racing (or a retry after a lost answer) both
    # succeed and leave the client one token that works.
    successor = successor_refresh_token(secret=secret, refresh_token=refresh_token)
    # Claim the token atomically: of two requests racing with one token, exactly one rotates it.
    claimed = db.execute(
        update(RefreshToken).where(RefreshToken.id == stored.id, RefreshToken.used_at.is_(None)).values(used_at=now)
    ).rowcount
    if claimed != 1:
        replay = _replay_within_grace(db, stored_id=stored.id, successor=successor, now=now)
        user = db.get(User, session.user_id) if replay else None
        if user is not None and user.is_active:
            access = issue_access_token(secret=secret, user_id=session.user_id, session_id=session.id)
            db.commit()
            return TokenPair(access, successor, int(ACCESS_TTL.total_seconds()), session.id, session.user_id)
        # Used again after the grace window or after its successor was itself used: someone else holds
        # a copy of this family's tokens.
        _revoke(db, session, reason="refresh token reuse")
        audit(db, "refresh_token_reuse", subject_id=session.user_id, address=address, session=session.id)
        db.commit()
        raise IdentityError(401, "refresh token was already used; the session has been revoked for safety",
                            field="refresh_token", revoked_user_id=session.user_id)
    if _aware(stored.expires_at) <= now:
        db.commit()
        raise IdentityError(401, "refresh token expired; sign in again", field="refresh_token")
    user = db.get(User, session.user_id)
    if user is None or not user.is_active:
        db.commit()
        raise IdentityError(401, "this account is disabled", field="refresh_token")
    pair = _issue(db, secret=secret, user=user, session=session, web=False, refresh_token=successor)
    db.commit()
    return pair


def _replay_within_grace(db: Session, *, stored_id: int, successor: str, now: datetime) -> bool:
    """True when the token was rotated less than REFRESH_GRACE ago and its successor is still unused."""
    used_at = db.execute(select(RefreshToken.used_at).where(RefreshToken.id == stored_id)).scalar_one_or_none()
    if used_at is None or now - _aware(used_at) > REFRESH_GRACE:
        return False
    unused = db.execute(select(RefreshToken.id).where(RefreshToken.token_hash == hash_refresh_token(successor),
                                                      RefreshToken.used_at.is_(None))).first()
    return unused is not None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _revoke(db: Session, session: AuthSession, *, reason: str) -> None:
    if session.revoked_at is None:
        session.revoked_at = utcnow()
        session.revoked_reason = reason
        db.add(session)


def revoke_session(db: Session, *, session_id: str, user_id: int, reason: str = "signed out") -> bool:
    """Sign one session out (only the owner's); True when it was open."""
    session = db.get(AuthSession, session_id)
    if session is None or session.user_id != user_id:
        return False
    was_open = session.revoked_at is None
    _revoke(db, session, reason=reason)
    audit(db, "sign_out", actor_id=user_id, subject_id=user_id, session=session_id)
    db.commit()
    return was_open


def revoke_all_sessions(db: Session, *, user_id: int, reason: str, actor_id: int | None = None) -> int:
    """Sign a user out everywhere; returns how many sessions were open."""
    sessions = db.exec(select(AuthSession).where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)))
    count = 0
    for session in sessions:
        _revoke(db, session, reason=reason)
        count += 1
    audit(db, "sign_out_everywhere", actor_id=actor_id or user_id, subject_id=user_id, reason=reason, sessions=count)
    db.commit()
    return count


def list_sessions(db: Session, *, user_id: int) -> list[AuthSession]:
    """The user's open sessions, newest first."""
    return list(db.exec(select(AuthSession).where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
                        .order_by(AuthSession.created_at.desc())))


def load_principal(db: Session, *, user_id: int, session_id: str) -> Principal | None:
    """The caller behind a valid access token, or None when its session or account is no longer valid."""
    row = db.exec(
        select(User, AuthSession).where(User.id == user_id, AuthSession.id == session_id,
                                        AuthSession.user_id == User.id)
    ).first()
    if row is None:
        return None
    user, session = row
    if session.revoked_at is not None or not user.is_active:
        return None
    memberships = tuple(
        MembershipView(m.role.value, m.unit_id)
        for m in db.exec(select(Membership).where(Membership.user_id == user_id).order_by(Membership.id))
    )
    return Principal(user_id=user.id, kind=user.kind.value, display_name=user.display_name, locale=user.locale,
                     home_unit_id=user.home_unit_id, memberships=memberships, session_id=session_id)


# --- Sign-in flows -------------------------------------------------------------------------------


def authenticate_official(db: Session, *, username: str, password: str) -> User | None:
    """The official whose username and password match, or None (same cost either way)."""
    user = db.exec(select(User).where(User.username == username.strip().lower(),
                                      User.kind == UserKind.official)).first()
    ok = verify_password(user.password_hash if user else None, password)
    if not ok or user is None or not user.is_active:
        return None
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        db.add(user)
    return user


def find_or_create_resident(db: Session, *, firebase_uid: str | None, phone: str | None,
                            address: str | None) -> User:
    """The resident with this Firebase uid or phone number, created on first sign-in."""
    user = None
    if firebase_uid:
        user = db.exec(select(User).where(User.firebase_uid == firebase_uid)).first()
    if user is None and phone:
        user = db.exec(select(User).where(User.phone == phone)).first()
        if user is not None and user.kind != UserKind.resident:
            raise IdentityError(409, "this phone number belongs to an official account", field="phone")
        if user is not None and firebase_uid and user.firebase_uid is None:
            user.firebase_uid = firebase_uid
            db.add(user)
    if user is None:
        user = User(kind=UserKind.resident, firebase_uid=firebase_uid, phone=phone,
                    display_name=_masked(phone) if phone else "Cư dân")
        db.add(user)
        db.flush()
        audit(db, "user_created", subject_id=user.id, address=address, kind="resident")
    return user


def _masked(phone: str) -> str:
    return phone[:-6] + "***" + phone[-3:]


def dev_code_hash(secret: str, phone: str, code: str) -> str:
    """Codes are keyed with the secret so a copied database does not reveal them."""
    return hmac.new(secret.encode(), f"{phone}:{code}".encode(), hashlib.sha256).hexdigest()


def start_dev_sign_in(db: Session, *, secret: str, phone: str) -> str:
    """Create a one-time code for ``phone`` (development only); returns it for the log.

    A new code replaces the old one but not its count of wrong guesses: the count starts again only
    once the last code has expired, and a phone that used up its guesses gets no code until then.
    """
    phone = normalize_phone(phone)
    code = f"{secrets.randbelow(1_000_000):06d}"
    now = utcnow()
    row = db.get(DevSignInCode, phone, with_for_update=True)
    if row is None:
        row = DevSignInCode(phone=phone, code_hash="", expires_at=now)
    if _aware(row.expires_at) <= now:
        row.attempts = 0
    elif row.attempts >= DEV_CODE_ATTEMPTS:
        wait = max(1, int((_aware(row.expires_at) - now).total_seconds()) + 1)
        db.rollback()
        raise IdentityError(429, f"too many wrong codes for this phone number; ask again in {wait} second(s)",
                            field="phone", retry_after=wait)
    row.code_hash = dev_code_hash(secret, phone, code)
    row.expires_at = now + DEV_CODE_TTL
    db.add(row)
    try:
        db.commit()
    except IntegrityError:  # another request created this phone's first code at the same moment
        db.rollback()
        raise IdentityError(429, "a code was just sent to this phone number; ask again in a few seconds",
                            field="phone", retry_after=5) from None
    return code


def check_dev_code(db: Session, *, secret: str, phone: str, code: str) -> str:
    """Consume the code for ``phone``; returns the normalized phone or raises IdentityError.

    Every guess first takes one of the code's attempts in a single UPDATE (attempts < limit), so however
    many guesses race, at most DEV_CODE_ATTEMPTS of them are ever compared with the code.
    """
    phone = normalize_phone(phone)
    wrong = IdentityError(401, "the code is wrong or has expired; ask for a new one", field="code")
    taken = db.execute(
        update(DevSignInCode)
        .where(DevSignInCode.phone == phone, DevSignInCode.attempts < DEV_CODE_ATTEMPTS,
               DevSignInCode.expires_at > utcnow())
        .values(attempts=DevSignInCode.attempts + 1)
        .returning(DevSignInCode.code_hash)
    ).first()
    db.commit()  # the attempt is spent whatever the code turns out to be
    if taken is None or not hmac.compare_digest(taken.code_hash, dev_code_hash(secret, phone, code.strip())):
        raise wrong
    # One-time: only the guess that deletes the row signs in, should the right code be sent twice at once.
    used = db.execute(delete(DevSignInCode).where(DevSignInCode.phone == phone,
                                                  DevSignInCode.code_hash == taken.code_hash)).rowcount
    if used != 1:
        db.rollback()
        raise wrong
    return phone
