"""``superapp new-miniapp``: the generated package installs, is discovered and passes its own tests unedited."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.cli import main

BIN = Path(sys.executable).parent


def test_generated_mini_app_installs_is_discovered_and_passes_its_tests(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["new-miniapp", "parking", "--directory", str(tmp_path)])
    assert result.exit_code == 0, result.output
    package = tmp_path / "superapp-parking"
    assert "pip install -e" in result.output and (package / "src/superapp_parking/manifest.json").is_file()

    # Installed on its own path (no network, nothing left in the shared environment), found by entry point.
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "--target", str(site), str(package)], check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(site), "SUPERAPP_VAR_DIR": str(tmp_path / "var"),
           "SUPERAPP_DATABASE_URL": f"sqlite:///{tmp_path / 'list.db'}"}
    listed = subprocess.run([str(BIN / "superapp"), "miniapps", "list"], env=env, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert any(line.split()[:2] == ["parking", "0.1.0"] for line in listed.stdout.splitlines()), listed.stdout

    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=package,
                           env=env, capture_output=True, text=True)
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert "4 passed" in tests.stdout, tests.stdout[-500:]


@pytest.mark.parametrize(("name", "message"), [("Parking", "lower-case"), ("x", "2-30"), ("admin", "reserved"),
                                               ("my-app", "lower-case")])
def test_unusable_names_are_refused_with_the_reason(tmp_path: Path, name: str, message: str) -> None:
    result = CliRunner().invoke(main, ["new-miniapp", name, "--directory", str(tmp_path)])
    assert result.exit_code == 2 and message in result.output
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "superapp-parking").mkdir()
    (tmp_path / "superapp-parking" / "keep.txt").write_text("mine")
    result = CliRunner().invoke(main, ["new-miniapp", "parking", "--directory", str(tmp_path)])
    assert result.exit_code == 2 and "already exists" in result.output
    assert (tmp_path / "superapp-parking" / "keep.txt").read_text() == "mine"
