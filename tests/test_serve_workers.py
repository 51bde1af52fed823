"""``allcare serve --workers 2``: two server processes on one port, one STORAGE_ROOT (photos on
local disk) and one PostgreSQL behave as one server; uvicorn replaces a killed process, and a
killed parent takes its processes with it. SQLite refuses several processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import PASSWORD, TEST_JWT_SECRET
from tests.learning import mobilenet_checkpoint
from tests.photos import sharp_photo
from tests.servers import Server, child_pids, running, shared_database

UPLOADERS = 8
PHOTOS_EACH = 3
METRICS_TOKEN = "metrics-token-for-tests"
PROCESS = "spawn_main"  # how a multiprocessing spawn child's command line reads


def _processes(server: Server, count: int, timeout: float = 90) -> set[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = child_pids(server.pid, PROCESS)
        if len(pids) == count:
            return pids
        time.sleep(0.2)
    raise AssertionError(f"expected {count} server processes, found {child_pids(server.pid)}")


@pytest.fixture
def two_processes(postgres_server: str, tmp_path: Path) -> Iterator[Server]:
    accounts = {f"gp{n}": "gp" for n in range(UPLOADERS)} | {"doc1": "doctor", "admin1": "admin"}
    with shared_database(postgres_server, accounts) as url:
        server = Server(
            {
                **os.environ,
                "STORAGE_ROOT": str(tmp_path / "root"),
                "DATABASE_URL": url,
                "JWT_SECRET_KEY": TEST_JWT_SECRET,
                "MODEL_PATH": str(mobilenet_checkpoint(tmp_path / "nv.pt", "nv")),
                "INFERENCE_RUNTIME": "torch",
                "LOGIN_MAX_FAILURES": "3",
                "UPLOAD_RATE_PER_MINUTE": "100000",
                "METRICS_TOKEN": METRICS_TOKEN,
                "REGISTRY_POLL_SECONDS": "1",
                # Runs wait for an `allcare worker` (none here): the race is in the trigger.
                "TRAINING_QUEUE": "procrastinate",
                "RETRAIN_AUTO": "false",
                "LOG_LEVEL": "info",
            },
            args=("--workers", "2"),
            log=tmp_path / "server.log",
        )
        server.start()
        try:
            yield server
        finally:
            server.stop()


def _upload_all(server: Server) -> dict[str, bytes]:
    """Each GP, in its own thread and on new connections, sends photos into new cases."""
    sent: dict[str, bytes] = {}
    errors: list[str] = []
    lock = threading.Lock()

    def upload(n: int) -> None:
        client = server.client(f"gp{n}")
        try:
            for k in range(PHOTOS_EACH):
                photo = sharp_photo(seed=100 * n + k)
                case_id = client.post("/cases/next-id").json()["case_id"]
                checked = client.post(
                    "/check-image",
                    params={"case_id": case_id},
                    files={"file": ("p.jpg", photo, "image/jpeg")},
                    headers={"Connection": "close"},
                )
                if checked.status_code != 200:
                    errors.append(checked.text)
                    continue
                path = f"gp{n}/{checked.json()['image_id']}.jpg"
                saved = client.post("/cases", json={"case_id": case_id, "image_paths": [path]})
                if saved.status_code != 200:
                    errors.append(saved.text)
                with lock:
                    sent[f"{case_id} {path}"] = photo
        finally:
            client.close()

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(UPLOADERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return sent


def _health_requests_counted(server: Server) -> int:
    text = httpx.get(
        f"{server.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    ).text
    counts = re.findall(
        r'^allcare_http_request_duration_seconds_count\{[^}]*route="/health"[^}]*\} (\S+)$',
        text,
        re.MULTILINE,
    )
    return int(sum(float(count) for count in counts))


@pytest.mark.postgres
def test_two_processes_behave_as_one_server(two_processes: Server) -> None:
    server = two_processes
    first = _processes(server, 2)

    # Uploads from 8 clients on new connections: unique case ids, every photo served back.
    sent = _upload_all(server)
    case_ids = {key.split()[0] for key in sent}
    assert len(case_ids) == UPLOADERS * PHOTOS_EACH
    for key, photo in sent.items():
        served = httpx.get(f"{server.url}/images/{key.split()[1]}")
        assert served.status_code == 200
        assert served.content == photo
    listed = server.client("gp3").get("/cases").json()["cases"]
    assert len(listed) == PHOTOS_EACH
    assert server.log is not None  # the processes started together registered MODEL_PATH once
    assert server.log.read_text().count("registered as") == 1

    # Failed logins count across processes (each attempt on a new connection).
    for _ in range(3):
        wrong = httpx.post(f"{server.url}/auth/login", json={"username": "gp5", "password": "x"})
        assert wrong.status_code == 401
    for _ in range(4):
        right = httpx.post(
            f"{server.url}/auth/login", json={"username": "gp5", "password": PASSWORD}
        )
        assert right.status_code == 429

    # Eight admins' clicks at once, spread over both processes, start exactly one run.
    doctor = server.client("doc1")
    for key in list(sent)[:2]:
        labelled = doctor.post(f"/cases/{key.split()[0]}/label", json={"correct_label": "nv"})
        assert labelled.status_code == 200, labelled.text
    token = server.client("admin1").headers["Authorization"]
    answers: list[tuple[int, dict[str, object]]] = []
    barrier = threading.Barrier(UPLOADERS)

    def trigger() -> None:
        barrier.wait()
        answer = httpx.post(
            f"{server.url}/admin/retrain/trigger",
            json={"force": True},
            headers={"Authorization": token},
            timeout=60,
        )
        answers.append((answer.status_code, answer.json()))

    clicks = [threading.Thread(target=trigger) for _ in range(UPLOADERS)]
    for click in clicks:
        click.start()
    for click in clicks:
        click.join()
    assert {code for code, _ in answers} == {200}, answers
    assert sorted(str(a["status"]) for _, a in answers) == ["ok"] + ["skipped"] * (UPLOADERS - 1)
    assert len({a["version_id"] for _, a in answers}) == 1
    admin = server.client("admin1")
    assert admin.post("/admin/retrain/cancel").status_code == 200
    assert admin.get("/admin/retrain/status").json()["status"] != "training"

    # /metrics counts the requests of both processes, whichever answers the scrape.
    for _ in range(20):
        assert httpx.get(f"{server.url}/health").status_code == 200
    deadline = time.monotonic() + 10
    while _health_requests_counted(server) != 20 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _health_requests_counted(server) == 20

    # A killed process is replaced; the server answers meanwhile and afterwards.
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    assert httpx.get(f"{server.url}/health", timeout=30).status_code == 200
    replaced = _processes(server, 2)
    assert victim not in replaced
    for pid in replaced - first:
        _wait_for_log(server, "Application startup complete", pid)
    assert len(server.client("gp1").get("/cases").json()["cases"]) == PHOTOS_EACH

    # SIGKILL of the parent: its processes stop too (none goes on serving unseen).
    survivors = child_pids(server.pid, PROCESS)
    server.kill()
    deadline = time.monotonic() + 30
    while any(running(pid) for pid in survivors) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(running(pid) for pid in survivors)


def _wait_for_log(server: Server, message: str, pid: int) -> None:
    """Until process ``pid`` logged ``message`` (the log is JSON lines from every process)."""
    assert server.log is not None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        for line in server.log.read_text().splitlines():
            if message in line and f'"pid": {pid}' in line:
                return
        time.sleep(0.2)
    raise AssertionError(f"process {pid} did not log {message!r}")


def test_sqlite_refuses_several_processes(tmp_path: Path) -> None:
    env = os.environ | {"STORAGE_ROOT": str(tmp_path / "root"), "JWT_SECRET_KEY": TEST_JWT_SECRET}
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "allcare", "serve", "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "need PostgreSQL" in done.stderr
    assert "without --workers" in done.stderr
    assert not (tmp_path / "root" / "allcare.db").exists()  # refused before opening anything


@pytest.mark.parametrize("count", ["0", "65", "two"])
def test_a_process_count_out_of_range_is_refused(tmp_path: Path, count: str) -> None:
    env = os.environ | {"STORAGE_ROOT": str(tmp_path / "root")}
    done = subprocess.run(
        [sys.executable, "-m", "allcare", "serve", "--workers", count],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "--workers" in done.stderr
    assert not (tmp_path / "root").exists()  # refused before anything was opened
