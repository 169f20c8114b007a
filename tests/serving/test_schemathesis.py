"""Property-based API test: every route, hundreds of generated requests, no 5xx, no schema break.

Schemathesis generates requests from the service's own ``/openapi.json``
(valid and invalid ids, sizes, bodies) and checks each answer: no server
error, a documented status code and content type, and a body that matches the
documented schema. It is driven through its Python API with Hypothesis
directly (its pytest plugin does not support pytest 9 yet).
"""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from recsys.pipeline import train
from recsys.synth import generate_platform
from serving.app import create_app
from serving.settings import ServiceSettings

TOKEN = "schemathesis-token"
EXAMPLES_PER_OPERATION = 40


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    base = tmp_path_factory.mktemp("st")
    data = generate_platform(base / "data", scale="tiny", seed=4).out_dir
    artifact = train(data, base / "artifacts").path
    application = create_app(
        ServiceSettings(artifact=artifact, state_path=base / "state.sqlite", admin_token=TOKEN)
    )
    with TestClient(application):  # runs the lifespan: the artifact is loaded for every call
        yield application


def test_api_never_breaks(app) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    paths = {op.path for op in operations}
    assert {"/v1/users/{user_id}/recommendations", "/v1/admin/takedowns", "/metrics"} <= paths
    calls: dict[str, int] = {}

    def check(op) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"} if op.path.startswith("/v1/admin") else None

        @given(case=op.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case) -> None:
            case.call_and_validate(headers=headers)
            calls[op.label] = calls.get(op.label, 0) + 1

        run()

    for op in operations:
        check(op)
    total = sum(calls.values())
    assert total >= 300, calls  # "at least a few hundred cases", over every route
    assert len(calls) == len(operations)
