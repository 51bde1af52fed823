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
