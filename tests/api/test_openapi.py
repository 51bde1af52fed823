"""The OpenAPI document says how to authenticate: /docs gets an Authorize button, each operation
shows whether it needs a token, the camera route its legacy header, keyed routes X-API-Key."""

from __future__ import annotations

from allcare.api.app import create_app
from allcare.core.config import Settings
from tests.conftest import TEST_JWT_SECRET

PUBLIC = {
    "/health",
    "/health/live",
    "/health/ready",
    "/auth/login",
    "/images/{user_id}/{file_name}",
}


def test_security_schemes_and_what_each_operation_needs() -> None:
    document = create_app(Settings(jwt_secret_key=TEST_JWT_SECRET)).openapi()
    schemes = document["components"]["securitySchemes"]
    assert schemes["BearerToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "The access_token of POST /auth/login: `Authorization: Bearer <token>`",
    }
    assert schemes["CameraUserId"]["in"] == "header"
    assert schemes["CameraUserId"]["name"] == "X-User-Id"
    operations = [
        (path, method, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]
    assert len(operations) > 30
    for path, method, operation in operations:
        headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
        if path in PUBLIC:
            assert "security" not in operation, (method, path)
            assert "X-API-Key" not in headers
        elif path == "/check-image":
            assert operation["security"] == [{"BearerToken": []}, {"CameraUserId": []}]
            assert "X-API-Key" in headers
        else:
            assert operation["security"] == [{"BearerToken": []}], (method, path)
            assert "X-API-Key" in headers, (method, path)


def test_each_operation_has_a_summary_a_description_and_only_its_own_error_statuses() -> None:
    """The fuzz test (tests/api/test_fuzz.py) checks that no answer has a status its operation
    does not list; this one that the lists are not one blanket list."""
    document = create_app(Settings(jwt_secret_key=TEST_JWT_SECRET)).openapi()
    assert "Authorization: Bearer" in document["info"]["description"]
    statuses: dict[tuple[str, str], set[int]] = {}
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            assert operation.get("summary"), (method, path)
            assert operation.get("description"), (method, path)
            codes = {int(code) for code in operation["responses"] if code != "200"}
            statuses[method, path] = codes
            if path in PUBLIC:
                assert 401 not in codes or path == "/auth/login", (method, path)
            else:
                assert 401 in codes, (method, path)
            if path.startswith("/admin"):
                assert 403 in codes, (method, path)
            if "requestBody" not in operation:
                assert 413 not in codes, (method, path)
            else:  # a body that is not JSON (or not multipart) answers 400
                assert {400, 413} <= codes, (method, path)
    assert statuses["post", "/check-image"] >= {400, 401, 403, 404, 413, 415, 422, 429, 503}
    assert statuses["post", "/auth/login"] == {400, 401, 413, 422, 429}
    assert statuses["post", "/cases/next-id"] == {401, 422}
    assert statuses["get", "/health/live"] == set()
    assert statuses["get", "/admin/models"] == {401, 403, 422}
    assert statuses["post", "/admin/models/{version_id}/promote"] >= {404, 409}
    assert len({frozenset(codes) for codes in statuses.values()}) > 8


def test_the_apps_main_calls_carry_examples() -> None:
    schemas = create_app(Settings(jwt_secret_key=TEST_JWT_SECRET)).openapi()["components"][
        "schemas"
    ]
    for name in ("LoginIn", "LoginOut", "CaseIdOut", "CheckImageOut", "CaseLogIn", "LabelIn"):
        [example] = schemas[name]["examples"]
        assert set(example) <= set(schemas[name]["properties"]), name
