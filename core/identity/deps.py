"""FastAPI dependencies for the caller: ``PrincipalDep`` (anyone) and ``CurrentUser`` (signed in)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from core.errors import Problem
from core.identity.principal import ANONYMOUS, Principal


async def get_principal(request: Request) -> Principal:
    """The caller, from the bearer token or the session cookie; anonymous when neither is sent."""
    cached = request.scope.get("superapp.principal")
    if cached is not None:
        return cached
    authenticator = getattr(request.app.state, "authenticator", None)
    principal = await authenticator.authenticate(request) if authenticator is not None else ANONYMOUS
    request.scope["superapp.principal"] = principal
    return principal


async def require_user(request: Request) -> Principal:
    """The caller, who must be signed in (401 otherwise)."""
    # Called directly rather than as a sub-dependency: one dependency level less on every request.
    principal = await get_principal(request)
    if not principal.is_authenticated:
        raise Problem(401, "Sign in to use this.", headers={"WWW-Authenticate": "Bearer"})
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]
CurrentUser = Annotated[Principal, Depends(require_user)]
