"""The manifest's JSON Schema: generated from ``plugins.manifest.Manifest``, checked in, served, never drifting.

The schema is what authors point their editor at (docs/miniapps.md), so it must accept every manifest the
host accepts and refuse what the host refuses without coercion.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs  # schemathesis' validator (the test extra): JSON Schema 2020-12, as editors read it
import pytest
from fastapi.testclient import TestClient

from core.app import create_app
from core.scaffold import create_miniapp
from plugins.manifest import ManifestError, manifest_json_schema, manifest_json_schema_text, validate_manifest
from tests.conftest import base_settings
from tests.test_docs import _tutorial_files

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = ROOT / "docs" / "manifest.schema.json"
REGENERATE = ('python -c "import sys; from plugins.manifest import manifest_json_schema_text as t; '
              'sys.stdout.write(t())" > docs/manifest.schema.json')


def _validator() -> Any:
    return jsonschema_rs.validator_for(manifest_json_schema())


def _shipped_manifests(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """Every manifest this repository ships or tells authors to write."""
    found = {str(path.relative_to(ROOT)): json.loads(path.read_text(encoding="utf-8"))
             for path in [*sorted((ROOT / "miniapps").glob("*/manifest.json")),
                          *sorted((ROOT / "tests" / "thirdparty").rglob("manifest.json"))]}
    scaffolded = create_miniapp("parking", tmp_path)
    found["superapp new-miniapp parking"] = json.loads(
        (scaffolded / "src" / "superapp_parking" / "manifest.json").read_text(encoding="utf-8"))
    found["docs/miniapps.md tutorial"] = json.loads(_tutorial_files()["src/superapp_lostfound/manifest.json"])
    return found


def test_the_published_schema_is_the_models_schema() -> None:
    assert PUBLISHED.is_file(), f"docs/manifest.schema.json is missing; write it with: {REGENERATE}"
    assert PUBLISHED.read_text(encoding="utf-8") == manifest_json_schema_text(), (
        f"docs/manifest.schema.json differs from plugins.manifest.Manifest; regenerate it with: {REGENERATE}")


def test_the_schema_is_a_2020_12_schema_of_every_field() -> None:
    from plugins.manifest import Manifest

    schema = json.loads(PUBLISHED.read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["properties"]) == set(Manifest.model_fields)
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {n for n, f in Manifest.model_fields.items() if f.is_required()}


def test_every_shipped_manifest_passes_the_schema_and_the_host(tmp_path: Path) -> None:
    validator = _validator()
    manifests = _shipped_manifests(tmp_path)
    assert len(manifests) >= 7, sorted(manifests)  # four built-ins, the festival sample, scaffold, tutorial
    for where, data in manifests.items():
        errors = [error.message for error in validator.iter_errors(data)]
        assert not errors, f"{where}: {errors}"
        validate_manifest(data, miniapp=data["id"])


@pytest.mark.parametrize(("change", "field"), [
    ({"order": "40"}, "order"),
    ({"public": "yes"}, "public"),
    ({"order": 10_001}, "order"),
    ({"version": "1.2"}, "version"),
    ({"min_host_version": "one"}, "min_host_version"),
    ({"audiences": []}, "audiences"),
    ({"audiences": ["mayor"]}, "audiences.0"),
    ({"placement": "sidebar"}, "placement"),
    ({"name": {"vi": "Bãi đỗ xe"}}, "name.en"),
    ({"id": "Parking"}, "id"),
    ({"entry_page": "list"}, "entry_page"),
    ({"roots": ["open311"]}, "roots.0"),
    ({"scopes": [{"scope": "microphone", "reason": {"vi": "a", "en": "a"}}]}, "scopes.0.scope"),
    ({"developer": {"name": "City", "email": "not-an-address"}}, "developer.email"),
    ({"colour": "blue"}, "colour"),
])
def test_the_schema_refuses_what_the_host_refuses(tmp_path: Path, change: dict[str, Any], field: str) -> None:
    """No coercion in either: a string where a number or a boolean belongs is an error, naming the field."""
    data = {**_shipped_manifests(tmp_path)["superapp new-miniapp parking"], **change}
    assert not _validator().is_valid(data), f"the schema accepts {change}"
    with pytest.raises(ManifestError, match=rf"field '{field}'"):
        validate_manifest(data, miniapp=data["id"])


def test_the_host_serves_the_published_schema(tmp_path: Path) -> None:
    with TestClient(create_app(base_settings(database_url=f"sqlite:///{tmp_path / 'schema.db'}", miniapps=[]))) as client:
        answer = client.get("/schemas/miniapp-manifest.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/schema+json"
    assert answer.text == PUBLISHED.read_text(encoding="utf-8")
