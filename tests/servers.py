"""``allcare serve`` as a real child process, for the tests that kill it or measure it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from allcare.container import open_store
from allcare.core.config import Settings
from allcare.store.db import Database
from tests.conftest import (
    ENCRYPTION_KEY,
    PASSWORD,
    TEST_JWT_SECRET,
    add_account,
    empty_postgres_database,
    stop_training_workers,
)
from tests.ports import free_port
from tests.s3_server import S3Server


@dataclass
class Server:
    """``allcare serve`` in a child process, started again on the same data after a kill."""

    env: dict[str, str]
    args: tuple[str, ...] = ()
    log: Path | None = None
    url: str = ""
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = self.env | {"BACKSERVER_HOST": "127.0.0.1", "BACKSERVER_PORT": str(port)}
        with self.log.open("ab") if self.log else open(os.devnull, "wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "allcare", "serve", *self.args], env=env, stderr=output
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the server exited during start-up"
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("the server did not become ready")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(timeout=30) == -signal.SIGKILL

    def stop(self) -> None:
        _terminate(self.process)

    def client(self, user_id: str) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=60)
        login = client.post("/auth/login", json={"username": user_id, "password": PASSWORD})
        client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        return client

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


def child_pids(parent: int, command_part: str = "") -> set[int]:
    """The live processes whose parent is ``parent`` and whose command line holds
    ``command_part`` (from /proc)."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent and fields[0] != "Z" and command_part in command:
            children.add(int(stat.parent.name))
    return children


def running(pid: int) -> bool:
    """The process exists and is not a zombie (an orphan's end may go unreaped here)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture
def make_server(settings: Settings) -> Iterator[Callable[..., Server]]:
    servers: list[Server] = []

    def build(model: Path, users: dict[str, str], **extra: str) -> Server:
        db, _ = open_store(settings)
        try:
            for user_id, role in users.items():
                add_account(db, user_id, role)
        finally:
            db.dispose()
        env = {
            **os.environ,
            "STORAGE_ROOT": str(settings.storage_root),
            "DATABASE_URL": settings.sqlalchemy_url,
            "JWT_SECRET_KEY": TEST_JWT_SECRET,
            "MODEL_PATH": str(model),
            "INFERENCE_RUNTIME": "torch",
            "UPLOAD_RATE_PER_MINUTE": "100000",
            "LOG_LEVEL": "warning",
            **extra,
        }
        servers.append(Server(env))
        return servers[-1]

    yield build
    for server in servers:
        server.stop()
    stop_training_workers(settings.storage_root)


@dataclass
class Worker:
    """``allcare worker`` in a child process (a training worker of the job system)."""

    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "allcare", "worker"],
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(timeout=30) == -signal.SIGKILL

    def stop(self) -> None:
        _terminate(self.process)


def _terminate(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def shared_database(postgres_server: str, accounts: dict[str, str]) -> Iterator[str]:
    """A new, migrated PostgreSQL database with these accounts, as replicas share one."""
    with empty_postgres_database(postgres_server) as url:
        db = Database(Settings(database_url=url).sqlalchemy_url)  # type: ignore[call-arg]
        try:
            db.migrate()
            for user_id, role in accounts.items():
                add_account(db, user_id, role)
        finally:
            db.dispose()
        yield url


def replica_environment(database_url: str, bucket_url: str, s3: S3Server) -> dict[str, str]:
    """What every process of one installation shares past one machine (docs/deployment.md):
    the database, the bucket and its credentials, the signing secret and the data key."""
    return {
        **os.environ,
        **s3.environment(),
        "DATABASE_URL": database_url,
        "BLOB_STORE_URL": bucket_url,
        "JWT_SECRET_KEY": TEST_JWT_SECRET,
        "ENCRYPT_STORAGE": "true",
        "DATA_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "INFERENCE_RUNTIME": "torch",
        "REGISTRY_POLL_SECONDS": "1",
        "UPLOAD_RATE_PER_MINUTE": "100000",
        "LOG_LEVEL": "warning",
    }
