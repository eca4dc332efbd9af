"""``superapp_register_channels``: what the callback accepts, what it refuses, how the hub uses it."""

from __future__ import annotations

import asyncio

import pytest

from core.identity.principal import Principal
from plugins.manager import load_miniapps
from plugins.registry import ContractError
from push.realtime import RealtimeHub
from tests.plugins.sample import candidate

RESIDENT = Principal(user_id=7, kind="resident", home_unit_id="phu-xuan")
OFFICIAL = Principal(user_id=8, kind="official")


def _load(channels_hook):
    return load_miniapps([candidate("sample", superapp_register_channels=channels_hook)], host_version="1.0.0")[1]


def test_channels_are_recorded_under_the_miniapp() -> None:
    async def crews(principal, name):
        return principal.kind == "official"

    def hook(register):
        register("status", lambda principal, name: True)
        register("status:crews", crews)

    [miniapp] = _load(hook)
    assert [(c.prefix, c.channel) for c in miniapp.channels] == [
        ("status", "miniapp:sample:status"), ("status:crews", "miniapp:sample:status:crews")]


@pytest.mark.parametrize("prefix", ["", "Live", "live:", ":live", "li ve", "x" * 101, 42])
def test_bad_prefixes_stop_startup(prefix) -> None:
    with pytest.raises(ContractError, match="mini-app 'sample': channel prefix"):
        _load(lambda register: register(prefix, lambda principal, name: True))


def test_authorize_must_take_two_arguments_and_prefixes_are_unique() -> None:
    with pytest.raises(ContractError, match="2 positional"):
        _load(lambda register: register("live", lambda principal: True))
    with pytest.raises(ContractError, match="registered twice"):
        _load(lambda register: (register("live", lambda p, n: True), register("live", lambda p, n: True)))


async def test_the_longest_prefix_decides_and_only_true_allows() -> None:
    def hook(register):
        register("status", lambda principal, name: True)
        register("status:crews", _officials_only)
        register("maybe", lambda principal, name: "yes")  # truthy is not enough
        register("broken", _raises)
        register("slow", _slow)

    hub = RealtimeHub(broker=None, authenticator=None, engine=None, miniapps=_load(hook), authorize_timeout=0.05)
    verdicts = {}
    for principal in (RESIDENT, OFFICIAL):
        for name in ("status", "status:12", "status:crews", "status:crews:north", "maybe", "broken", "slow", "nope"):
            verdict = await hub._authorize(principal, f"miniapp:sample:{name}", {})
            verdicts[principal.kind, name] = verdict[0] if verdict else "ok"
    assert verdicts == {
        ("resident", "status"): "ok", ("resident", "status:12"): "ok",
        ("resident", "status:crews"): "forbidden_channel", ("resident", "status:crews:north"): "forbidden_channel",
        ("official", "status"): "ok", ("official", "status:12"): "ok",
        ("official", "status:crews"): "ok", ("official", "status:crews:north"): "ok",
        **{(kind, name): "forbidden_channel" for kind in ("resident", "official") for name in ("maybe", "broken", "slow")},
        ("resident", "nope"): "unknown_channel", ("official", "nope"): "unknown_channel",
    }


async def _officials_only(principal, name):
    return principal.kind == "official"


def _raises(principal, name):
    raise RuntimeError("the mini-app's own bug")


async def _slow(principal, name):
    await asyncio.sleep(1)
    return True


async def test_a_check_that_takes_three_arguments_gets_the_host_context() -> None:
    seen = []

    def needs_host(principal, name, host):
        seen.append(host)
        return host == "the host" and name == "desk:4"

    [miniapp] = _load(lambda register: register("desk", needs_host))
    assert miniapp.channels[0].wants_host
    hub = RealtimeHub(broker=None, authenticator=None, engine=None, miniapps=[miniapp], host_of=lambda: "the host")
    [rule] = hub.rules["sample"]
    assert await hub._ask_miniapp(rule, RESIDENT, "desk:4") is True
    assert await hub._ask_miniapp(rule, RESIDENT, "desk:5") is False
    assert seen == ["the host", "the host"]
