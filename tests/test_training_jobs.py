"""Training on the job system (TRAINING_QUEUE=procrastinate): a run triggered on replica A is
executed by an ``allcare worker`` process, its progress read on replica B, promoted there, and
served by both; a worker SIGKILLed mid-run leaves its run failed within the heartbeat timeout,
never stuck; a run cancelled on B stops on the worker; the next run works. PostgreSQL and a real
S3 server (SeaweedFS)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.learning import TRAINING, labelled_cases, mobilenet_checkpoint, wait_for_run
from tests.s3_server import S3Server
from tests.servers import Server, Worker, replica_environment, shared_database

pytestmark = [pytest.mark.postgres, pytest.mark.s3]

HEARTBEAT_TIMEOUT_S = 10
METRICS_TOKEN = "metrics-token-for-the-job-test"


@dataclass(frozen=True)
class Cluster:
    a: Server
    b: Server
    worker: Worker


@pytest.fixture
def cluster(
    postgres_server: str, bucket_url: str, s3_environment: S3Server, tmp_path: Path
) -> Iterator[Cluster]:
    accounts = {"gp1": "gp", "doc1": "doctor", "admin1": "admin"}
    with shared_database(postgres_server, accounts) as url:
        common = replica_environment(url, bucket_url, s3_environment) | {
            "TRAINING_QUEUE": "procrastinate",
            "TRAINING_HEARTBEAT_TIMEOUT_S": str(HEARTBEAT_TIMEOUT_S),
            "TRAINING_THREADS": "1",
            "RETRAIN_MIN_STEPS": "0",  # a run is its epochs: short ones end fast, long ones last
            "RETRAIN_AUTO": "false",
            "METRICS_TOKEN": METRICS_TOKEN,
        }
        a = Server(
            common
            | {
                "STORAGE_ROOT": str(tmp_path / "a"),
                "MODEL_PATH": str(mobilenet_checkpoint(tmp_path / "nv.pt", "nv")),
            }
        )
        b = Server(common | {"STORAGE_ROOT": str(tmp_path / "b")})
        worker = Worker(
            common | {"STORAGE_ROOT": str(tmp_path / "worker"), "LOG_LEVEL": "info"},
            tmp_path / "worker.log",
        )
        a.start()
        b.start()
        worker.start()
        try:
            yield Cluster(a, b, worker)
        finally:
            worker.stop()
            a.stop()
            b.stop()


def test_runs_go_to_the_worker_and_a_lost_worker_never_leaves_one_stuck(
    cluster: Cluster,
) -> None:
    a, b = cluster.a, cluster.b
    admin_a, admin_b = a.client("admin1"), b.client("admin1")
    gp, doctor = a.client("gp1"), a.client("doc1")
    assert admin_a.post("/admin/training-config", json=TRAINING | {"epochs": 2}).status_code == 200
    labelled_cases(
        httpx.Client(base_url=a.url, timeout=60), gp, doctor, "gp1", 0.2, train_per_class=2
    )
    ready = b.client("gp1").get("/health/ready").json()["jobs"]
    assert ready["backend"] == "procrastinate"
    assert ready["ok"] is True

    # Triggered on A, executed by the worker, followed on B, promoted on B, served by both.
    first = admin_a.post("/admin/retrain/trigger", json={"force": True})
    assert first.status_code == 200, first.text
    version = first.json()["version_id"]
    seen = wait_for_run(admin_b, timeout=300)
    assert seen.get("version_id") in (None, version)
    entry = _model(admin_b, version)
    assert entry["status"] not in ("training", "failed"), entry
    assert "worker" not in str(entry.get("error") or "")
    promoted = admin_b.post(f"/admin/models/{version}/promote", json={"reason": "worker run"})
    assert promoted.status_code == 200, promoted.text
    for server in (a, b):
        _wait_for_model(server, version)
    metrics = httpx.get(
        f"{a.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    ).text
    assert "allcare_training_workers 1.0" in metrics
    assert "allcare_training_jobs_queued 0.0" in metrics

    # SIGKILL the worker mid-run: the run is failed within the heartbeat timeout, not stuck.
    assert admin_a.post("/admin/training-config", json=TRAINING | {"epochs": 60}).status_code == 200
    second = admin_a.post("/admin/retrain/trigger", json={"force": True}).json()["version_id"]
    _wait_for_phase(admin_b, "training")
    cluster.worker.kill()
    killed_at = time.monotonic()
    while _model(admin_b, second)["status"] == "training":
        assert time.monotonic() - killed_at < HEARTBEAT_TIMEOUT_S + 30, "the run stayed stuck"
        time.sleep(0.5)
    lost = _model(admin_b, second)
    assert lost["status"] == "failed"
    assert "heartbeat" in str(lost["error"])

    # A new worker closes the lost job; a run cancelled on B stops on the worker.
    cluster.worker.start()
    third = admin_b.post("/admin/retrain/trigger", json={"force": True}).json()["version_id"]
    _wait_for_phase(admin_a, "training")
    cancelled = admin_b.post("/admin/retrain/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["version_id"] == third
    wait_for_run(admin_a, timeout=120)
    stopped = _model(admin_a, third)
    assert stopped["status"] == "failed"
    assert "cancelled by admin1" in str(stopped["error"])

    # The next run works.
    assert admin_a.post("/admin/training-config", json=TRAINING | {"epochs": 2}).status_code == 200
    fourth = admin_b.post("/admin/retrain/trigger", json={"force": True})
    assert fourth.status_code == 200, fourth.text
    wait_for_run(admin_a, timeout=300)
    assert _model(admin_a, fourth.json()["version_id"])["status"] not in ("training", "failed")


def _wait_for_phase(admin: httpx.Client, phase: str, within_s: float = 300) -> None:
    deadline = time.monotonic() + within_s
    while (status := _status(admin)).get("phase") != phase:
        assert time.monotonic() < deadline, f"the run never reached {phase}: {status}"
        time.sleep(0.2)


def _status(admin: httpx.Client) -> dict[str, object]:
    status: dict[str, object] = admin.get("/admin/retrain/status").json()["retrain_status"]
    return status


def _model(admin: httpx.Client, version: str) -> dict[str, object]:
    models = admin.get("/admin/models").json()["models"]
    found: dict[str, object] = {m["version_id"]: m for m in models}[version]
    return found


def _wait_for_model(server: Server, version: str, within_s: float = 15) -> None:
    deadline = time.monotonic() + within_s
    while httpx.get(f"{server.url}/health").json()["model"]["version"] != version:
        assert time.monotonic() < deadline, f"{server.url} does not serve {version}"
        time.sleep(0.2)
