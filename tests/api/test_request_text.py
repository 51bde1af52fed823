"""Request values never turn into a 500 or into a log line: lone surrogates in JSON, and
secrets in validation errors."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from allcare.core.logging import configure_logging
from tests.conftest import Api

LONE = b'{"username": "gp1", "password": "pw-\\ud800-pw", "case_id": "1\\udc00", "notes": "x"}'


def json_operations(api: Api) -> list[tuple[str, str]]:
    schema = api.client.get("/openapi.json").json()
    return [
        (method.upper(), path.replace("{case_id}", "10000").replace("{version_id}", "v1"))
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    ]


def test_a_lone_surrogate_is_422_on_every_json_route(api: Api) -> None:
    api.add_user("boss", "admin")
    admin = api.as_user("boss")
    operations = json_operations(api)
    assert len(operations) >= 14
    for method, path in operations:
        response = admin.request(
            method, path, content=LONE, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422, (method, path, response.text)
        [error] = response.json()["detail"]
        assert error["loc"] == ["body", "password"]
        assert error["input"] is None
        assert b"pw-" not in response.content


def test_raw_surrogate_bytes_are_refused_too(api: Api) -> None:
    body = b'{"username": "gp1", "password": "\xed\xa0\x80"}'
    response = api.client.post(
        "/auth/login", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422


def test_paired_surrogates_are_ordinary_text(api: Api) -> None:
    """An emoji escaped as a surrogate pair is one valid character."""
    api.add_user("gp1", "gp")
    gp = api.as_user("gp1")
    case_id = gp.post("/cases/next-id").json()["case_id"]
    body = json.dumps({"case_id": case_id, "notes": "seen \U0001f600"}).encode()
    assert b"\\ud83d\\ude00" in body
    response = gp.post("/cases", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert gp.get("/cases").json()["cases"][0]["notes"] == "seen \U0001f600"


@pytest.mark.parametrize(
    "body",
    [
        {"username": "gp1", "password": 12345678},
        {"username": "gp1", "password": ["hunter2-secret"]},
        {"password": "hunter2-secret"},
        {"username": ["x"], "password": "hunter2-secret"},
    ],
)
def test_a_422_never_echoes_a_password(api: Api, body: dict[str, object]) -> None:
    response = api.client.post("/auth/login", json=body)
    assert response.status_code == 422
    assert "hunter2" not in response.text
    assert "12345678" not in response.text


def test_logged_tracebacks_withhold_the_exception_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A message may quote request data (a value that failed to encode, a failed SQL
    statement's parameters); the log keeps the type and the lines only."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        configure_logging("info", "json")
        root.handlers[0].stream = sys.stderr
        secret = "hunter2-" + "secret"  # the source line a traceback shows holds no value
        try:
            raise ValueError(f"password={secret}")
        except ValueError:
            logging.getLogger("allcare.test").exception("Unhandled error on POST /auth/login")
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    logged = capsys.readouterr().err
    line = json.loads(logged.strip().splitlines()[-1])
    assert "hunter2" not in logged
    assert "builtins.ValueError (message withheld from the log)" in line["exc_info"]
    assert "test_logged_tracebacks_withhold_the_exception_message" in line["exc_info"]
