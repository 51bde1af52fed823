"""Load benchmark: a clinic day of mixed requests at rising concurrency against a real server.

Each virtual client is a GP's phone. All phones log in at once (the morning), then each repeats
the app's journey (a case id, a camera upload of a real 600x450 dermatoscopic photo, the
decision, the case list); every fourth case a doctor labels it and lists all cases. Each
concurrency level works for a fixed time. Prints throughput, p50/p95/p99 and errors per
route, and the first level at which p95 of ``POST /check-image`` passes the app's 30 s
timeout (or uploads start being refused).

    .venv/bin/python bench/load.py                  # starts its own server (ResNet50, ONNX)
    .venv/bin/python bench/load.py --url http://host:8000 --password ...   # bench-gp0.. exist
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from _common import free_port, model_file, photos
from check_image import PYTHON

APP_TIMEOUT_S = 30.0  # the app's timeout of an upload; 10 s for every other call it makes
OTHER_TIMEOUT_S = 10.0
LEVELS = (1, 4, 16, 64, 128, 256)
GPS = 16
DOCTORS = 2
PASSWORD = "bench-password-1"  # noqa: S105 - the accounts this benchmark creates
UPLOAD = "POST /check-image"


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )

    async def timed(self, route: str, request: Awaitable[httpx.Response]) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = await request
        except httpx.HTTPError as exc:
            self.errors[route][type(exc).__name__] += 1
            return None
        self.latencies[route].append(time.perf_counter() - started)
        if response.status_code >= 400:
            self.errors[route][str(response.status_code)] += 1
            return None
        return response


async def login(
    client: httpx.AsyncClient, stats: Stats, user: str, password: str
) -> dict[str, str] | None:
    body = {"username": user, "password": password}
    response = await stats.timed("POST /auth/login", client.post("/auth/login", json=body))
    return (
        None if response is None else {"Authorization": f"Bearer {response.json()['access_token']}"}
    )


@dataclass(frozen=True)
class Target:
    url: str
    password: str
    photo: bytes


@dataclass(frozen=True)
class Phone:
    gp: str
    gp_auth: dict[str, str]
    doctor_auth: dict[str, str]


async def clinic_day(
    client: httpx.AsyncClient, target: Target, phone: Phone, until: float, stats: Stats
) -> None:
    done = 0
    while time.monotonic() < until:
        allocated = await stats.timed(
            "POST /cases/next-id", client.post("/cases/next-id", headers=phone.gp_auth)
        )
        if allocated is None:
            continue
        case_id = allocated.json()["case_id"]
        uploaded = await stats.timed(
            UPLOAD,
            client.post(
                "/check-image",
                params={"case_id": case_id},
                files={"file": ("photo.jpg", target.photo, "image/jpeg")},
                headers={"X-User-Id": phone.gp},
            ),
        )
        if uploaded is None:
            continue
        image = f"{phone.gp}/{uploaded.json()['image_id']}.jpg"
        decision = {"case_id": case_id, "status": "Confirmed", "image_paths": [image]}
        await stats.timed(
            "POST /cases", client.post("/cases", json=decision, headers=phone.gp_auth)
        )
        await stats.timed(
            "GET /cases", client.get("/cases", params={"limit": 50}, headers=phone.gp_auth)
        )
        done += 1
        if done % 4 == 0:
            label = {"correct_label": "nv"}
            await stats.timed(
                "POST /cases/{id}/label",
                client.post(f"/cases/{case_id}/label", json=label, headers=phone.doctor_auth),
            )
            await stats.timed(
                "GET /cases (doctor)",
                client.get("/cases", params={"limit": 50}, headers=phone.doctor_auth),
            )


async def run_level(target: Target, concurrency: int, seconds: float) -> tuple[Stats, Stats, float]:
    """The morning (every phone logs in at once), then ``seconds`` of the working day; the
    requests still running then are waited for, and the rates count that time too."""
    morning, day = Stats(), Stats()
    limits = httpx.Limits(max_connections=concurrency + DOCTORS)
    timeout = 4 * APP_TIMEOUT_S
    async with httpx.AsyncClient(base_url=target.url, timeout=timeout, limits=limits) as client:
        users = [f"bench-gp{n % GPS}" for n in range(concurrency)]
        users += [f"bench-doc{n}" for n in range(DOCTORS)]
        tokens = await asyncio.gather(*(login(client, morning, u, target.password) for u in users))
        doctors = [t for t in tokens[concurrency:] if t is not None]
        if not doctors:
            raise SystemExit("no doctor could log in; do the bench accounts exist?")
        phones = [
            Phone(users[n], token, doctors[n % len(doctors)])
            for n, token in enumerate(tokens[:concurrency])
            if token is not None
        ]
        started = time.monotonic()
        until = started + seconds
        await asyncio.gather(*(clinic_day(client, target, p, until, day) for p in phones))
    return morning, day, time.monotonic() - started


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def report(concurrency: int, seconds: float, morning: Stats, stats: Stats) -> None:
    """Latencies over the app's timeout of that call are marked with ``!``."""
    logins = morning.latencies["POST /auth/login"]
    failed = sum(morning.errors["POST /auth/login"].values())
    print(
        f"\nconcurrency {concurrency}: {len(logins)} logins at once, p50 "
        f"{percentile(logins, 0.5) * 1000:.0f} ms, max {max(logins) * 1000:.0f} ms, "
        f"{sum(v > OTHER_TIMEOUT_S for v in logins)} over the app's 10 s, {failed} failed; "
        f"then {seconds:.0f} s of work (rates over that time)"
    )
    print(
        f"  {'route':<24} {'n':>6} {'req/s':>7} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9}  errors"
    )
    for route in sorted(set(stats.latencies) | set(stats.errors)):
        values = stats.latencies.get(route, [])
        errors = ", ".join(f"{k}x{v}" for k, v in sorted(stats.errors[route].items())) or "-"
        if not values:
            print(f"  {route:<24} {0:>6} {'':>7} {'':>9} {'':>9} {'':>9}  {errors}")
            continue
        limit = APP_TIMEOUT_S if route == UPLOAD else OTHER_TIMEOUT_S
        cells = [
            f"{value * 1000:>8.0f}{'!' if value > limit else ' '}"
            for value in (percentile(values, q) for q in (0.5, 0.95, 0.99))
        ]
        rate = len(values) / seconds
        print(f"  {route:<24} {len(values):>6} {rate:>7.1f} {''.join(cells)} {errors}")


