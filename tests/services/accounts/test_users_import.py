import json
from collections.abc import Callable
from pathlib import Path

import bcrypt
import pytest

from allcare.container import Container
from allcare.core.config import ConfigError, Settings
from allcare.services.accounts import users as accounts
from allcare.services.errors import InvalidInput
from tests.conftest import Api


def legacy_users_file(path: Path) -> Path:
    """The old server's users.json: bcrypt $2b$ cost 12 hashes, one user without a role."""
    hash_12 = bcrypt.hashpw(b"maya-password", bcrypt.gensalt(12)).decode()
    path.write_text(
        json.dumps(
            {
                "user001": {
                    "password_hash": hash_12,
                    "first_name": "Ali",
                    "last_name": "Khan",
                    "role": "gp",
                },
                "user002": {
                    "password_hash": hash_12,
                    "first_name": "Maya",
                    "last_name": "Patel",
                    "role": "doctor",
                },
                "user003": {
                    "password_hash": hash_12,
                    "first_name": "No",
                    "last_name": "Role",
                    "role": "",
                },
                "bad/id": {"password_hash": hash_12, "role": "gp"},
                "user004": {"password_hash": "plaintext", "role": "admin"},
            }
        )
    )
    return path


def test_users_file_is_imported_at_start_and_old_passwords_work(
    make_api: Callable[..., Api], make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    api = make_api(make_settings(users_file=legacy_users_file(tmp_path / "users.json")))
    login = api.client.post(
        "/auth/login", json={"username": "user002", "password": "maya-password"}
    )
    assert login.status_code == 200
    assert login.json()["user"] == {
        "user_id": "user002",
        "first_name": "Maya",
        "last_name": "Patel",
        "role": "doctor",
    }
    with api.container.db.session() as session:
        users = {u.id: u.role for u in accounts.list_users(session)}
    assert users == {"user001": "gp", "user002": "doctor", "user003": "gp"}


def test_import_never_overwrites_existing_accounts(api: Api, tmp_path: Path) -> None:
    api.add_user("user002", "gp")
    with api.container.db.session() as session:
        report = accounts.import_legacy_users(session, legacy_users_file(tmp_path / "u.json"))
        again = accounts.import_legacy_users(session, tmp_path / "u.json")
    assert report.added == ["user001", "user003"]
    assert report.kept_existing == ["user002"]
    assert report.defaulted_role == ["user003"]
    assert set(report.invalid) == {"bad/id", "user004"}
    assert again.added == []
    assert api.token("user002")  # the existing password still works
    with api.container.db.session() as session:
        assert session.get(accounts.User, "user002").role == "gp"


@pytest.mark.parametrize("content", ["not json", "[1, 2]"])
def test_unreadable_users_file_is_a_clear_error(api: Api, tmp_path: Path, content: str) -> None:
    path = tmp_path / "users.json"
    path.write_text(content)
    with (
        api.container.db.session() as session,
        pytest.raises(InvalidInput, match=r"(?i)users file"),
    ):
        accounts.import_legacy_users(session, path)


def test_missing_users_file_stops_start_up(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        Container.start(make_settings(users_file=tmp_path / "nope.json"))
