"""Schemathesis against the service's own OpenAPI, over HTTP to a real uvicorn on 127.0.0.1.

Every operation gets generated requests (valid and invalid: negative mode), sent with a real API key
(admin scope, so every route is reachable). Checks: no 5xx, status codes and bodies match the schema,
content types match. CI mode sends at least 5,000 requests; ``BYLINECHECK_LONG_TESTS=1`` sends ~10x.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.schemas import APIOperation, BaseSchema
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance, use_after_free

from service.config import Settings
from service.domain import Scope
from service.store import Store
from tests.live import start_child

LONG = os.environ.get("BYLINECHECK_LONG_TESTS") == "1"
EXAMPLES = int(os.environ.get("BYLINECHECK_FUZZ_EXAMPLES", 3000 if LONG else 300))
MIN_REQUESTS = 50_000 if LONG else 5_000
SENT: dict[str, int] = {"requests": 0, "by_status_5xx": 0}


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A uvicorn child process (its own core: the fuzzer's generation does not share a GIL with it)."""
    tmp: Path = tmp_path_factory.mktemp("schemafuzz")
    env = {"BYLINECHECK_ENVIRONMENT": "test", "BYLINECHECK_DATABASE_URL": f"sqlite:///{tmp / 'fuzz.sqlite3'}",
           "BYLINECHECK_BOOTSTRAP_API_KEY": "false", "BYLINECHECK_ENERGY_BACKEND": "cpu-time",
           "BYLINECHECK_MAX_WAIT_S": "0", "BYLINECHECK_QUEUE_PATH": str(tmp / "queue.sqlite3"),
           "BYLINECHECK_RATE_LIMIT_PER_MINUTE": "0", "BYLINECHECK_MAX_REQUEST_BYTES": "2000000"}
    store = Store(env["BYLINECHECK_DATABASE_URL"], Settings().secret_key.get_secret_value())
    store.migrate()
    token = store.create_api_key("fuzz", [Scope.ADMIN, Scope.CHECK, Scope.AUDIT])
    store.close()
    server = start_child(env, tmp / "server.log")
    try:
        yield server.url, token
    finally:
        server.stop()
        log = (tmp / "server.log").read_text()
        # An unhandled error in a route (rendered as 500 by the one handler) or in uvicorn's ASGI call.
        assert "Exception in ASGI application" not in log, log[-3000:]
        assert "unhandled " not in log, log[-3000:]


@pytest.fixture(scope="module")
def api_schema(live_api: tuple[str, str]) -> BaseSchema:
    url, _ = live_api
    return schemathesis.openapi.from_url(f"{url}/openapi.json")


@pytest.fixture(scope="module")
def session(live_api: tuple[str, str]) -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.headers["Authorization"] = f"Bearer {live_api[1]}"
        yield s


def _fuzz(operation: APIOperation, mode: GenerationMode, session: requests.Session) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        response = case.call(session=session, timeout=30)
        SENT["requests"] += 1
        SENT["by_status_5xx"] += response.status_code >= 500
        # ignored_auth drops the key on purpose; use_after_free needs DELETE routes (there are none);
        # positive_data_acceptance: a schema-valid body can still be a bad check (no text and no image,
        # an image that does not decode), which is a 4xx by design.
        case.validate_response(response, excluded_checks=[ignored_auth, use_after_free, positive_data_acceptance])

    try:
        run()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise  # only negative mode has operations with nothing to break (no parameters, no body)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_openapi_conformance(api_schema: BaseSchema, session: requests.Session, mode: GenerationMode) -> None:
    """Every operation, ``EXAMPLES`` generated requests each (hypothesis may stop early on small spaces)."""
    for result in api_schema.get_all_operations():
        _fuzz(result.ok(), mode, session)


def test_fuzzed_enough_requests() -> None:
    """Runs after the parametrized test above (file order): the CI mode really sent >= 5,000 requests."""
    if SENT["requests"] == 0:
        pytest.skip("run together with test_openapi_conformance")
    print(f"schemathesis: {SENT['requests']} requests, {SENT['by_status_5xx']} 5xx")
    assert SENT["requests"] >= MIN_REQUESTS
    assert SENT["by_status_5xx"] == 0
