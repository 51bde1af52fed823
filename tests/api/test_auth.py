import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import bcrypt
import jwt
import pytest

from allcare.core.config import Settings
from allcare.core.tokens import TokenCodec
from allcare.services.accounts import users as accounts
from allcare.store.models import User
from tests.conftest import PASSWORD, TEST_JWT_SECRET, Api


def test_login_returns_token_and_user_exactly_as_the_app_reads_them(api: Api) -> None:
    api.add_user("user002", "doctor")
    response = api.client.post("/auth/login", json={"username": "user002", "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["user"] == {
        "user_id": "user002",
        "first_name": "User002",
        "last_name": "Tester",
        "role": "doctor",
    }
    claims = jwt.decode(body["access_token"], TEST_JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "user002"
    assert claims["role"] == "doctor"
    assert claims["exp"] - claims["iat"] == 24 * 3600
    assert {"first_name", "last_name", "cv"} <= claims.keys()


@pytest.mark.parametrize(
    ("username", "password"),
    [("user002", "wrong-password"), ("nobody", PASSWORD), ("../etc", PASSWORD), ("", "")],
)
def test_bad_credentials_are_401(api: Api, username: str, password: str) -> None:
    api.add_user("user002", "doctor")
    response = api.client.post("/auth/login", json={"username": username, "password": password})
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid username or password"}


def test_disabled_user_cannot_log_in(api: Api) -> None:
    api.add_user("gone", "gp", disabled=True)
    response = api.client.post("/auth/login", json={"username": "gone", "password": PASSWORD})
    assert response.status_code == 401


@pytest.mark.parametrize(
    "body", [{"username": "x"}, {"password": "x"}, {"username": 1, "password": "x"}]
)
def test_login_validation_is_422_json(api: Api, body: dict[str, object]) -> None:
    response = api.client.post("/auth/login", json=body)
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)


def test_every_case_route_needs_a_token(api: Api) -> None:
    for method, path in [
        ("POST", "/cases/next-id"),
        ("GET", "/cases"),
        ("POST", "/cases"),
        ("PUT", "/cases/10000"),
        ("POST", "/cases/reject"),
        ("POST", "/cases/uncertain"),
        ("POST", "/cases/release-id"),
    ]:
        response = api.client.request(method, path, json={})
        assert response.status_code == 401, (method, path)
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        ("Bearer", "Invalid Authorization header format. Expected: Bearer <token>"),
        ("Bearer a b", "Invalid Authorization header format. Expected: Bearer <token>"),
        ("Basic abc", "Invalid Authorization header format. Expected: Bearer <token>"),
        ("Bearer not-a-jwt", "Invalid token"),
    ],
)
def test_malformed_authorization_is_401(api: Api, header: str, detail: str) -> None:
    response = api.client.get("/cases", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json() == {"detail": detail}


def test_expired_and_foreign_tokens_are_refused(api: Api) -> None:
    api.add_user("u1", "gp")
    expired = TokenCodec(TEST_JWT_SECRET, "HS256", timedelta(seconds=-10)).issue(
        subject="u1", role="gp", first_name="", last_name="", credentials_version=0
    )
    response = api.client.get("/cases", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert response.json() == {"detail": "Token has expired"}
    forged = TokenCodec("another-secret-" + "y" * 40, "HS256", timedelta(hours=1)).issue(
        subject="u1", role="admin", first_name="", last_name="", credentials_version=0
    )
    response = api.client.get("/cases", headers={"Authorization": f"Bearer {forged}"})
    assert response.json() == {"detail": "Invalid token"}


def test_role_comes_from_the_database_not_the_token(api: Api) -> None:
    """A token minted with role admin for a GP gives GP rights only."""
    api.add_user("gp1", "gp")
    api.add_user("gp2", "gp")
    other = api.as_user("gp2")
    case_id = other.post("/cases/next-id").json()["case_id"]
    assert other.post("/cases", json={"case_id": case_id, "status": "Confirmed"}).status_code == 200
    with api.container.db.session() as session:
        version = accounts.credentials_version(session.get(accounts.User, "gp1"))
    claims_admin = api.container.tokens.issue(
        subject="gp1", role="admin", first_name="", last_name="", credentials_version=version
    )
    response = api.client.get("/cases", headers={"Authorization": f"Bearer {claims_admin}"})
    assert response.status_code == 200
    assert response.json()["cases"] == []


def test_disabling_deleting_or_changing_credentials_ends_existing_tokens(api: Api) -> None:
    api.add_user("d1", "doctor")
    headers = api.headers("d1")
    assert api.client.get("/cases", headers=headers).status_code == 200
    with api.container.db.session() as session:
        accounts.set_disabled(session, "d1", True)
    response = api.client.get("/cases", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": "Account is disabled or no longer exists"}

    api.add_user("d2", "doctor")
    headers = api.headers("d2")
    with api.container.db.session() as session:
        accounts.reset_password(session, "d2", "a-new-password")
    response = api.client.get("/cases", headers=headers)
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]
    login = api.client.post("/auth/login", json={"username": "d2", "password": "a-new-password"})
    assert login.status_code == 200


def test_api_key_guards_everything_but_health_login_and_images(
    make_api: Callable[..., Api], make_settings: Callable[..., Settings]
) -> None:
    api = make_api(make_settings(api_key="clinic-key"))
    api.add_user("u1", "gp")
    token = api.token("u1")
    assert api.client.get("/health").status_code == 200
    refused = api.client.get("/cases", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401
    assert refused.json() == {"detail": "Invalid API key"}
    wrong = api.client.get(
        "/cases", headers={"Authorization": f"Bearer {token}", "X-API-Key": "nope"}
    )
    assert wrong.status_code == 401
    ok = api.client.get(
        "/cases", headers={"Authorization": f"Bearer {token}", "X-API-Key": "clinic-key"}
    )
    assert ok.status_code == 200
    image = api.client.get("/images/u1/6ccf0c39-a6c9-4841-8da9-fef5d65985fd.jpg")
    assert image.status_code == 404


def test_cors_follows_allowed_origins(
    make_api: Callable[..., Api], make_settings: Callable[..., Settings]
) -> None:
    api = make_api(make_settings(allowed_origins="https://clinic.example"))
    preflight = {"Access-Control-Request-Method": "GET"}
    allowed = api.client.options(
        "/cases", headers={"Origin": "https://clinic.example", **preflight}
    )
    assert allowed.headers["access-control-allow-origin"] == "https://clinic.example"
    other = api.client.options("/cases", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in other.headers


def test_a_suffix_after_bcrypts_72_bytes_does_not_log_in(api: Api) -> None:
    """bcrypt reads 72 bytes; a password set here is at most that long, so anything longer
    is wrong, not truncated into the right one."""
    password = "p" * 72
    with api.container.db.session() as session:
        accounts.create_user(session, "gp1", password, "gp")
    assert login(api, "gp1", password).status_code == 200
    assert login(api, "gp1", password + "anything").status_code == 401


def test_a_legacy_hash_keeps_the_old_servers_truncation(api: Api, tmp_path: Path) -> None:
    """The old server's bcrypt hashed only the first 72 bytes of a longer password; its users
    type the whole password and must still get in, until they set a new one here."""
    password = "q" * 72 + "-typed-in-full"
    legacy_hash = bcrypt.hashpw(password.encode()[:72], bcrypt.gensalt(4)).decode()
    users_file = tmp_path / "users.json"
    users_file.write_text(
        json.dumps({"old1": {"password_hash": legacy_hash, "role": "gp"}}), encoding="utf-8"
    )
    with api.container.db.session() as session:
        accounts.import_legacy_users(session, users_file)
    assert login(api, "old1", password).status_code == 200
    with api.container.db.session() as session:
        accounts.reset_password(session, "old1", "a-new-password")
    assert login(api, "old1", "a-new-password").status_code == 200
    with api.container.db.session() as session:
        assert not session.get(User, "old1").legacy_password  # type: ignore[union-attr]


def login(api: Api, username: str, password: str):
    return api.client.post("/auth/login", json={"username": username, "password": password})
