"""Fuzz every operation of the OpenAPI schema: no input may produce a 500, and every response
must match the schema the API publishes (issue #9).

Schemathesis generates requests from the app's own ``/openapi.json`` — valid ones (positive)
and ones that break the schema (negative) — and sends them through the ASGI app, whose
lifespan runs once on the test's real PostgreSQL and Redis. Generation is derandomized, so CI
sees the same cases on every run.

Excluded operations, and why:

- ``GET /ws`` (and any WebSocket route): not an HTTP operation, absent from the schema.
- ``POST /api/instruments/sync``: starts background downloads of broker instrument dumps
  from the internet; a fuzzed run would depend on the network and leave jobs running.
- ``POST /api/admin/seed``: takes no input to fuzz and loads the whole demo universe (slow);
  it is called once, before fuzzing, so the other operations meet a populated database.

To reproduce one operation's cases, set ``FUZZ_ONLY`` to a regular expression matching
``"METHOD /path"`` (for example ``FUZZ_ONLY='POST /api/exchanges/\\{code\\}/special'``);
``FUZZ_EXAMPLES`` (default 20) sets the number of cases per operation and mode.

Two checks run on every response: "not a server error" and response-schema conformance (the
body of each documented status code matches its published schema — error bodies as
``api/errors.py`` documents them, session times as RFC 3339 ``partial-time``).

The OIDC routes stay in: OIDC is not configured in the tests, so they answer 404 without
contacting an issuer.
"""

from __future__ import annotations

import asyncio
import os
import re
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from hypothesis import HealthCheck, Phase
from hypothesis.errors import Unsatisfiable
from pydantic import SecretStr
from schemathesis import Case, CheckContext, GenerationMode, Response
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.core.result import Ok
from schemathesis.python import asgi as schemathesis_asgi

from marketpulse.accounts.secrets import generate_key
from marketpulse.api.app import create_app
from marketpulse.config import Settings

EXCLUDED = {
    ("POST", "/api/instruments/sync"),
    ("POST", "/api/admin/seed"),
}
# Reachable without credentials even with AUTH_ENABLED=true.
PUBLIC = {
    ("GET", "/"),
    ("GET", "/health"),
    ("POST", "/auth/login"),
    ("POST", "/auth/refresh"),
    ("POST", "/auth/logout"),
    ("POST", "/auth/register"),
    ("GET", "/auth/oidc/login"),
    ("GET", "/auth/oidc/callback"),
}

# Without an ingest process (none runs here) feed control answers 503 "no ingest process is
# running a feed": the documented answer, not a crash.
NO_INGEST_503 = {("POST", "/api/ws/stop"), ("POST", "/api/ws/start"), ("GET", "/api/ws/status")}

# Cases per operation and mode: small enough for CI (< 2 minutes for the whole file); raise it
# locally (FUZZ_EXAMPLES=200) for a deeper search.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))

Check = Callable[..., Any]
Operation = schemathesis.APIOperation[Any, Any, Any, Any]


def no_server_error(ctx: CheckContext, response: Response, case: Case[Operation]) -> bool | None:
    """Schemathesis's ``not_a_server_error``, except for the documented 503s above."""
    operation = (case.operation.method.upper(), case.operation.path)
    if response.status_code == 503 and operation in NO_INGEST_503:
        return None
    return not_a_server_error(ctx, response, case)


def _has_input(operation: Operation) -> bool:
    """Whether the operation takes any parameter or body a negative case could break."""
    containers = (operation.path_parameters, operation.query, operation.headers,
                  operation.cookies, operation.body)  # fmt: skip
    return any(len(container) for container in containers)


def _operations(schema: schemathesis.BaseSchema, skip: set[tuple[str, str]]) -> Iterator[Operation]:
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the schema has an invalid operation: {result.err()}"
        operation = result.ok()
        if (operation.method.upper(), operation.path) not in skip:
            yield operation


def _fuzz_operation(
    operation: Operation,
    mode: GenerationMode,
    checks: list[Check],
    max_examples: int,
    expect: Callable[[GenerationMode, int], bool] | None = None,
) -> str | None:
    """Run one operation's generated cases; the failure report, or ``None`` if all passed."""

    @hypothesis.settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Case[Operation]) -> None:
        response = case.call_and_validate(checks=checks)
        if expect is not None and not expect(mode, response.status_code):
            raise AssertionError(f"unexpected {response.status_code}: {response.text[:300]}")

    try:
        run()
    except Unsatisfiable:
        return None  # every generated case was filtered out: nothing left to break
    # Hypothesis re-raises the (shrunk) failing case's error; schemathesis's FailureGroup is a
    # BaseExceptionGroup, not an Exception.
    except (Exception, BaseExceptionGroup) as exc:
        # The whole chain: a crash in the app arrives as its own traceback (the ASGI client
        # re-raises it) and a flaky one inside an exception group.
        details = "".join(traceback.format_exception(exc))
        return f"{operation.method.upper()} {operation.path} [{mode.value}]:\n{details}"
    return None


