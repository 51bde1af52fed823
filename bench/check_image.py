"""End-to-end POST /check-image: p50/p95 latency and throughput at concurrency 1, 4 and 16 for a
600x450 and a 4032x3024 photo, compared with the raw pipeline measured in the same run, and the
server's memory against the model runtime's.

    .venv/bin/python bench/check_image.py                # starts its own server (resnet50)
    .venv/bin/python bench/check_image.py --url http://host:8000 --user user001

The camera flow is measured: legacy X-User-Id identity, photo stored with a new case. This
machine's speed drifts by up to 10 % within minutes, as much as the margins measured, so the raw
pipeline is measured again between the levels (each ratio uses the measurements just before and
after its level) and every level runs in several rounds; the table gives medians and ranges.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _common import add_account, cpu_seconds, free_port, model_file, photos, rss_mb
from raw_model import PipelinePoint, RawPipeline, load_runner, measure

CONCURRENCY = (1, 4, 16)
RAW_REPEAT = 20
PYTHON = sys.executable


def start_server(model: Path, storage: Path, user: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "STORAGE_ROOT": str(storage),
        "MODEL_PATH": str(model),
        "BACKSERVER_HOST": "127.0.0.1",
        "BACKSERVER_PORT": str(port),
        "LOG_LEVEL": "warning",
        "UPLOAD_RATE_PER_MINUTE": "100000",  # one user stands in for many clinics
    }
    add_account(env, user, "bench-password-1")
    server = subprocess.Popen([PYTHON, "-m", "allcare", "serve"], env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).json()["model"]["loaded"]:
                return server, url
        except (httpx.HTTPError, KeyError):
            time.sleep(0.5)
    server.kill()
    raise SystemExit("server did not become ready")


def model_runtime_peak_mb(model: Path, storage: Path) -> float:
    """Peak memory of a process that only loads the model the way the server does."""
    code = (
        "import sys; sys.path.insert(0, 'bench');"
        "import numpy as np;"
        "from _common import rss_mb;"
        "from allcare.core.config import Settings;"
        "from allcare.ml.loading import load_model;"
        "from allcare.services.models.options import model_options;"
        "settings = Settings(); model = load_model(settings.model_path, model_options(settings));"
        "batch = np.zeros((settings.batch_max_size, 3, 224, 224), np.float32);"
        "model.runner.run(batch); print(rss_mb()[1])"
    )
    env = {**os.environ, "MODEL_PATH": str(model), "STORAGE_ROOT": str(storage)}
    out = subprocess.run([PYTHON, "-c", code], env=env, check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def prepared_request(url: str, user: str, photo: bytes) -> bytes:
    """The whole upload, encoded once: the benchmark measures the server, not the client."""
    upload = httpx.Request(
        "POST", "http://bench/", files={"file": ("photo.jpg", photo, "image/jpeg")}
    )
    body = upload.read()
    head = (
        f"POST /check-image HTTP/1.1\r\nHost: {urlsplit(url).netloc}\r\n"
        f"Content-Type: {upload.headers['content-type']}\r\nContent-Length: {len(body)}\r\n"
        f"X-User-Id: {user}\r\nX-User-Role: gp\r\n\r\n"
    )
    return head.encode() + body


class Connection:
    """One keep-alive HTTP/1.1 connection replaying a prepared request. The client shares the
    server's cores, and httpx spends about 2 ms of CPU a request; this spends a tenth of that."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    @classmethod
    async def open(cls, url: str) -> Connection:
        parts = urlsplit(url)
        return cls(*await asyncio.open_connection(parts.hostname, parts.port))

    async def send(self, request: bytes) -> tuple[int, bytes]:
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
        body = await self._reader.readexactly(int(headers["content-length"]))
        return int(lines[0].split()[1]), body

    def close(self) -> None:
        self._writer.close()


async def run_level(
    url: str, user: str, photo: bytes, concurrency: int, total: int, server_pid: int | None = None
) -> dict:
    latencies: list[float] = []
    completed: list[float] = []
    errors = 0
    remaining = total
    request = prepared_request(url, user, photo)
    connections = [await Connection.open(url) for _ in range(concurrency)]

    async def client(connection: Connection) -> None:
        nonlocal errors, remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            status, body = await connection.send(request)
            completed.append(time.perf_counter())
            latencies.append((completed[-1] - started) * 1000)
            if status != 200 or json.loads(body)["status"] != "success":
                errors += 1

    server_before = cpu_seconds(server_pid) if server_pid else 0.0
    cpu_before, started = time.process_time(), time.perf_counter()
    try:
        await asyncio.gather(*(client(connection) for connection in connections))
    finally:
        for connection in connections:
            connection.close()
    elapsed = time.perf_counter() - started
    latencies.sort()
    first, last = int(total * 0.1), int(total * 0.9)
    return {
        "p50": statistics.median(latencies),
        "p95": latencies[max(0, int(len(latencies) * 0.95) - 1)],
        "throughput": (last - first) / (completed[last] - completed[first]),
        "whole_run_throughput": total / elapsed,
        "errors": errors,
        "client_cpu_ms": (time.process_time() - cpu_before) * 1000 / total,
        "server_cpu_ms": (cpu_seconds(server_pid) - server_before) * 1000 / total
        if server_pid
        else None,
    }


