"""Fixtures: a real app on SQLite and on PostgreSQL, real users, real tokens."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import bcrypt
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from allcare.api.app import create_app
from allcare.api.server import uvicorn_config
from allcare.core.config import Settings
from allcare.store.db import Database
from allcare.store.models import User
from tests.ports import free_port
from tests.postgres_server import temporary_cluster
from tests.s3_server import S3Server, temporary_s3

PASSWORD = "correct-horse-1"
# A real bcrypt hash at low cost: fast tests, the same verification path as production hashes.
_FAST_HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
TEST_JWT_SECRET = "test-secret-" + "x" * 40
ENCRYPTION_KEY = "q1bYBCpY7l2SEqSDcLYtKtpi7lrvSUPkwwGtbkTqq4k="


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    external = os.environ.get("ALLCARE_TEST_POSTGRES_URL")
    if external:
        yield external
        return
    try:
        with temporary_cluster() as url:
            yield url
    except (RuntimeError, OSError) as exc:
        if os.environ.get("ALLCARE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required but could not be started: {exc}")
        pytest.skip(f"PostgreSQL not available: {exc}")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A real S3-compatible server (SeaweedFS) for the session; each test uses its own prefix."""
    try:
        with temporary_s3() as server:
            yield server
    except (RuntimeError, OSError) as exc:
        if os.environ.get("ALLCARE_REQUIRE_S3") == "1":
            pytest.fail(f"SeaweedFS is required but could not be started: {exc}")
        pytest.skip(f"S3 server not available: {exc}")


@pytest.fixture
def s3_environment(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """Credentials where boto3 looks for them (the environment), as an operator sets them."""
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    return s3_server


@pytest.fixture
def bucket_url(s3_environment: S3Server) -> str:
    """``BLOB_STORE_URL`` for this test: the session's bucket under a prefix of its own."""
    return f"s3://{s3_environment.bucket}/t{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test gets an empty database of its own on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'storage' / 'allcare.db'}"
        return
    with empty_postgres_database(request.getfixturevalue("postgres_server")) as url:
        yield url


@contextmanager
def empty_postgres_database(server_url: str) -> Iterator[str]:
    """A new database on the test server, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def make_settings(tmp_path: Path, database_url: str) -> Callable[..., Settings]:
    def build(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "storage_root": tmp_path / "storage",
            "database_url": database_url,
            "jwt_secret_key": TEST_JWT_SECRET,
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    return build


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


def add_account(db: Database, user_id: str, role: str, *, disabled: bool = False) -> str:
    """An account whose password is PASSWORD."""
    with db.session() as session:
        session.add(
            User(
                id=user_id,
                password_hash=_FAST_HASH,
                role=role,
                first_name=user_id.title(),
                last_name="Tester",
                disabled=disabled,
            )
        )
        session.commit()
    return user_id


class Api:
    """A running app plus helpers to create users and act as them."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.container = client.app.state.container  # type: ignore[attr-defined]

    def add_user(self, user_id: str, role: str, *, disabled: bool = False) -> str:
        return add_account(self.container.db, user_id, role, disabled=disabled)

    def token(self, user_id: str, password: str = PASSWORD) -> str:
        response = self.client.post("/auth/login", json={"username": user_id, "password": password})
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def headers(self, user_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user_id)}"}

    def as_user(self, user_id: str) -> TestClient:
        """A client that sends this user's token on every request."""
        client = TestClient(self.client.app)
        client.headers.update(self.headers(user_id))
        return client


@pytest.fixture
def make_api(settings: Settings) -> Iterator[Callable[..., Api]]:
    clients: list[TestClient] = []

    def start(custom: Settings | None = None) -> Api:
        client = TestClient(create_app(custom or settings), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return Api(client)

    yield start
    for client in clients:
        client.__exit__(None, None, None)
    stop_training_workers(settings.storage_root)


def stop_training_workers(storage_root: Path) -> None:
    """Training workers outlive their server by design (a restart picks them up again); a test's
    must not outlive the test and eat the CPU of the next ones."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes()
            environment = (proc / "environ").read_bytes()
        except OSError:
            continue
        marker = f"STORAGE_ROOT={storage_root}".encode()
        if b"allcare.cli.training_worker" in command and marker in environment.split(b"\0"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api()


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings come from each test, never from the machine's environment."""
    for name in [*Settings.model_fields, "storage_dir"]:
        monkeypatch.delenv(name.upper(), raising=False)


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """Serve an app whose container is already started (by its TestClient) on a real socket."""
    port = free_port()
    settings = app.state.container.settings
    config = uvicorn_config(
        app, settings, host="127.0.0.1", port=port, lifespan="off", log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# The fixture lives with the helper it builds; importing it here makes it every test's.
from tests.servers import make_server  # noqa: E402, F401