def _unauthorized(mode: GenerationMode, status: int) -> bool:
    """A well-formed request without credentials must get 401. A malformed one may be
    rejected before the credentials are looked at (a body that is not JSON is a 422, a path
    that matches no route a 404), but it may never succeed or fail with a 5xx."""
    if mode is GenerationMode.POSITIVE:
        return status == 401
    return 400 <= status < 500


def _load_schema(app: FastAPI) -> schemathesis.BaseSchema:
    # Show the failing payloads in full: schemathesis hides any value whose key looks
    # sensitive ("session_open" counts), and a test database holds no secrets.
    config = schemathesis.Config.from_dict({"output": {"sanitization": {"enabled": False}}})
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config)


def _fuzz_all(
    app: FastAPI,
    checks: list[Check],
    max_examples: int,
    expect: Callable[[GenerationMode, int], bool] | None = None,
    skip: set[tuple[str, str]] | None = None,
) -> tuple[int, list[str]]:
    schema = _load_schema(app)
    failures: list[str] = []
    count = 0
    only = re.compile(os.environ.get("FUZZ_ONLY", ""))
    for operation in _operations(schema, EXCLUDED | (skip or set())):
        if not only.search(f"{operation.method.upper()} {operation.path}"):
            continue
        count += 1
        modes = [GenerationMode.POSITIVE]
        if _has_input(operation):
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:
            report = _fuzz_operation(operation, mode, checks, max_examples, expect)
            if report is not None:
                failures.append(report)
    return count, failures


def _seed(app: FastAPI) -> None:
    with schemathesis_asgi.get_client(app) as client:  # type: ignore[arg-type]
        response = client.post("http://testserver/api/admin/seed")
    assert response.status_code == 200, response.text


@pytest.fixture
def stop_lifespans() -> Iterator[None]:
    """Schemathesis keeps an app's lifespan running after its first request; stop it (and so
    the app's Redis and PostgreSQL connections) before the fixtures drop the database."""
    yield
    schemathesis_asgi.shutdown_lifespans()


async def test_no_fuzzed_request_to_any_operation_gets_a_server_error(
    settings: Settings, stop_lifespans: None
) -> None:
    # AUTH_ENABLED=false: every route answers the anonymous admin. With an encryption key,
    # PUT /api/providers/{name}/credentials stores what it is sent instead of answering 503.
    key = SecretStr(generate_key())
    app = create_app(settings.model_copy(update={"credentials_encryption_key": key}))

    def fuzz() -> tuple[int, list[str]]:
        _seed(app)
        return _fuzz_all(app, [no_server_error, response_schema_conformance], max_examples=EXAMPLES)

    count, failures = await asyncio.to_thread(fuzz)
    assert count > 50 or "FUZZ_ONLY" in os.environ, (
        f"only {count} operations were fuzzed; is the schema complete?"
    )
    assert not failures, "\n\n".join(failures)


async def test_with_auth_enabled_every_protected_operation_answers_401_without_credentials(
    settings: Settings, stop_lifespans: None
) -> None:
    app = create_app(
        settings.model_copy(update={"auth_enabled": True, "jwt_secret": SecretStr("t" * 40)})
    )

    def fuzz() -> tuple[int, list[str]]:
        return _fuzz_all(
            app, [no_server_error], max_examples=3, expect=_unauthorized, skip=PUBLIC,
        )  # fmt: skip

    count, failures = await asyncio.to_thread(fuzz)
    assert count > 40 or "FUZZ_ONLY" in os.environ, f"only {count} protected operations were fuzzed"
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("answer", ["raises", "returns 500"])
def test_the_fuzzer_reports_a_route_that_fails_with_a_server_error(
    answer: str, stop_lifespans: None
) -> None:
    """The harness itself must catch both kinds of 500: an exception escaping the route (the
    ASGI client re-raises it) and an explicit 500 response."""
    app = FastAPI()

    @app.get("/crash")
    async def crash(n: int) -> JSONResponse:
        if answer == "raises":
            raise RuntimeError(f"crashed on {n}")
        return JSONResponse({"detail": "boom", "status_code": 500}, status_code=500)

    (operation,) = _operations(_load_schema(app), set())
    report = _fuzz_operation(operation, GenerationMode.POSITIVE, [no_server_error], 5)
    assert report is not None and report.startswith("GET /crash [positive]"), report
    assert ("RuntimeError: crashed on" if answer == "raises" else "Server error") in report