def start_server(work: Path, model: Path, queue_size: int | None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "STORAGE_ROOT": str(work / "storage"),
        "MODEL_PATH": str(model),
        "BACKSERVER_HOST": "127.0.0.1",
        "BACKSERVER_PORT": str(port),
        "LOG_LEVEL": "warning",
        "UPLOAD_RATE_PER_MINUTE": "100000",  # a bench account stands in for many phones
        "RETRAIN_AUTO": "false",
    }
    if queue_size:
        env["INFERENCE_QUEUE_SIZE"] = str(queue_size)
    accounts = [(f"bench-gp{n}", "gp") for n in range(GPS)]
    accounts += [(f"bench-doc{n}", "doctor") for n in range(DOCTORS)]
    script = (
        "import sys; from allcare.core.config import load_settings;"
        "from allcare.container import open_store;"
        "from allcare.services.accounts.users import create_user;"
        "db, _ = open_store(load_settings());"
        "s = db.sessions();"
        "[create_user(s, u, sys.argv[1], r) for u, r in (a.split(':') for a in sys.argv[2:])]"
    )
    pairs = [f"{user}:{role}" for user, role in accounts]
    subprocess.run([PYTHON, "-c", script, PASSWORD, *pairs], env=env, check=True)
    server = subprocess.Popen([PYTHON, "-m", "allcare", "serve"], env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return server, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.kill()
    raise SystemExit("server did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="target a running server instead of starting one")
    parser.add_argument("--password", default=PASSWORD, help="password of the bench accounts")
    parser.add_argument("--model", type=Path, help="model file (default: random-weight resnet50)")
    parser.add_argument("--seconds", type=float, default=20, help="duration of each level")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)))
    parser.add_argument("--queue-size", type=int, help="INFERENCE_QUEUE_SIZE of the own server")
    args = parser.parse_args()
    server, url = None, args.url
    if url is None:
        work = Path(tempfile.mkdtemp(prefix="allcare-load-"))
        server, url = start_server(work, args.model or model_file(work), args.queue_size)
    target = Target(url, args.password, photos()["600x450"])
    levels = [int(level) for level in args.levels.split(",")]
    print(f"Clinic-day load against {url}, {os.cpu_count()} cores, {args.seconds:.0f} s a level")
    verdict = None
    try:
        asyncio.run(run_level(target, 1, 2))  # warm-up
        for concurrency in levels:
            morning, stats, elapsed = asyncio.run(run_level(target, concurrency, args.seconds))
            report(concurrency, elapsed, morning, stats)
            uploads = stats.latencies.get(UPLOAD, [])
            p95 = percentile(uploads, 0.95) if uploads else float("inf")
            refused = sum(stats.errors[UPLOAD].values())
            if verdict is None and (p95 > APP_TIMEOUT_S or refused):
                verdict = (concurrency, p95, refused)
                break
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    if verdict is None:
        print(f"\np95 of {UPLOAD} stayed under {APP_TIMEOUT_S:.0f} s up to {levels[-1]} clients")
    else:
        concurrency, p95, refused = verdict
        print(
            f"\nAt {concurrency} clients {UPLOAD} p95 is {p95:.1f} s with {refused} refused "
            f"or failed (the app gives up after {APP_TIMEOUT_S:.0f} s)"
        )


if __name__ == "__main__":
    main()