@dataclass(frozen=True)
class LevelRun:
    """One load level, with the raw pipeline measured just before and just after it."""

    result: dict
    raw_before: PipelinePoint
    raw_after: PipelinePoint

    @property
    def latency_ratio(self) -> float:
        return self.result["p50"] / ((self.raw_before.b1_ms + self.raw_after.b1_ms) / 2)

    @property
    def throughput_ratio(self) -> float:
        raw = (self.raw_before.batched_per_s + self.raw_after.batched_per_s) / 2
        return self.result["throughput"] / raw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="target a running server instead of starting one")
    parser.add_argument("--user", default="bench", help="existing user id for --url")
    parser.add_argument("--model", type=Path, help="model file (default: random-weight resnet50)")
    parser.add_argument("--requests", type=int, default=20, help="requests per client")
    parser.add_argument("--rounds", type=int, default=3, help="times each level is measured")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="allcare-bench-"))
    model = args.model or model_file(work)
    print("Choosing the raw pipeline's runtime (nothing else running)...", flush=True)
    best_runtime = measure(model, repeat=RAW_REPEAT).best_runtime
    pipeline = RawPipeline(load_runner(model, best_runtime))
    runtime_mb = model_runtime_peak_mb(model, work / "probe")

    server = None
    url = args.url
    if url is None:
        server, url = start_server(model, work / "storage", args.user)
    runs: dict[tuple[str, int], list[LevelRun]] = defaultdict(list)
    try:
        images = photos()
        for photo in images.values():  # warm-up: first requests pay one-off costs
            asyncio.run(run_level(url, args.user, photo, 2, 4))
        for round_number in range(1, args.rounds + 1):
            print(f"Round {round_number} of {args.rounds}...", flush=True)
            for name, photo in images.items():
                before = pipeline.measure(photo, RAW_REPEAT)
                for concurrency in CONCURRENCY:
                    total = max(40, args.requests * concurrency)
                    pid = server.pid if server else None
                    result = asyncio.run(run_level(url, args.user, photo, concurrency, total, pid))
                    after = pipeline.measure(photo, RAW_REPEAT)
                    runs[name, concurrency].append(LevelRun(result, before, after))
                    before = after
    finally:
        if server is not None:
            current, peak = rss_mb(server.pid)
            server.terminate()
            server.wait(timeout=30)
    print(
        f"\nPOST /check-image, ResNet50 fp32 on CPU ({os.cpu_count()} cores), raw pipeline: "
        f"{best_runtime}, measured just before and after each level; median of {args.rounds} "
        "rounds (range)"
    )
    print(
        f"{'photo':<10} {'conc':>4} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>7} {'errors':>6} "
        f"{'p50/raw b1':>18} {'req/s / raw b8':>18} {'CPU ms/req':>10}"
    )
    for name in images:
        for concurrency in CONCURRENCY:
            level = runs[name, concurrency]
            print(
                f"{name:<10} {concurrency:>4} {_median(level, 'p50'):>8.1f} "
                f"{_median(level, 'p95'):>8.1f} {_median(level, 'throughput'):>7.1f} "
                f"{sum(run.result['errors'] for run in level):>6} "
                f"{_spread([run.latency_ratio for run in level]):>18} "
                f"{_spread([run.throughput_ratio for run in level]):>18} {_cpu_column(level):>10}"
            )
        points = [point for run in runs[name, 1] for point in (run.raw_before, run.raw_after)]
        print(
            f"{'':<10} raw pipeline: b1 {statistics.median(p.b1_ms for p in points):.1f} ms, "
            f"batched {statistics.median(p.batched_per_s for p in points):.1f} photos/s, "
            f"{statistics.median(p.cpu_ms for p in points):.0f} ms CPU per photo"
        )
    if server is not None:
        print(
            f"\nServer memory: {current:.0f} MB now, {peak:.0f} MB peak; model runtime alone "
            f"{runtime_mb:.0f} MB peak; server overhead {peak - runtime_mb:.0f} MB "
            "(target: at most 300)"
        )
    drain_cost = [
        1 - run.result["whole_run_throughput"] / run.result["throughput"]
        for name in images
        for run in runs[name, CONCURRENCY[-1]]
    ]
    print(
        "req/s: the sustained rate between the 10th and the 90th percentile completion; "
        f"counting the ramp-up and the drain, concurrency {CONCURRENCY[-1]} was "
        f"{min(drain_cost):.1%} to {max(drain_cost):.1%} lower"
    )
    print("CPU ms/req: the server process's + this client's (it shares the cores)")


def _median(level: list[LevelRun], key: str) -> float:
    return statistics.median(run.result[key] for run in level)


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def _cpu_column(level: list[LevelRun]) -> str:
    client = f"{_median(level, 'client_cpu_ms'):.1f}"
    if level[0].result["server_cpu_ms"] is None:
        return client
    return f"{_median(level, 'server_cpu_ms'):.0f}+{client}"


if __name__ == "__main__":
    main()
