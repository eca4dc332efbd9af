"""Authorisation, one mechanism for core and mini-apps: permissions granted to roles, checked in a unit.

A permission is declared (by core here, by mini-apps through ``superapp_register_permissions``) with
the roles granted it. A role is held in a unit; holding it in the city (operators, admins) covers every
unit. ``require_permission`` is the route dependency; ``Authorizer.allows`` is the object-level check
services call with the unit an object belongs to.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import Depends, Request

from core.errors import Problem
from core.identity.deps import get_principal
from core.identity.principal import Principal
from core.units.service import CITY_ID
from plugins.manifest import LocalizedText
from plugins.registry import MiniApp, Permission

CORE_PERMISSIONS = (
    Permission("core.audit.read", LocalizedText(vi="Xem nhật ký bảo mật", en="Read the audit log"),
               ("admin",), "core"),
    Permission("core.users.manage", LocalizedText(vi="Quản lý tài khoản cán bộ", en="Manage officials' accounts"),
               ("admin",), "core"),
    Permission("core.notifications.send",
               LocalizedText(vi="Gửi thông báo tới người dân và cán bộ", en="Send notifications to residents and officials"),
               ("commune_official", "department_official", "operator"), "core"),
    Permission("core.units.members.read", LocalizedText(vi="Xem cán bộ của đơn vị", en="See a unit's officials"),
               ("commune_official", "department_official", "operator"), "core"),
    Permission("core.miniapps.configure",
               LocalizedText(vi="Thay đổi cài đặt của tiện ích", en="Change mini-app settings"), ("admin",), "core"),
    Permission("core.feed.publish", LocalizedText(vi="Đăng tin và cảnh báo lên bảng tin", en="Publish news and warnings to the feed"),
               ("commune_official", "department_official", "operator"), "core"),
    Permission("core.webapps.manage",
               LocalizedText(vi="Đăng ký, duyệt và phát hành tiện ích web bên ngoài",
                             en="Register, review and publish outside web mini-apps"), ("operator",), "core"),
)


class Authorizer:
    """Knows every declared permission and answers whether a caller holds one in a unit."""

    def __init__(self, miniapps: Iterable[MiniApp]) -> None:
        self.permissions: dict[str, Permission] = {p.name: p for p in CORE_PERMISSIONS}
        for miniapp in miniapps:
            for permission in miniapp.permissions:
                self.permissions[permission.name] = permission

    def allows(self, principal: Principal, permission: str, unit_id: str | None = None) -> bool:
        """True when ``principal`` holds a role granted ``permission`` in ``unit_id`` (or city-wide).

        ``unit_id=None`` asks whether the caller holds the permission in any unit.
        """
        declared = self.permissions.get(permission)
        if declared is None:
            raise LookupError(f"permission {permission!r} is not declared")
        if "admin" in principal.roles:
            return True
        if "resident" in declared.roles and principal.kind == "resident":
            return True  # residents act for themselves, wherever the object is
        for membership in principal.memberships:
            if membership.role not in declared.roles:
                continue
            if unit_id is None or membership.unit_id in (unit_id, CITY_ID):
                return True
        return False

    def units_for(self, principal: Principal, permission: str) -> set[str] | None:
        """The units where the caller holds ``permission``; None means every unit (city-wide)."""
        declared = self.permissions[permission]
        if "admin" in principal.roles:
            return None
        units = {m.unit_id for m in principal.memberships if m.role in declared.roles}
        return None if CITY_ID in units else units


class PermissionCheck:
    """The dependency ``require_permission`` returns; the host finds these to check declarations."""

    def __init__(self, permission: str, unit_param: str | None) -> None:
        self.permission = permission
        self.unit_param = unit_param

    async def __call__(self, request: Request, principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not principal.is_authenticated:
            raise Problem(401, "Sign in to use this.", headers={"WWW-Authenticate": "Bearer"})
        unit_id = None
        if self.unit_param is not None:
            unit_id = request.path_params.get(self.unit_param) or request.query_params.get(self.unit_param)
        authorizer: Authorizer = request.app.state.authorizer
        if not authorizer.allows(principal, self.permission, unit_id):
            where = f" in unit {unit_id!r}" if unit_id else ""
            raise Problem(403, f"you do not have the permission {self.permission!r}{where}",
                          type="/problems/forbidden", permission=self.permission)
        return principal


def require_permission(permission: str, *, unit_param: str | None = None) -> Any:
    """A dependency that lets the request through only if the caller holds ``permission``.

    With ``unit_param``, the permission must be held in the unit named by that path or query
    parameter (a city-wide role covers every unit).
    """
    return Depends(PermissionCheck(permission, unit_param))


def permission_checks(routers: Iterable[Any]) -> set[str]:
    """Every permission named by a ``require_permission`` dependency in ``routers``' routes."""
    found: set[str] = set()

    def walk(dependant: Any) -> None:
        for dep in dependant.dependencies:
            if isinstance(dep.call, PermissionCheck):
                found.add(dep.call.permission)
            walk(dep)

    for router in routers:
        for route in router.routes:
            dependant = getattr(route, "dependant", None)
            if dependant is not None:
                walk(dependant)
    return found


def require_scope(scope: str) -> Any:
    """A dependency for a mini-app route: the resident must have granted ``scope`` to this mini-app."""

    def check(request: Request, principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
        if not principal.is_authenticated:
            raise Problem(401, "Sign in to use this.", headers={"WWW-Authenticate": "Bearer"})
        miniapp_id = _miniapp_of(request)
        if principal.kind != "resident":
            return principal  # officials act for their unit; consent is a resident's choice
        granted = request.app.state.consents.granted_by_miniapp(principal).get(miniapp_id, set())
        if scope not in granted:
            raise Problem(403, f"grant the scope {scope!r} to mini-app {miniapp_id!r} first",
                          type="/problems/scope-not-granted", scope=scope, miniapp=miniapp_id)
        return principal

    return Depends(check)


def _miniapp_of(request: Request) -> str:
    path = request.url.path
    for prefix in ("/api/miniapps/", "/m/"):
        if path.startswith(prefix):
            return path[len(prefix):].split("/", 1)[0]
    raise LookupError(f"require_scope used outside a mini-app route: {path}")

