"""A bounded Schemathesis run over the whole OpenAPI, anonymous and signed in as an official and a resident (and
the official again with schema-breaking requests), on SQLite and PostgreSQL: no generated request may get a 5xx.

Each operation gets SUPERAPP_FUZZ_EXAMPLES generated requests (2 by default) and SUPERAPP_FUZZ_NEGATIVE_EXAMPLES
schema-breaking ones (1), which keeps the eight runs near two minutes on a shared 2-core machine; raise them
locally to dig deeper. Operations that end the caller's session
run last, so the signed-in runs stay signed in for everything else.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from pydantic import BaseModel
from schemathesis.generation import GenerationMode
from sqlmodel import Session

from core.app import create_app
from core.identity import service as identity
from tests.conftest import base_settings
from tests.core.identity.conftest import PASSWORD

EXAMPLES = int(os.environ.get("SUPERAPP_FUZZ_EXAMPLES", "2"))
# Schema-breaking requests cost more to generate (most drafts are rejected): fewer of them.
NEGATIVE_EXAMPLES = int(os.environ.get("SUPERAPP_FUZZ_NEGATIVE_EXAMPLES", "1"))
# They sign the caller out, or remove what the caller signs in with: run after everything else.
ENDS_THE_SESSION = ("sign_out", "sign_out_everywhere", "delete_my_account", "remove_membership")


@pytest.fixture
def fuzz_host(database_url: str, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    """A development host (lifespan running) and the callers' headers: anonymous, an official, a resident."""
    settings_ = base_settings(database_url=database_url, env="dev", var_dir=tmp_path / "var")
    app = create_app(settings_)
    with TestClient(app, raise_server_exceptions=False) as client:
        with Session(app.state.engine, expire_on_commit=False) as db:
            official = identity.create_official(db, username="fuzz.official", display_name="Cán bộ thử",
                                                password=PASSWORD,
                                                memberships=[("commune_official", "phu-xuan"), ("admin", "hue")])
            resident = identity.find_or_create_resident(db, firebase_uid="fuzz-resident", phone="+84905000111",
                                                        address=None)
            resident.home_unit_id = "phu-xuan"
            db.add(resident)
            db.commit()
            callers = {"anonymous": {}} | {
                name: {"Authorization": "Bearer " + identity.start_session(
                    db, secret=settings_.secret_key, user=user, method="test", client="fuzz",
                    address="127.0.0.1").access_token}
                for name, user in (("official", official), ("resident", resident))}
        yield client, callers


def _operations(app) -> list:
    """Every operation of the app's OpenAPI, the session-ending ones last."""
    schema = schemathesis.openapi.from_dict(app.openapi())
    operations = [result.ok() for result in schema.get_all_operations()]
    return sorted(operations, key=lambda op: op.definition.raw.get("operationId", "") in ENDS_THE_SESSION)


def _send(client: TestClient, case, headers: dict[str, str]):
    """Send a generated case through the test client (httpx names for the requests-style arguments)."""
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
    for unused in ("timeout", "verify", "allow_redirects"):
        kwargs.pop(unused, None)
    if isinstance(kwargs.get("data"), bytes | str):
        kwargs["content"] = kwargs.pop("data")
    cookies = kwargs.pop("cookies", None) or {}
    if cookies:
        kwargs["headers"]["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return client.request(**kwargs, follow_redirects=False)


def _fuzz(client: TestClient, operations: list, headers: dict[str, str], mode: GenerationMode) -> tuple[
        Counter[int], list[str], bool]:
    """Run every operation's generated requests; the statuses seen, the server errors found, and whether the
    caller was still who they were when the session-ending operations (or the end) came."""
    statuses: Counter[int] = Counter()
    server_errors: list[str] = []
    signed_in_throughout = None
    examples = EXAMPLES if mode is GenerationMode.POSITIVE else NEGATIVE_EXAMPLES

    for operation in operations:
        if mode is GenerationMode.NEGATIVE and "requestBody" not in operation.definition.raw:
            continue  # broken bodies are where the 5xx hide; breaking a bare path costs much and finds little
        if signed_in_throughout is None and operation.definition.raw.get("operationId") in ENDS_THE_SESSION:
            signed_in_throughout = client.get("/api/me", headers=headers).status_code == (401 if not headers else 200)

        @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case) -> None:
            answer = _send(client, case, headers)
            statuses[answer.status_code] += 1
            if answer.status_code >= 500:
                # run() is called below within this iteration, so it sees this operation
                server_errors.append(f"{operation.label} -> {answer.status_code}: {case.as_curl_command()}\n"  # noqa: B023
                                     f"    {answer.text[:300]}")

        try:
            run()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE, operation.label  # nothing to break in an operation without input
        except Exception as exc:  # a case the generator could not build is a finding too
            server_errors.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:300]}")

    if signed_in_throughout is None:  # no session-ending operation ran in this mode
        signed_in_throughout = client.get("/api/me", headers=headers).status_code == (401 if not headers else 200)
    return statuses, server_errors, signed_in_throughout


@pytest.mark.parametrize(("caller", "mode"), [
    ("anonymous", GenerationMode.POSITIVE), ("official", GenerationMode.POSITIVE),
    ("resident", GenerationMode.POSITIVE),
    # Requests that break the schema (wrong types, missing fields): signed in, so they get past sign-in checks.
    ("official", GenerationMode.NEGATIVE),
])
def test_no_generated_request_gets_a_server_error(fuzz_host, caller: str, mode: GenerationMode) -> None:
    client, callers = fuzz_host
    operations = _operations(client.app)
    assert len(operations) > 100  # the whole API, not a corner of it
    statuses, server_errors, signed_in_throughout = _fuzz(client, operations, callers[caller], mode)
    assert server_errors == [], "\n".join(server_errors)
    if mode is GenerationMode.POSITIVE:
        assert sum(n for status, n in statuses.items() if status < 300) >= 20, statuses  # some requests got through
    else:
        assert statuses[422] + statuses[400] >= 30, statuses  # the broken requests were refused as such
    assert signed_in_throughout, "the caller was signed out before the session-ending operations ran"


class Reading(BaseModel):
    """A body whose every value the broken route below cannot handle."""

    level: int


def test_the_run_finds_a_server_error(fuzz_host) -> None:
    """The runner can fail: a route that breaks on a body the schema allows is reported with its request."""
    client, callers = fuzz_host

    def broken(reading: Reading) -> dict[str, float]:
        return {"inverse": 1 / (reading.level - reading.level)}

    client.app.add_api_route("/api/broken", broken, methods=["POST"], operation_id="broken")
    client.app.openapi_schema = None
    operations = [op for op in _operations(client.app) if op.label == "POST /api/broken"]
    _statuses, server_errors, _ = _fuzz(client, operations, callers["official"], GenerationMode.POSITIVE)
    assert server_errors and server_errors[0].startswith("POST /api/broken -> 500"), server_errors
