"""Schemathesis' status-code and content-type conformance checks over every operation of the OpenAPI: every
status and content type the app answers with is one the document declares (problem details included), for
an anonymous caller and a signed-in official, on SQLite and PostgreSQL. Bounded: SUPERAPP_CONFORMANCE_EXAMPLES
generated requests per operation (1 by default)."""

from __future__ import annotations

import os
from datetime import timedelta

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

from tests.security.test_fuzz import _operations, _send, fuzz_host  # noqa: F401  (fixture)

EXAMPLES = int(os.environ.get("SUPERAPP_CONFORMANCE_EXAMPLES", "1"))
CHECKS = [status_code_conformance, content_type_conformance]


def _settled(answer: httpx.Response) -> httpx.Response:
    """The answer with a bodiless copy of its request: the checks look at status and content type only, and a
    streamed multipart request cannot be read back."""
    sent = answer.request
    headers = {k: v for k, v in answer.headers.items() if k.lower() != "content-encoding"}  # content is decoded
    plain = httpx.Response(answer.status_code, headers=headers, content=answer.content,
                           request=httpx.Request(sent.method, sent.url, headers=sent.headers))
    plain.elapsed = answer.elapsed if hasattr(answer, "_elapsed") else timedelta(0)
    return plain


def _nonconforming(client, operations, headers) -> tuple[int, list[str]]:
    """How many answers were checked, and each one that broke the document (status or content type)."""
    findings: list[str] = []
    checked = [0]
    for operation in operations:
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
        @given(case=operation.as_strategy())
        def run(case) -> None:
            answer = _send(client, case, headers)
            checked[0] += 1
            answer = _settled(answer)
            try:
                case.validate_response(answer, checks=CHECKS)
            except (AssertionError, Failure, FailureGroup) as exc:
                kinds = [str(e).splitlines()[0] for e in getattr(exc, "exceptions", [exc])]
                # run() is called below within this iteration, so it sees this operation
                findings.append(f"{operation.label} -> {answer.status_code} {answer.headers.get('content-type')}: "  # noqa: B023
                                f"{'; '.join(kinds)[:200]}")

        try:
            run()
        except Exception as exc:  # a case the generator could not build is a finding too
            findings.append(f"{operation.label}: {type(exc).__name__}: {str(exc)[:200]}")
    return checked[0], sorted(set(findings))


@pytest.mark.parametrize("caller", ["anonymous", "official"])
def test_every_answer_conforms_to_the_openapi(fuzz_host, caller: str) -> None:  # noqa: F811
    client, callers = fuzz_host
    operations = _operations(client.app)
    checked, findings = _nonconforming(client, operations, callers[caller])
    assert checked >= len(operations)  # every operation answered at least once
    assert not findings, f"{len(findings)} answers outside the OpenAPI:\n" + "\n".join(findings)


def test_the_check_can_fail() -> None:
    # an answer the document does not declare (a 418 with text) is caught by the same checks
    import schemathesis
    schema = schemathesis.openapi.from_dict({
        "openapi": "3.1.0", "info": {"title": "t", "version": "1"},
        "paths": {"/x": {"get": {"responses": {"200": {"description": "ok",
                                                        "content": {"application/json": {}}}}}}}})
    operation = next(iter(schema.get_all_operations())).ok()
    case = operation.Case()
    answer = _settled(httpx.Response(418, text="teapot", headers={"content-type": "text/plain"},
                                     request=httpx.Request("GET", "http://testserver/x")))
    with pytest.raises((AssertionError, Failure, FailureGroup)):
        case.validate_response(answer, checks=CHECKS)
