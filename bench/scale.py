"""What one photo upload costs past one machine, and one vs two API processes, for
docs/scaling.md.

Starts a throwaway PostgreSQL (with pg_stat_statements and fsync on, as in production) and a
SeaweedFS S3 server, then ``allcare serve`` processes on them with the default architecture
(EfficientNet-Lite0, random weights: the real compute), ONNX Runtime, encryption on, a real
600x450 HAM10000 photo through the camera flow (a new case each time):

1. Cost of one upload, sequential: the server's CPU ms, database statements (round trips),
   rows written, WAL bytes and table growth, object-store PUTs and bytes.
2. Throughput of one process and of two (each its own STORAGE_ROOT, one database, one bucket)
   under the same concurrent clients, and the server CPU per upload.

    .venv/bin/python bench/scale.py                      # about 3 minutes on 2 cores
    .venv/bin/python bench/scale.py --uploads 200 --seconds 60 --clients 8 --json out.json
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
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import add_account, cpu_seconds, free_port, model_file, photos
from tests.postgres_server import temporary_cluster
from tests.s3_server import raw_client, temporary_s3

PYTHON = sys.executable
KEY = "q1bYBCpY7l2SEqSDcLYtKtpi7lrvSUPkwwGtbkTqq4k="  # a bench-only data key
JWT = "bench-jwt-secret-" + "x" * 40
PREFIX = "bench"


@dataclass
class UploadCost:
    uploads: int
    server_cpu_ms: float
    wall_ms_p50: float
    db_statements: float
    db_rows_written: float
    db_wal_bytes: float
    db_table_bytes: float
    object_puts: float
    object_bytes: float


@dataclass
class Throughput:
    processes: int
    clients: int
    seconds: float
    uploads: int
    uploads_per_s: float
    p50_ms: float
    p95_ms: float
    errors: int
    server_cpu_ms_per_upload: float
    db_connections_peak: int


def start_server(env: dict[str, str], root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = subprocess.Popen(
        [PYTHON, "-m", "allcare", "serve"],
        env=env | {"STORAGE_ROOT": str(root), "BACKSERVER_PORT": str(port)},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return server, url
        except httpx.HTTPError:
            pass
        if server.poll() is not None:
            raise SystemExit("the server exited during start-up")
        time.sleep(0.3)
    raise SystemExit("the server did not become ready")


def db_counters(url: str) -> dict[str, float]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            statements = connection.scalar(
                text(
                    "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s WHERE s.dbid = "
                    "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "AND s.query NOT LIKE '%pg_stat%' AND s.query NOT LIKE '%pg_current_wal%'"
                )
            )
            rows = connection.scalar(
                text(
                    "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) "
                    "FROM pg_stat_user_tables"
                )
            )
            wal = connection.scalar(text("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')"))
            size = connection.scalar(
                text(
                    "SELECT coalesce(sum(pg_total_relation_size(relid)), 0) "
                    "FROM pg_stat_user_tables"
                )
            )
    finally:
        engine.dispose()
    return {
        "statements": float(statements),
        "rows": float(rows),
        "wal": float(wal),
        "size": float(size),
    }


def bucket_counters(s3, bucket: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    client = raw_client(s3)
    objects = size = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX):
        for entry in page.get("Contents", []):
            objects += 1
            size += entry["Size"]
    return objects, size


def upload(client: httpx.Client, photo: bytes, user: str) -> float:
    started = time.perf_counter()
    answer = client.post(
        "/check-image",
        files={"file": ("p.jpg", photo, "image/jpeg")},
        headers={"X-User-Id": user, "X-User-Role": "gp"},
    )
    if answer.status_code != 200:
        raise SystemExit(f"upload failed: {answer.status_code} {answer.text}")
    return (time.perf_counter() - started) * 1000


def cost_of_one_upload(
    url: str, server: subprocess.Popen[bytes], db_url: str, s3, photo: bytes, n: int
) -> UploadCost:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(5):
            upload(client, photo, "gp0")  # warm: model, pools, caches
        db_before, bucket_before = db_counters(db_url), bucket_counters(s3, s3.bucket)
        cpu_before = cpu_seconds(server.pid)
        walls = [upload(client, photo, "gp0") for _ in range(n)]
        cpu = cpu_seconds(server.pid) - cpu_before
    time.sleep(11)  # table statistics reach pg_stat_user_tables once a backend idles 10 s
    db_after, bucket_after = db_counters(db_url), bucket_counters(s3, s3.bucket)
    return UploadCost(
        uploads=n,
        server_cpu_ms=cpu * 1000 / n,
        wall_ms_p50=statistics.median(walls),
        db_statements=(db_after["statements"] - db_before["statements"]) / n,
        db_rows_written=(db_after["rows"] - db_before["rows"]) / n,
        db_wal_bytes=(db_after["wal"] - db_before["wal"]) / n,
        db_table_bytes=(db_after["size"] - db_before["size"]) / n,
        object_puts=(bucket_after[0] - bucket_before[0]) / n,
        object_bytes=(bucket_after[1] - bucket_before[1]) / n,
    )


async def _client_loop(
    url: str, photo: bytes, user: str, until: float, latencies: list[float], errors: list[int]
) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        while time.monotonic() < until:
            started = time.perf_counter()
            try:
                answer = await client.post(
                    "/check-image",
                    files={"file": ("p.jpg", photo, "image/jpeg")},
                    headers={"X-User-Id": user, "X-User-Role": "gp"},
                )
                ok = answer.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                errors.append(1)


def throughput(
    urls: list[str],
    servers: list[subprocess.Popen[bytes]],
    photo: bytes,
    clients: int,
    seconds: float,
    db_url: str,
) -> Throughput:
    latencies: list[float] = []
    errors: list[int] = []
    peak = ConnectionPeak(db_url)
    cpu_before = sum(cpu_seconds(s.pid) for s in servers)

    async def run() -> None:
        until = time.monotonic() + seconds
        await asyncio.gather(
            *(
                _client_loop(urls[n % len(urls)], photo, f"gp{n}", until, latencies, errors)
                for n in range(clients)
            )
        )

    with peak:
        asyncio.run(run())
    cpu = sum(cpu_seconds(s.pid) for s in servers) - cpu_before
    done = len(latencies)
    ordered = sorted(latencies)
    return Throughput(
        processes=len(urls),
        clients=clients,
        seconds=seconds,
        uploads=done,
        uploads_per_s=done / seconds,
        p50_ms=statistics.median(ordered) if ordered else float("nan"),
        p95_ms=ordered[int(0.95 * (done - 1))] if ordered else float("nan"),
        errors=len(errors),
        server_cpu_ms_per_upload=cpu * 1000 / max(1, done),
        db_connections_peak=peak.most,
    )


class ConnectionPeak:
    """The most connections the servers held open on the database, sampled twice a second."""

    def __init__(self, db_url: str) -> None:
        self._engine = create_engine(db_url, pool_size=1, max_overflow=0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self.most = 0

    def __enter__(self) -> ConnectionPeak:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._engine.dispose()

    def _sample(self) -> None:
        with self._engine.connect() as connection:
            while not self._stop.wait(0.5):
                count = connection.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                        "current_database() AND pid <> pg_backend_pid()"
                    )
                )
                connection.commit()
                self.most = max(self.most, int(count or 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=100, help="sequential uploads measured")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=30.0, help="each throughput level")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--photo", choices=("600x450", "4032x3024"), default="600x450", help="photo sent"
    )
    args = parser.parse_args()
    photo = photos()[args.photo]
    with tempfile.TemporaryDirectory(prefix="allcare-scale-") as scratch:
        work = Path(scratch)
        model = model_file(work, "efficientnet_lite0")
        options = "-c fsync=on -c shared_preload_libraries=pg_stat_statements"
        with temporary_cluster(options) as server_url, temporary_s3() as s3:
            admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(text('CREATE DATABASE "allcare"'))
            admin.dispose()
            db_url = server_url.rsplit("/", 1)[0] + "/allcare"
            stats = create_engine(db_url, isolation_level="AUTOCOMMIT")
            with stats.connect() as connection:
                connection.execute(text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
            stats.dispose()
            env = {
                **os.environ,
                **s3.environment(),
                "DATABASE_URL": db_url,
                "BLOB_STORE_URL": f"s3://{s3.bucket}/{PREFIX}",
                "ENCRYPT_STORAGE": "true",
                "DATA_ENCRYPTION_KEY": KEY,
                "JWT_SECRET_KEY": JWT,
                "MODEL_PATH": str(model),
                "BACKSERVER_HOST": "127.0.0.1",
                "UPLOAD_RATE_PER_MINUTE": "100000",
                "LOG_LEVEL": "warning",
            }
            for n in range(max(args.clients, 1)):
                add_account(env | {"STORAGE_ROOT": str(work / "a")}, f"gp{n}", "bench-pass-1")
            first, url_a = start_server(env, work / "a")
            second = None
            try:
                print("Cost of one upload (sequential)...", flush=True)
                cost = cost_of_one_upload(url_a, first, db_url, s3, photo, args.uploads)
                print("Throughput, one process...", flush=True)
                one = throughput([url_a], [first], photo, args.clients, args.seconds, db_url)
                second, url_b = start_server(env, work / "b")
                print("Throughput, two processes...", flush=True)
                two = throughput(
                    [url_a, url_b], [first, second], photo, args.clients, args.seconds, db_url
                )
            finally:
                for process in (first, second):
                    if process is not None:
                        process.terminate()
                        process.wait(timeout=60)
    report(cost, [one, two], args.json, args.photo)


def report(cost: UploadCost, levels: list[Throughput], out: Path | None, photo: str) -> None:
    cores = len(os.sched_getaffinity(0))
    print(
        f"\nOne upload ({photo} photo, EfficientNet-Lite0 ONNX, encryption on), {cores} cores, "
        f"{cost.uploads} uploads (mean; wall time: median):"
    )
    print(f"  server CPU            {cost.server_cpu_ms:8.1f} ms")
    print(f"  wall time, p50        {cost.wall_ms_p50:8.1f} ms")
    print(f"  database statements   {cost.db_statements:8.1f} (round trips)")
    print(f"  database rows written {cost.db_rows_written:8.1f}")
    print(f"  database WAL          {cost.db_wal_bytes / 1024:8.1f} KiB")
    print(f"  database table growth {cost.db_table_bytes / 1024:8.1f} KiB")
    print(f"  object-store PUTs     {cost.object_puts:8.2f}")
    print(f"  object-store bytes    {cost.object_bytes / 1024:8.1f} KiB")
    print(
        "\nprocesses clients  uploads/s   p50 ms   p95 ms errors  server CPU ms/upload"
        "  db connections (peak)"
    )
    for level in levels:
        print(
            f"{level.processes:9d} {level.clients:7d} {level.uploads_per_s:10.1f} "
            f"{level.p50_ms:8.0f} {level.p95_ms:8.0f} {level.errors:6d} "
            f"{level.server_cpu_ms_per_upload:21.1f} {level.db_connections_peak:22d}"
        )
    if out is not None:
        out.write_text(
            json.dumps(
                {
                    "cores": cores,
                    "photo": photo,
                    "upload": asdict(cost),
                    "throughput": [asdict(t) for t in levels],
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
