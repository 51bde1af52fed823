"""The process a training run executes in (``python -m allcare.cli.training_worker VERSION``),
started the same way by the API's local supervisor and by a job-system worker, and what its
end says about the run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from allcare.core.config import Settings, settings_environment
from allcare.core.processes import die_with_parent


def worker_log(settings: Settings, version_id: str) -> Path:
    return settings.models_dir / version_id / "worker.log"


def start_worker_process(
    settings: Settings, version_id: str, *, dies_with_parent: bool = False
) -> subprocess.Popen[bytes]:
    """Output goes to the run's ``worker.log``. ``dies_with_parent``: the kernel kills the
    training process when its parent dies (a job-system worker is one unit: SIGKILL of
    ``allcare worker`` must stop its training too, or it would train unseen)."""
    logfile = worker_log(settings, version_id)
    logfile.parent.mkdir(parents=True, exist_ok=True)
    env = os.environ | settings_environment(settings)
    command = [sys.executable, "-m", "allcare.cli.training_worker", version_id]
    with logfile.open("ab") as output:
        return subprocess.Popen(  # noqa: S603 - our own module and a version id
            command,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent if dies_with_parent else None,
        )


def exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def log_tail(settings: Settings, version_id: str) -> str:
    """The worker's last line of output, for the failure reason an admin reads."""
    try:
        text = worker_log(settings, version_id).read_text(errors="replace")
    except OSError:
        return ""
    lines = [line for line in text.splitlines() if line.strip()]
    return f"; last output: {lines[-1][:300]}" if lines else ""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
