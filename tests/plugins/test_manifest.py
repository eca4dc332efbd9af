"""The manifest schema: valid manifests pass, every kind of mistake is named precisely."""

import pytest

from plugins.manifest import Manifest, ManifestError, read_manifest, semver_tuple, validate_manifest
from tests.plugins.sample import manifest


def test_valid_manifest_is_accepted_with_defaults() -> None:
    m = validate_manifest(manifest(), miniapp="sample")
    assert isinstance(m, Manifest)
    assert m.entry_page == "/" and m.placement == "home" and m.order == 100
    assert m.name.get("en") == "Sample" and m.name.get("vi") == "Mẫu"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": {"vi": "Mẫu"}}, "name.en"),
        ({"version": "1.0"}, "version"),
        ({"min_host_version": "latest"}, "min_host_version"),
        ({"audiences": []}, "audiences"),
        ({"audiences": ["tourist"]}, "audiences.0"),
        ({"scopes": [{"scope": "contacts", "reason": {"vi": "x", "en": "y"}}]}, "scopes.0.scope"),
        ({"scopes": [{"scope": "camera"}]}, "scopes.0.reason"),
        ({"entry_page": "index"}, "entry_page"),
        ({"developer": None}, "developer"),
        ({"colour": "red"}, "colour"),
        ({"public": True, "audiences": ["operator"]}, "public"),
    ],
)
def test_invalid_manifest_names_miniapp_and_field(changes: dict, field: str) -> None:
    with pytest.raises(ManifestError) as info:
        validate_manifest(manifest(**changes), miniapp="sample")
    message = str(info.value)
    assert "mini-app 'sample'" in message
    assert f"field '{field}'" in message


def test_manifest_id_must_equal_package_name() -> None:
    with pytest.raises(ManifestError, match=r"field 'id'.*'other'"):
        validate_manifest(manifest(id="other"), miniapp="sample")


def test_wrong_return_type_is_named() -> None:
    with pytest.raises(ManifestError, match="returned list"):
        validate_manifest(["not", "a", "manifest"], miniapp="sample")  # type: ignore[arg-type]


def test_semver_ordering() -> None:
    assert semver_tuple("1.10.0") > semver_tuple("1.9.3")
    with pytest.raises(ValueError):
        semver_tuple("v1")


def test_read_manifest_beside_module(tmp_path) -> None:
    (tmp_path / "manifest.json").write_text('{"id": "x"}', encoding="utf-8")
    assert read_manifest(tmp_path / "__init__.py") == {"id": "x"}
