"""The container image and compose file, checked without a Docker engine (none runs on CI machines).

What is checked: the compose file loads as YAML with its anchors, wires the topology the docs promise
(PostgreSQL, Redis, a migration one-shot the others wait for, web workers without the push worker, a
push worker) and sets only settings that exist; the Dockerfile is multi-stage on slim Python 3.11, runs
as a non-root user, enters through ``superapp`` and checks ``/healthz``. Building and running the image
needs an engine and is not done here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from config import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    """compose.yaml, parsed (merge keys resolved)."""
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def environment(service: dict) -> dict[str, str]:
    """A service's environment as a mapping."""
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment should be a mapping"
    return {name: str(value) for name, value in env.items()}


def test_compose_wires_the_city_topology(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {"db", "cache", "migrate", "web", "push"}
    assert services["db"]["image"].startswith("postgres:") and services["cache"]["image"].startswith("redis:")

    migrate, web, push = services["migrate"], services["web"], services["push"]
    assert migrate["command"] == ["db", "upgrade"] and migrate["restart"] == "no"
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    for waiting in (web, push):
        assert waiting["depends_on"]["migrate"]["condition"] == "service_completed_successfully"

    assert web["command"][:1] == ["serve"] and "--workers" in web["command"] and "0.0.0.0" in web["command"]
    assert environment(web)["SUPERAPP_PUSH_WORKER_ENABLED"] == "false"
    assert push["command"] == ["push", "worker"]
    assert environment(push)["SUPERAPP_PUSH_WORKER_ENABLED"] == "true"
    assert push["healthcheck"] == {"disable": True}

    # One image, one database and one broker for all three.
    for service in (migrate, web, push):
        env = environment(service)
        assert service["image"] == web["image"]
        assert env["SUPERAPP_DATABASE_URL"].startswith("postgresql://") and "@db:5432/" in env["SUPERAPP_DATABASE_URL"]
        assert env["SUPERAPP_REDIS_URL"] == "redis://cache:6379/0"
        assert env["SUPERAPP_ENV"].startswith("${SUPERAPP_ENV:-production")
        assert "${SUPERAPP_SECRET_KEY:?" in env["SUPERAPP_SECRET_KEY"], "a missing secret must stop compose"


def test_compose_sets_only_settings_that_exist(compose: dict) -> None:
    known = {f"SUPERAPP_{name.upper()}" for name in Settings.model_fields}
    used = {name for service in compose["services"].values() for name in environment(service)
            if name.startswith("SUPERAPP_")}
    assert used and used <= known, sorted(used - known)


def test_compose_defaults_are_valid_settings(compose: dict) -> None:
    """With its defaults filled in, the web service's environment is accepted by the settings."""
    filled = {}
    for name, value in environment(compose["services"]["web"]).items():
        if not name.startswith("SUPERAPP_"):
            continue
        value = re.sub(r"\$\{SUPERAPP_SECRET_KEY:\?[^}]*\}", "s" * 40, value)
        value = re.sub(r"\$\{POSTGRES_PASSWORD:\?[^}]*\}", "pw", value)
        filled[name[len("SUPERAPP_"):].lower()] = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)
    settings = Settings(**filled)
    assert settings.env == "production" and settings.push_worker_enabled is False
    assert settings.redis_url == "redis://cache:6379/0"


def test_dockerfile_is_multi_stage_slim_non_root_with_a_healthcheck() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    assert re.search(r"ARG PYTHON_IMAGE=python:3\.11-slim", "\n".join(instructions))
    stages = [line for line in instructions if line.startswith("FROM ")]
    assert [s.split(" AS ")[-1] for s in stages] == ["build", "runtime"]
    assert "COPY --from=build /opt/superapp /opt/superapp" in instructions
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    text = "\n".join(instructions)
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert 'ENTRYPOINT ["superapp"]' in instructions
    assert 'CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]' in instructions


def test_dockerignore_keeps_the_build_context_small() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", "var", "tests", "bench", ".env", "**/__pycache__"} <= ignored
    # What the package is built from must stay in the context.
    assert not {"pyproject.toml", "README.md", "core", "push", "plugins", "miniapps", "config"} & ignored
