"""ruff and mypy, as configured in pyproject.toml, pass on the code (the README's test command runs them too)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _run(*command: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run a tool of this environment (as .ci/run does) in ``cwd``."""
    return subprocess.run([str(BIN / command[0]), *command[1:]], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_ruff_finds_nothing() -> None:
    result = _run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_mypy_finds_nothing() -> None:
    # The files and the per-package strictness come from [tool.mypy]; the cache keeps a rerun to seconds.
    result = _run("mypy")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Success" in result.stdout


def test_the_checks_can_fail(tmp_path: Path) -> None:
    # The same configuration, pointed at a module with an undefined name and a wrong argument type.
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    package = tmp_path / "plugins"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent("""
        def greeting(name: str) -> str:
            return "hello " + name

        def broken() -> str:
            return greeting(42) + undefined_name
    """))
    ruff = _run("ruff", "check", "--no-cache", "plugins", cwd=tmp_path)
    assert ruff.returncode == 1
    assert "F821" in ruff.stdout and "undefined_name" in ruff.stdout
    mypy = _run("mypy", "--no-incremental", "plugins", cwd=tmp_path)
    assert mypy.returncode == 1
    assert 'Argument 1 to "greeting" has incompatible type "int"' in mypy.stdout
