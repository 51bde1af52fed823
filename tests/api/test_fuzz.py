"""Schemathesis against the app's own OpenAPI schema: every operation, bounded examples, sent as
each role and with no credentials; no 5xx, every answer as the schema documents it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks

from allcare.api.app import create_app
from allcare.core.config import Settings
from tests.conftest import TEST_JWT_SECRET, Api
from tests.models import tiny_torchscript
from tests.photos import sharp_photo
from tests.uploads import camera, upload

EXAMPLES = 20
ROLES = ("gp", "doctor", "admin")


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("fuzz")
    app = create_app(
        Settings(
            storage_root=root / "storage",
            jwt_secret_key=TEST_JWT_SECRET,
            model_path=tiny_torchscript(root / "tiny.pt"),
            inference_runtime="torch",
            upload_rate_per_minute=100_000,
            login_max_failures=1000,
            login_max_failures_per_address=100_000,
            retrain_auto=False,
        )
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        api = Api(client)
        for role in ROLES:
            api.add_user(role + "1", role)
        for _ in range(3):
            assert upload(client, camera("gp1"), sharp_photo()).status_code == 200
        yield api


@pytest.fixture(scope="module")
def role_headers(fuzzed: Api) -> dict[str, dict[str, str]]:
    headers = {role: fuzzed.headers(role + "1") for role in ROLES}
    return headers | {"anonymous": {}}


@pytest.fixture(scope="module")
def api_schema(fuzzed: Api) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed.client.app)
    # Credentials are the test's own (each role, and none): generated or "removed" security
    # headers would be replaced by them, so a negative case could only be undone, not refused.
    schema.config.generation.update(with_security_parameters=False)
    return schema


def _operations() -> list[str]:
    """Read from the app's schema at collection time (no container needed), one test each."""
    document = create_app(Settings(jwt_secret_key=TEST_JWT_SECRET)).openapi()
    return sorted(
        f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item
    )


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("label", _operations())
def test_no_server_error_and_no_schema_violation_for_any_role(
    label: str,
    mode: GenerationMode,
    api_schema: schemathesis.BaseSchema,
    role_headers: dict[str, dict[str, str]],
) -> None:
    operation = api_schema.find_operation_by_label(label)
    assert operation is not None

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def every_role_gets_a_documented_answer(case: schemathesis.Case) -> None:
        for headers in role_headers.values():
            # Schema-valid input may still name a case that does not exist or is not the
            # caller's: 401/403/404/409 are right answers there, not rejected valid data.
            case.call_and_validate(
                headers=headers, excluded_checks=[checks.positive_data_acceptance]
            )

    try:
        every_role_gets_a_documented_answer()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE
        pytest.skip("the operation takes no input, so no invalid input exists")
