"""Officials' passwords: argon2id hashes and the rules a new password must meet."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# argon2-cffi's defaults are the RFC 9106 low-memory profile of argon2id.
_hasher = PasswordHasher()
# Verified against when the username is unknown, so both paths cost the same (no enumeration by timing).
_DUMMY_HASH = _hasher.hash("not-a-real-password-used-for-timing")
COMMON = frozenset({
    "password1234", "123456789012", "qwertyuiop12", "matkhau12345", "hue123456789", "admin1234567",
})
MIN_LENGTH = 12


class PasswordRuleError(ValueError):
    """A new password breaks a rule; the message says which."""


def check_rules(password: str, *, username: str = "") -> None:
    """Raise PasswordRuleError naming the first rule ``password`` breaks."""
    if len(password) < MIN_LENGTH:
        raise PasswordRuleError(f"password must be at least {MIN_LENGTH} characters long")
    if len(password) > 256:
        raise PasswordRuleError("password must be at most 256 characters long")
    if not any(ch.isalpha() for ch in password) or not any(ch.isdigit() for ch in password):
        raise PasswordRuleError("password must contain at least one letter and one digit")
    if username and username.lower() in password.lower():
        raise PasswordRuleError("password must not contain the username")
    if password.lower() in COMMON:
        raise PasswordRuleError("password is too common")


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; with no stored hash, spends the same time and says False."""
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(stored_hash)
