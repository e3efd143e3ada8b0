"""Schemathesis against the service's own OpenAPI, the app served in-process (ASGI, lifespan and all).

Every operation gets generated requests (valid and invalid: negative mode), sent with a real API key
(admin scope, so every route is reachable). Checks: no 5xx, status codes and bodies match the schema,
content types match. Left out, with reasons: ``ignored_auth`` (drops the key on purpose),
``use_after_free`` (needs DELETE routes: none), ``positive_data_acceptance`` (a schema-valid body can still
be a bad check: no text and no image, an image that does not decode: a 4xx by design), and for multipart
bodies ``negative_data_rejection`` (multipart cannot carry the ``null`` or non-string values it generates).
CI mode sends at least 5,000 requests; ``BYLINECHECK_LONG_TESTS=1`` at least 15,000.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.schemas import APIOperation, BaseSchema
from schemathesis.specs.openapi.checks import (
    ignored_auth,
    negative_data_rejection,
    positive_data_acceptance,
    use_after_free,
)

from service.api import create_app
from service.config import Settings
from service.domain import Scope
from tests.fakes import FakeFaceDetector, FakeTextDetector

LONG = os.environ.get("BYLINECHECK_LONG_TESTS") == "1"
EXAMPLES = int(os.environ.get("BYLINECHECK_FUZZ_EXAMPLES", 1000 if LONG else 280))
MIN_REQUESTS = 15_000 if LONG else 5_000


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BaseSchema, str]]:
    """The schema of the app, served in-process (ASGI, with its lifespan): a third of HTTP's cost per request."""
    tmp: Path = tmp_path_factory.mktemp("schemafuzz")
    config = Settings(environment="test", database_url=f"sqlite:///{tmp / 'fuzz.sqlite3'}", bootstrap_api_key=False,
                      energy_backend="cpu-time", max_wait_s=0.0, queue_path=tmp / "queue.sqlite3",
                      rate_limit_per_minute=0, max_request_bytes=2_000_000, audit_dir=tmp / "audits")
    app = create_app(config, detectors={"text": FakeTextDetector(), "face": FakeFaceDetector()})
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)  # starts the lifespan
    try:
        yield schema, app.state.store.create_api_key("fuzz", [Scope.ADMIN, Scope.CHECK, Scope.AUDIT])
    finally:
        shutdown_lifespans()


def _fuzz(operation: APIOperation, mode: GenerationMode, token: str) -> int:
    """``EXAMPLES`` generated requests to one operation (fewer when its input space is small); returns how many.

    A request that failed is not counted if hypothesis replays it while shrinking (close enough)."""
    sent = 0
    auth = {"Authorization": f"Bearer {token}"}
    excluded = [ignored_auth, use_after_free, positive_data_acceptance]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        nonlocal sent
        response = case.call(headers=auth)
        sent += 1
        assert response.status_code < 500, (response.status_code, response.text[:500])
        multipart = case.media_type == "multipart/form-data"
        case.validate_response(response, excluded_checks=[*excluded, negative_data_rejection] if multipart else excluded)

    try:
        run()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise  # only negative mode has operations with nothing to break (no parameters, no body)
    return sent


def test_openapi_conformance(api_schema: tuple[BaseSchema, str]) -> None:
    """Every operation in both modes, one after the other (hypothesis and schemathesis are not thread-safe)."""
    schema, token = api_schema
    failures: list[str] = []
    total = pairs = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            pairs += 1
            try:
                total += _fuzz(operation, mode, token)
            except Exception as exc:  # noqa: BLE001 - every failing operation is reported, not only the first
                failures.append(f"{mode.value} {operation.method.upper()} {operation.path}: {exc}")
    print(f"schemathesis: {total} requests over {pairs} operation/mode pairs")
    assert not failures, "\n\n".join(failures)
    assert total >= MIN_REQUESTS
