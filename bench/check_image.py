"""End-to-end POST /check-image: p50/p95 latency and throughput at concurrency 1, 4 and 16 for a
600x450 and a 4032x3024 photo, compared with the raw pipeline measured in the same run, and the
server's memory against the model runtime's.

    .venv/bin/python bench/check_image.py                # starts its own server (resnet50)
    .venv/bin/python bench/check_image.py --url http://host:8000 --user user001

The camera flow is measured: legacy X-User-Id identity, photo stored with a new case.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _common import free_port, model_file, photos, rss_mb
from raw_model import measure

CONCURRENCY = (1, 4, 16)
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
    subprocess.run(
        [PYTHON, "-m", "allcare", "users", "add", user, "--role", "gp", "--password-stdin"],
        input=b"bench-password-1\n",
        env=env,
        check=True,
        capture_output=True,
    )
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
        "from allcare.runtime import model_options;"
        "settings = Settings(); model = load_model(settings.model_path, model_options(settings));"
        "batch = np.zeros((settings.batch_max_size, 3, 224, 224), np.float32);"
        "model.runner.run(batch); print(rss_mb()[1])"
    )
    env = {**os.environ, "MODEL_PATH": str(model), "STORAGE_ROOT": str(storage)}
    out = subprocess.run([PYTHON, "-c", code], env=env, check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def multipart(photo: bytes) -> tuple[bytes, str]:
    """The upload body, encoded once: the benchmark measures the server, not the client."""
    request = httpx.Request(
        "POST", "http://bench/", files={"file": ("photo.jpg", photo, "image/jpeg")}
    )
    return request.read(), request.headers["content-type"]


async def run_level(url: str, user: str, photo: bytes, concurrency: int, total: int) -> dict:
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(total):
        queue.put_nowait(n)
    body, content_type = multipart(photo)
    headers = {"Content-Type": content_type, "X-User-Id": user, "X-User-Role": "gp"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            while not queue.empty():
                queue.get_nowait()
                started = time.perf_counter()
                response = await client.post("/check-image", content=body, headers=headers)
                latencies.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200 or response.json()["status"] != "success":
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "p50": statistics.median(latencies),
        "p95": latencies[max(0, int(len(latencies) * 0.95) - 1)],
        "throughput": total / elapsed,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="target a running server instead of starting one")
    parser.add_argument("--user", default="bench", help="existing user id for --url")
    parser.add_argument("--model", type=Path, help="model file (default: random-weight resnet50)")
    parser.add_argument("--requests", type=int, default=20, help="requests per client")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="allcare-bench-"))
    model = args.model or model_file(work)
    print("Measuring the raw pipeline first (nothing else running)...", flush=True)
    raw_before = measure(model, repeat=20)
    runtime_mb = model_runtime_peak_mb(model, work / "probe")

    server = None
    url = args.url
    if url is None:
        server, url = start_server(model, work / "storage", args.user)
    try:
        images = photos()
        for photo in images.values():  # warm-up: first requests pay one-off costs
            asyncio.run(run_level(url, args.user, photo, 2, 4))
        results = {
            (name, concurrency): asyncio.run(
                run_level(url, args.user, photo, concurrency, max(40, args.requests * concurrency))
            )
            for name, photo in images.items()
            for concurrency in CONCURRENCY
        }
    finally:
        if server is not None:
            current, peak = rss_mb(server.pid)
            server.terminate()
            server.wait(timeout=30)
    print("Measuring the raw pipeline again (the machine's speed drifts)...", flush=True)
    raw_after = measure(model, repeat=20, runtimes=(raw_before.best_runtime,))
    raw_b1 = {
        name: (raw_before.pipeline_b1_ms[name] + raw_after.pipeline_b1_ms[name]) / 2
        for name in images
    }
    raw_batched = {
        name: (raw_before.pipeline_batched_per_s[name] + raw_after.pipeline_batched_per_s[name]) / 2
        for name in images
    }
    print(
        f"\nPOST /check-image, ResNet50 fp32 on CPU ({os.cpu_count()} cores), "
        f"raw pipeline runtime: {raw_before.best_runtime}"
    )
    print(
        f"{'photo':<10} {'conc':>4} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>7} "
        f"{'errors':>6} {'p50/raw b1':>10} {'req/s / raw b8':>14}"
    )
    for name in images:
        for concurrency in CONCURRENCY:
            result = results[name, concurrency]
            print(
                f"{name:<10} {concurrency:>4} {result['p50']:>8.1f} {result['p95']:>8.1f} "
                f"{result['throughput']:>7.1f} {result['errors']:>6} "
                f"{result['p50'] / raw_b1[name]:>10.2f} "
                f"{result['throughput'] / raw_batched[name]:>14.2f}"
            )
        print(
            f"{'':<10} raw pipeline (mean of before/after): b1 {raw_b1[name]:.1f} ms "
            f"({raw_before.pipeline_b1_ms[name]:.1f}/{raw_after.pipeline_b1_ms[name]:.1f}), "
            f"batched {raw_batched[name]:.1f} img/s"
        )
    if server is not None:
        print(
            f"\nServer memory: {current:.0f} MB now, {peak:.0f} MB peak; model runtime alone "
            f"{runtime_mb:.0f} MB peak; server overhead {peak - runtime_mb:.0f} MB "
            "(target: at most 300)"
        )


if __name__ == "__main__":
    main()
