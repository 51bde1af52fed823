from collections.abc import Callable

import pytest
from typer.testing import CliRunner

from allcare.cli import app
from allcare.core.config import Settings
from tests.conftest import Api
from tests.photos import store_photo


@pytest.fixture
def run(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Callable[..., object]:
    monkeypatch.setenv("STORAGE_ROOT", str(settings.storage_root))
    monkeypatch.setenv("DATABASE_URL", settings.sqlalchemy_url)
    runner = CliRunner()

    def invoke(*args: str, stdin: str | None = None):
        return runner.invoke(app, list(args), input=stdin)

    return invoke


def test_user_lifecycle(run, api: Api) -> None:
    result = run(
        "users",
        "add",
        "dr_lee",
        "--role",
        "doctor",
        "--first-name",
        "Ann",
        "--last-name",
        "Lee",
        "--password-stdin",
        stdin="a-long-password\n",
    )
    assert result.exit_code == 0, result.output
    assert "Created dr_lee (doctor)" in result.output
    assert (
        api.client.post(
            "/auth/login", json={"username": "dr_lee", "password": "a-long-password"}
        ).status_code
        == 200
    )

    listed = run("users", "list")
    assert "dr_lee\tdoctor\tactive\tAnn Lee" in listed.output

    assert run("users", "set-role", "dr_lee", "admin").exit_code == 0
    assert (
        run(
            "users", "reset-password", "dr_lee", "--password-stdin", stdin="another-password\n"
        ).exit_code
        == 0
    )
    login = api.client.post(
        "/auth/login", json={"username": "dr_lee", "password": "another-password"}
    )
    assert login.json()["user"]["role"] == "admin"

    assert run("users", "disable", "dr_lee").exit_code == 0
    assert "disabled" in run("users", "list").output
    assert run("users", "enable", "dr_lee").exit_code == 0
    assert run("users", "delete", "dr_lee").exit_code == 0
    assert "dr_lee" not in run("users", "list").output


def test_password_prompt_hides_and_confirms(run) -> None:
    result = run("users", "add", "gp9", "--role", "gp", stdin="pw-secret-1\npw-secret-1\n")
    assert result.exit_code == 0, result.output
    assert "pw-secret-1" not in result.output


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (
            ["users", "add", "x", "--role", "nurse", "--password-stdin"],
            "long-enough-pw\n",
            "Unknown role",
        ),
        (
            ["users", "add", "bad id", "--role", "gp", "--password-stdin"],
            "long-enough-pw\n",
            "User id must be",
        ),
        (["users", "add", "x", "--role", "gp", "--password-stdin"], "short\n", "at least 8"),
        (["users", "add", "x", "--role", "gp", "--password-stdin"], "é" * 40 + "\n", "72 bytes"),
        (["users", "set-role", "nobody", "gp"], None, "not found"),
        (["users", "import", "/no/such/file.json"], None, "Cannot read users file"),
    ],
)
def test_clear_errors(run, args: list[str], stdin: str | None, message: str) -> None:
    result = run(*args, stdin=stdin)
    assert result.exit_code == 1
    assert message in result.output


def test_users_owning_patient_data_are_disabled_not_deleted(run, api: Api) -> None:
    api.add_user("gp1", "gp")
    store_photo(api.container, "gp1", None)
    result = run("users", "delete", "gp1")
    assert result.exit_code == 1
    assert "disable the account instead" in result.output
