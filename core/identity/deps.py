"""FastAPI dependencies for the caller: ``PrincipalDep`` (anyone) and ``CurrentUser`` (signed in)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from core.errors import Problem
from core.identity.principal import ANONYMOUS, Principal


def get_principal(request: Request) -> Principal:
    """The caller, from the bearer token or the session cookie; anonymous when neither is sent."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    authenticator = getattr(request.app.state, "authenticator", None)
    principal = authenticator.authenticate(request) if authenticator is not None else ANONYMOUS
    request.state.principal = principal
    return principal


def require_user(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    """The caller, who must be signed in (401 otherwise)."""
    if not principal.is_authenticated:
        raise Problem(401, "Sign in to use this.", headers={"WWW-Authenticate": "Bearer"})
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]
CurrentUser = Annotated[Principal, Depends(require_user)]
