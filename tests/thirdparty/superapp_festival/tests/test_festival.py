"""The festival mini-app's own tests, as a third-party developer would write them."""

from plugins.testing import check_miniapp


def test_passes_the_contract_kit(tmp_path) -> None:
    check_miniapp("festival", tmp_path)
