"""The interaction mini-app passes the contract kit every mini-app must pass."""

from plugins.testing import check_miniapp


def test_passes_the_contract_kit(tmp_path) -> None:
    check_miniapp("interaction", tmp_path)
