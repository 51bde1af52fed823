"""Shared by the benchmarks: the test photos, a real-size model file and timing helpers."""

from __future__ import annotations

import io
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

HAM = Path(__file__).resolve().parents[2] / "shared" / "data" / "ham10000-dev"
FULLRES = HAM / "fullres" / "images"


def photos() -> dict[str, bytes]:
    """A real 600x450 HAM10000 original, and the same photo as a 12 MP phone-sized JPEG."""
    source = sorted(FULLRES.glob("*.jpg"))[0] if FULLRES.exists() else None
    if source is None:
        raise SystemExit(f"{FULLRES} not found: the benchmarks use the ham10000-dev images")
    original = source.read_bytes()
    big = io.BytesIO()
    Image.open(source).resize((4032, 3024), Image.Resampling.BICUBIC).save(big, "JPEG", quality=90)
    return {"600x450": original, "4032x3024": big.getvalue()}


def model_file(folder: Path, architecture: str = "resnet50") -> Path:
    """A real-architecture checkpoint with random weights: real compute cost, no download."""
    path = folder / f"{architecture}.pt"
    if not path.exists():
        import torch

        from allcare.ml.architectures import build

        torch.manual_seed(0)
        module = build(architecture).eval()
        torch.save({"model_state_dict": module.state_dict(), "architecture": architecture}, path)
    return path


def add_account(env: dict[str, str], user: str, password: str, role: str = "gp") -> None:
    """An account made the way an administrator makes one (``allcare users add``)."""
    subprocess.run(
        [sys.executable, "-m", "allcare", "users", "add", user, "--role", role, "--password-stdin"],
        input=f"{password}\n".encode(),
        env=env,
        check=True,
        capture_output=True,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def time_ms(fn: Callable[[], object], repeat: int, warmup: int = 2) -> float:
    """Median wall time of one call, in milliseconds."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int | str = "self") -> tuple[float, float]:
    """(current, peak) resident memory of a process in MB, from /proc."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]
