"""deploy/allcare.service and deploy/allcare-worker.service: systemd accepts them, and the
server unit's command and environment start a server that answers and stops cleanly on
systemd's SIGTERM."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_JWT_SECRET
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "allcare.service"


def installed_unit(tmp_path: Path, source: Path = UNIT) -> Path:
    """The unit as installed from this checkout (the docs install it in /opt/allcare)."""
    unit = tmp_path / source.name
    unit.write_text(source.read_text().replace("/opt/allcare", str(ROOT)))
    return unit


def service_lines(unit: Path, key: str) -> list[str]:
    prefix = f"{key}="
    return [
        line[len(prefix) :] for line in unit.read_text().splitlines() if line.startswith(prefix)
    ]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not here")
@pytest.mark.parametrize("name", ["allcare.service", "allcare-worker.service"])
def test_systemd_accepts_the_unit(tmp_path: Path, name: str) -> None:
    checked = subprocess.run(
        ["systemd-analyze", "verify", str(installed_unit(tmp_path, UNIT.parent / name))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr.strip() == ""


def test_the_units_command_and_environment_serve_and_stop_on_sigterm(tmp_path: Path) -> None:
    unit = installed_unit(tmp_path)
    [command] = service_lines(unit, "ExecStart")
    environment = dict(line.split("=", 1) for line in service_lines(unit, "Environment"))
    assert environment["LOG_FORMAT"] == "json"
    assert environment["BACKSERVER_HOST"] == "127.0.0.1"  # behind the TLS proxy
    assert service_lines(unit, "UMask") == ["0077"]
    port = free_port()
    environment |= {
        "STORAGE_ROOT": str(tmp_path / "var-lib-allcare"),  # StateDirectory, here
        "BACKSERVER_PORT": str(port),
        "JWT_SECRET_KEY": TEST_JWT_SECRET,  # from /etc/allcare/allcare.env in production
        "PATH": "/usr/bin:/bin",
    }
    server = subprocess.Popen(
        command.split(), env=environment, cwd=ROOT, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, "the server exited during start-up"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not answer"
            time.sleep(0.3)
    finally:
        server.send_signal(signal.SIGTERM)
        _, logged = server.communicate(timeout=60)
    # uvicorn shuts down gracefully, then re-raises the signal: systemd counts that as a clean
    # stop (SIGTERM is a success status for a stopped unit).
    assert server.returncode in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in logged


def test_the_worker_unit_runs_the_command_the_job_tests_run() -> None:
    """tests/test_training_jobs.py starts `python -m allcare worker` with these settings."""
    unit = UNIT.parent / "allcare-worker.service"
    assert service_lines(unit, "ExecStart") == ["/opt/allcare/.venv/bin/allcare worker"]
    environment = dict(line.split("=", 1) for line in service_lines(unit, "Environment"))
    assert environment["TRAINING_QUEUE"] == "procrastinate"
    assert service_lines(unit, "UMask") == ["0077"]
