"""The flood map passes the contract kit every mini-app must pass."""

from plugins.testing import check_miniapp


def test_floodmap_passes_the_contract_kit(tmp_path) -> None:
    check_miniapp("floodmap", tmp_path)
