"""Login throttling, the upload rate and the security headers, through the HTTP API."""

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.exc import TimeoutError as PoolTimeout

from allcare.core.config import Settings
from allcare.core.passwords import hash_password
from allcare.services.accounts import users as accounts
from allcare.store.models import AccessEvent, User
from tests.conftest import PASSWORD, Api, live_server
from tests.models import tiny_torchscript
from tests.uploads import camera, stored_counts, upload


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
    with api.container.db.session() as session:
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

    def verify(password: str, password_hash: str | None, legacy: bool = False) -> bool:
        checked_out.append(api.container.db.engine.pool.checkedout())
        return real_verify(password, password_hash, legacy)

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

    monkeypatch.setattr(api.container.db, "session", no_connection_free)
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
    with api.container.db.session() as session:
        clients = session.scalars(select(AccessEvent.client).order_by(AccessEvent.id)).all()
    assert clients == ["10.1.1.1", "10.1.1.1", "10.2.2.2", "10.1.1.1"]


def test_forwarded_headers_are_ignored_unless_the_proxy_is_trusted(api: Api) -> None:
    api.client.post(
        "/auth/login",
        json={"username": "x", "password": "y"},
        headers={"X-Forwarded-For": "1.2.3.4"},
    )
    with api.container.db.session() as session:
        assert session.scalars(select(AccessEvent.client)).all() == ["testclient"]


def add_costly_account(api: Api, user_id: str) -> None:
    """A production-cost bcrypt hash (a quarter second a check), so a burst really queues."""
    with api.container.db.session() as session:
        session.add(User(id=user_id, password_hash=hash_password(PASSWORD), role="gp"))
        session.commit()


def timed_login(url: str, username: str, password: str, address: str) -> tuple[int, float]:
    started = time.monotonic()
    response = httpx.post(
        f"{url}/auth/login",
        json={"username": username, "password": password},
        headers={"X-Forwarded-For": address},
        timeout=60,
    )
    return response.status_code, time.monotonic() - started


def test_a_parallel_burst_of_guesses_cannot_outrun_the_account_limit(
    make_api: Callable[..., Api], make_settings: Callable[..., Settings]
) -> None:
    """60 wrong guesses at once from 60 addresses: only LOGIN_MAX_FAILURES of them are checked;
    the right password sent while they are being checked is refused at once."""
    api = make_api(make_settings(login_max_failures=5, forwarded_allow_ips="127.0.0.1"))
    add_costly_account(api, "gp1")
    with live_server(api.client.app) as url, ThreadPoolExecutor(61) as pool:
        guesses = [
            pool.submit(timed_login, url, "gp1", f"guess-{n}", f"10.0.1.{n}") for n in range(60)
        ]
        time.sleep(0.3)  # the burst is admitted and queued for bcrypt
        status, seconds = timed_login(url, "gp1", PASSWORD, "10.0.9.9")
        outcomes = Counter(future.result()[0] for future in guesses)
    assert outcomes == {401: 5, 429: 55}
    assert status == 429
    assert seconds < 3.0  # not queued behind the 60 checks (7.5 s of bcrypt on two cores)


def test_a_burst_from_one_address_does_not_delay_a_login_from_another(
    make_api: Callable[..., Api], make_settings: Callable[..., Settings]
) -> None:
    """Password checks take turns between addresses: a GP's login waits for one turn, not for
    the whole queue that one address filled with bogus logins."""
    api = make_api(
        make_settings(login_max_failures_per_address=40, forwarded_allow_ips="127.0.0.1")
    )
    add_costly_account(api, "gp1")
    with live_server(api.client.app) as url, ThreadPoolExecutor(41) as pool:
        bogus = [
            pool.submit(timed_login, url, f"nobody{n}", "wrong-guess", "10.6.6.6")
            for n in range(40)
        ]
        time.sleep(0.3)
        status, seconds = timed_login(url, "gp1", PASSWORD, "10.0.0.7")
        slowest_bogus = max(future.result()[1] for future in bogus)
    assert status == 200
    assert seconds < 2.0, f"the GP waited {seconds:.1f} s behind the burst"
    assert slowest_bogus > 2 * seconds  # the burst really queued


def test_nobody_naming_a_gp_can_use_up_that_gps_uploads(
    make_api: Callable[..., Api], make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """Uploads with only X-User-Id prove nothing, so they are counted per client address and
    claimed user: someone else's flood never throttles the GP's own signed-in uploads, nor
    the GP's camera at its own address."""
    model = tiny_torchscript(tmp_path / "tiny.pt")
    api = make_api(
        make_settings(
            model_path=model,
            inference_runtime="torch",
            upload_rate_per_minute=3,
            forwarded_allow_ips="testclient",
        )
    )
    api.add_user("gp7", "gp")
    intruder = camera("gp7") | {"X-Forwarded-For": "10.9.9.9"}
    flood = [upload(api.client, intruder).status_code for _ in range(5)]
    assert flood == [200] * 3 + [429] * 2
    assert upload(api.client, api.headers("gp7")).status_code == 200
    own_camera = camera("gp7") | {"X-Forwarded-For": "10.0.0.7"}
    assert upload(api.client, own_camera).status_code == 200


def test_phones_sharing_an_account_all_log_in_at_once(
    make_api: Callable[..., Api], make_settings: Callable[..., Settings]
) -> None:
    """Attempts still being checked hold the next ones back rather than refuse them: twelve
    right logins of one account at once (more than LOGIN_MAX_FAILURES) all get in."""
    api = make_api(make_settings(login_max_failures=5, forwarded_allow_ips="127.0.0.1"))
    add_costly_account(api, "gp1")
    with live_server(api.client.app) as url, ThreadPoolExecutor(12) as pool:
        logins = [pool.submit(timed_login, url, "gp1", PASSWORD, f"10.0.2.{n}") for n in range(12)]
        assert [future.result()[0] for future in logins] == [200] * 12
