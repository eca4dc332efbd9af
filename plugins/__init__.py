"""The mini-app contract: hook specs, the ``hookimpl`` marker, the manifest and discovery.

A mini-app imports what it needs from here::

    from plugins import hookimpl, read_manifest
"""

import pluggy

from plugins.events import DomainEvent
from plugins.hookspecs import CONTRACT_VERSION, PROJECT
from plugins.manifest import Audience, LocalizedText, Manifest, ManifestError, Scope, read_manifest
from plugins.registry import ContractError, MiniApp

hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = [
    "CONTRACT_VERSION",
    "Audience",
    "ContractError",
    "DomainEvent",
    "LocalizedText",
    "Manifest",
    "ManifestError",
    "MiniApp",
    "Scope",
    "hookimpl",
    "read_manifest",
]
