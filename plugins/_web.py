"""The host in a request: ``HostDep`` for route signatures and ``host_of(request)`` elsewhere."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from plugins.context import Host


def host_of(connection: HTTPConnection) -> Host:
    """The host serving ``connection`` (a request or a WebSocket)."""
    host: Host = connection.app.state.host
    return host


def get_host(request: Request) -> Host:
    """FastAPI dependency: the host serving the request."""
    return host_of(request)


HostDep = Annotated[Host, Depends(get_host)]
