"""The layers of docs/architecture.md hold in the real import graph (the contracts in .importlinter)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _lint(config: Path, *, path: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the ``lint-imports`` command of this environment (as CI does) on ``config``."""
    # A child process: import-linter builds its graph from the importable packages, untouched by this session.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(path or ""), os.environ.get("PYTHONPATH", "")) if p)}
    command = [str(Path(sys.executable).parent / "lint-imports"), "--config", str(config), "--no-cache"]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def test_every_import_contract_is_kept() -> None:
    result = _lint(ROOT / ".importlinter")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_a_miniapp_importing_the_host_breaks_the_contract(tmp_path: Path) -> None:
    # The contract can fail: the same check, pointed at a mini-app that imports core directly.
    package = tmp_path / "rogue_miniapp"
    package.mkdir()
    (package / "__init__.py").write_text("from core.db import SessionDep\n")
    config = tmp_path / "contracts.ini"
    config.write_text(textwrap.dedent("""
        [importlinter]
        root_packages =
            core
            rogue_miniapp
        [importlinter:contract:sdk]
        name = Mini-apps import only the SDK
        type = forbidden
        source_modules = rogue_miniapp
        forbidden_modules = core
    """))
    result = _lint(config, path=tmp_path)
    assert result.returncode == 1
    assert "rogue_miniapp -> core.db" in result.stdout
