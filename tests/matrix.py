"""The shared vocabulary of the authorisation matrix: personas' outcomes, the world rows run in, a row.

Core rows live in ``tests/core/identity/test_matrix.py``; each mini-app keeps its rows in
``tests/miniapps/<id>/matrix_rows.py`` as ``ROWS: dict[(method, path template), list[Case]]``, which
that test merges in. Every route the host serves needs at least one row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session

from core.identity import service
from core.identity.ratelimit import SignInLimiter
from tests.core.identity.conftest import PERSONAS, Persona

ALLOW = "allow"  # any 2xx or 3xx (304 included)
SIGN_IN = "sign-in"  # a page's 401: 303 to /auth/login (officials) or /auth/phone (residents)
NOT_IN_MATRIX = {"/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect"}
OFFICIALS = ("commune_px", "commune_kl", "department", "operator", "admin")
RESIDENTS = ("resident_a", "resident_b")
# The victim official's memberships, one per persona, so a wrongly allowed removal shows up as itself.
VICTIM_UNITS = dict(zip(PERSONAS, ("an-cuu", "duong-no", "hoa-chau", "huong-an", "huong-thuy", "huong-tra",
                                   "kim-tra", "my-thuong"), strict=True))

Outcome = str | int


def everyone(outcome: Outcome) -> dict[str, Outcome]:
    """The same outcome for all eight personas."""
    return dict.fromkeys(PERSONAS, outcome)


def signed_in(outcome: Outcome = ALLOW, *, anonymous: Outcome = 401, **exceptions: Outcome) -> dict[str, Outcome]:
    """``outcome`` for every signed-in persona, ``anonymous`` for the anonymous caller."""
    return {**dict.fromkeys(PERSONAS, outcome), "anonymous": anonymous, **exceptions}


def only(*allowed: str, deny: Outcome = 403, anonymous: Outcome = 401, **exceptions: Outcome) -> dict[str, Outcome]:
    """ALLOW for ``allowed``, ``deny`` for the other signed-in personas, ``anonymous`` for anonymous."""
    table = {p: (ALLOW if p in allowed else deny) for p in PERSONAS}
    return {**table, "anonymous": anonymous, **exceptions}


def residents(outcome: Outcome = ALLOW, *, officials: Outcome = 403) -> dict[str, Outcome]:
    """``outcome`` for residents, ``officials`` for officials, 401 for anonymous."""
    return {**dict.fromkeys(PERSONAS, officials), "anonymous": 401, **dict.fromkeys(RESIDENTS, outcome)}


# --- The world the rows run in ------------------------------------------------------------------------


@dataclass
class World:
    """The host, the personas and the objects the rows point at."""

    api: TestClient
    personas: dict[str, Persona]
    make_persona: Callable[[str], Persona]
    sign_in_again: Callable[[Persona], Persona]
    victim: Persona
    victim_memberships: dict[str, int]

    def credentials(self, who: str, fresh: str | None) -> Persona:
        """The persona's shared session, a new session of the same account, or a whole new account."""
        persona = self.personas[who]
        if fresh == "session":
            return self.sign_in_again(persona)
        if fresh == "account":
            return self.make_persona(who)
        return persona

    def db(self) -> Session:
        """A database session on the host's engine."""
        return Session(self.api.app.state.engine, expire_on_commit=False)

    def fresh_rate_limits(self) -> None:
        """Sign-in rows measure who may sign in, not the rate limits: each starts with clean counters."""
        self.api.app.state.sign_in_limiter = SignInLimiter(self.api.app.state.settings.redis_url)

    def refresh_token(self, who: str) -> str:
        """A refresh token of a new session of the department official (used once, by ``who``)."""
        return self.sign_in_again(self.personas["department"]).refresh_token or ""

    def dev_code(self, who: str) -> dict[str, str]:
        """A development sign-in code for a phone number of ``who``'s own."""
        phone = f"+8491000{PERSONAS.index(who):04d}"
        with self.db() as db:
            code = service.start_dev_sign_in(db, secret=self.api.app.state.settings.secret_key, phone=phone)
        return {"phone": phone, "code": code}

    def status_of(self, headers: dict[str, str]) -> int:
        """What GET /api/auth/check answers to ``headers`` (204 signed in, 401 not)."""
        self.api.cookies.clear()
        return self.api.get("/api/auth/check", headers=headers).status_code


@dataclass
class Case:
    """One request every persona makes, and what each must get."""

    label: str
    url: str | Callable[[World, str], str]
    expect: dict[str, Outcome]
    json: Any = None
    data: Any = None  # a form body (dict or callable)
    fresh: str | None = None  # "session" or "account": destructive rows do not spend the shared personas
    before: Callable[[World], None] | None = None
    check: Callable[[World, str, Persona, Any], None] | None = None  # extra assertions on the outcome


def resolve(value: Any, world: World, who: str) -> Any:
    return value(world, who) if callable(value) else value


PUBLIC = everyone(ALLOW)
