"""Login throttling, the upload rate and the security headers, through the HTTP API."""

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import TimeoutError as PoolTimeout

from allcare.core.config import Settings
from allcare.services import users as accounts
from allcare.store.models import AccessEvent
from tests.api.test_check_image import camera, stored_counts, upload
from tests.conftest import PASSWORD, Api
from tests.models import tiny_torchscript


def login(api: Api, username: str, password: str):
    return api.client.post("/auth/login", json={"username": username, "password": password})


def test_repeated_failures_lock_the_account_with_429_and_retry_after(
    make_api: Callable[..., Api], make_settings: Callable[..., Settings]
) -> None:
    api = make_api(make_settings(login_max_failures=3, login_failure_window_s=600))
    api.add_user("gp1", "gp")
    assert [login(api, "gp1", "wrong").status_code for _ in range(3)] == [401] * 3
    refused = login(api, "gp1", PASSWORD)  # the right password too: no oracle for the guesser
    assert refused.status_code == 429
    assert refused.json()["detail"].startswith("Too many failed login attempts")
    assert 1 <= int(refused.headers["Retry-After"]) <= 600
    with api.runtime.db.session() as session:
        outcomes = session.scalars(select(AccessEvent.outcome).order_by(AccessEvent.id)).all()
    assert outcomes[-1] == "throttled"


def test_a_successful_login_resets_the_account_count(
    make_api: Callable[..., Api], make_settings: Callable[..., Settings]
) -> None:
    api = make_api(make_settings(login_max_failures=3))
    api.add_user("gp1", "gp")
    for _ in range(5):
        assert login(api, "gp1", "wrong").status_code == 401
        assert login(api, "gp1", "wrong").status_code == 401
        assert login(api, "gp1", PASSWORD).status_code == 200


def test_one_address_trying_many_accounts_is_throttled(
    make_api: Callable[..., Api], make_settings: Callable[..., Settings]
) -> None:
    api = make_api(make_settings(login_max_failures_per_address=4))
    api.add_user("gp1", "gp")
    for n in range(4):
        assert login(api, f"guess{n}", "wrong").status_code == 401
    response = login(api, "gp1", PASSWORD)
    assert response.status_code == 429
    assert "Retry-After" in response.headers


def test_uploads_over_the_per_user_rate_are_429_and_store_nothing(
    make_api: Callable[..., Api], make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    model = tiny_torchscript(tmp_path / "tiny.pt")
    api = make_api(
        make_settings(model_path=model, inference_runtime="torch", upload_rate_per_minute=3)
    )
    api.add_user("gp1", "gp")
    api.add_user("gp2", "gp")
    statuses = [upload(api.client, camera("gp1")).status_code for _ in range(3)]
    assert statuses == [200] * 3
    before = stored_counts(api)
    refused = upload(api.client, camera("gp1"))
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert stored_counts(api) == before
    assert upload(api.client, camera("gp2")).status_code == 200  # the limit is per user


@pytest.mark.parametrize("path", ["/health", "/cases", "/no-such-route"])
def test_every_answer_carries_the_security_headers(api: Api, path: str) -> None:
    headers = api.client.get(path).headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert headers["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in headers  # plain HTTP: HSTS would be ignored


def test_docs_keep_a_policy_that_lets_them_load(api: Api) -> None:
    response = api.client.get("/docs")
    assert response.status_code == 200
    assert "Content-Security-Policy" not in response.headers
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_docs_and_schema_can_be_turned_off(
    make_api: Callable[..., Api], make_settings: Callable[..., Settings]
) -> None:
    api = make_api(make_settings(enable_docs=False))
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert api.client.get(path).status_code == 404


def test_a_login_holds_no_database_connection_while_bcrypt_runs(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many clinics logging in at once must not exhaust the pool (found by bench/load.py)."""
    api.add_user("gp1", "gp")
    checked_out: list[int] = []
    real_verify = accounts.verify_password

    def verify(password: str, password_hash: str | None) -> bool:
        checked_out.append(api.runtime.db.engine.pool.checkedout())
        return real_verify(password, password_hash)

    monkeypatch.setattr(accounts, "verify_password", verify)
    assert login(api, "gp1", PASSWORD).status_code == 200
    assert checked_out == [0]


def test_an_exhausted_connection_pool_is_503_with_retry_after(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.add_user("gp1", "gp")
    gp = api.as_user("gp1")

    def no_connection_free() -> None:
        raise PoolTimeout("QueuePool limit reached")

    monkeypatch.setattr(api.runtime.db, "session", no_connection_free)
    response = gp.get("/cases")
    assert response.status_code == 503
    assert response.json() == {"detail": "The server is busy; retry shortly"}
    assert response.headers["Retry-After"] == "1"


def test_behind_a_trusted_proxy_the_client_address_is_the_forwarded_one(
    make_api: Callable[..., Api], make_settings: Callable[..., Settings]
) -> None:
    api = make_api(
        make_settings(forwarded_allow_ips="testclient", login_max_failures_per_address=2)
    )
    for address in ("10.1.1.1", "10.1.1.1", "10.2.2.2"):
        forwarded = {"X-Forwarded-For": address}
        response = api.client.post(
            "/auth/login", json={"username": "x", "password": "y"}, headers=forwarded
        )
        assert response.status_code == 401
    blocked = api.client.post(
        "/auth/login",
        json={"username": "z", "password": "y"},
        headers={"X-Forwarded-For": "10.1.1.1"},
    )
    assert blocked.status_code == 429  # one clinic's address, not the proxy's, is throttled
    with api.runtime.db.session() as session:
        clients = session.scalars(select(AccessEvent.client).order_by(AccessEvent.id)).all()
    assert clients == ["10.1.1.1", "10.1.1.1", "10.2.2.2", "10.1.1.1"]


def test_forwarded_headers_are_ignored_unless_the_proxy_is_trusted(api: Api) -> None:
    api.client.post(
        "/auth/login",
        json={"username": "x", "password": "y"},
        headers={"X-Forwarded-For": "1.2.3.4"},
    )
    with api.runtime.db.session() as session:
        assert session.scalars(select(AccessEvent.client)).all() == ["testclient"]
