"""The caller of a request, as every route and mini-app sees it."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from plugins.manifest import Audience


@dataclass(frozen=True)
class Membership:
    """A role held in one org unit (``unit_id`` is the city for city-wide roles)."""

    role: str
    unit_id: str


@dataclass(frozen=True)
class Principal:
    """Who is calling: anonymous, a resident or an official, with their memberships."""

    user_id: int | None = None
    kind: str = "anonymous"  # anonymous | resident | official
    display_name: str = ""
    locale: str | None = None
    home_unit_id: str | None = None
    memberships: tuple[Membership, ...] = field(default_factory=tuple)
    session_id: int | None = None

    @property
    def is_authenticated(self) -> bool:
        """True for any signed-in caller."""
        return self.user_id is not None

    @cached_property
    def roles(self) -> frozenset[str]:
        """The role names held, in any unit; residents hold ``resident``."""
        names = {m.role for m in self.memberships}
        if self.kind == "resident":
            names.add("resident")
        return frozenset(names)

    def units_with_role(self, *roles: str) -> frozenset[str]:
        """The units where the caller holds one of ``roles``."""
        return frozenset(m.unit_id for m in self.memberships if m.role in roles)

    def audiences(self) -> frozenset[Audience]:
        """The manifest audiences this caller belongs to; an admin belongs to all of them."""
        return self._audiences

    @cached_property
    def _audiences(self) -> frozenset[Audience]:
        # Cached: the manifests API asks on every request, and a principal never changes.
        if "admin" in self.roles:
            return frozenset(Audience)
        return frozenset(Audience(r) for r in self.roles if r in Audience.__members__)


ANONYMOUS = Principal()
