"""Two ``allcare serve`` processes, each with its own STORAGE_ROOT, against one PostgreSQL and one
S3 bucket (SeaweedFS), behave as one server: what one stores the other serves, failed logins
and ids are shared, and a model change on one reaches the other within REGISTRY_POLL_SECONDS."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from allcare.core.config import Settings
from allcare.store.db import Database
from allcare.store.models import BlobIntent, Image
from tests.conftest import (
    PASSWORD,
)
from tests.models import tiny_torchscript
from tests.photos import sharp_photo
from tests.s3_server import S3Server, bucket_objects
from tests.servers import Server, replica_environment, shared_database
from tests.uploads import let_intent_leases_pass

pytestmark = [pytest.mark.postgres, pytest.mark.s3]

UPLOADERS = 8


@dataclass(frozen=True)
class Cluster:
    a: Server
    b: Server
    assets: Path
    database_url: str
    bucket_url: str
    s3: S3Server

    def photo_objects(self) -> set[str]:
        return {key[len("blobs/") :] for key in bucket_objects(self.s3, self.bucket_url, "blobs/")}

    def stored(self) -> tuple[set[str], int]:
        """The photo keys the database references, and the intents still open."""
        db = Database(Settings(database_url=self.database_url).sqlalchemy_url)  # type: ignore[call-arg]
        try:
            with db.session() as session:
                keys = set(session.scalars(select(Image.blob_key)))
                intents = session.scalar(select(func.count()).select_from(BlobIntent)) or 0
        finally:
            db.dispose()
        return keys, intents


@pytest.fixture
def replicas(
    postgres_server: str, bucket_url: str, s3_environment: S3Server, tmp_path: Path
) -> Iterator[Cluster]:
    accounts = {f"gp{n}": "gp" for n in range(UPLOADERS)} | {"admin1": "admin"}
    with shared_database(postgres_server, accounts) as url:
        assets = tmp_path / "assets"
        assets.mkdir()
        common = replica_environment(url, bucket_url, s3_environment) | {
            "LOGIN_MAX_FAILURES": "3",
            "MODEL_ASSETS_DIR": str(assets),
        }
        a = Server(
            common
            | {
                "STORAGE_ROOT": str(tmp_path / "a"),
                "MODEL_PATH": str(tiny_torchscript(tmp_path / "first.pt")),
            }
        )
        b = Server(common | {"STORAGE_ROOT": str(tmp_path / "b")})
        a.start()  # registers the first model (uploads it to the bucket)
        b.start()  # serves it, fetched from the bucket
        try:
            yield Cluster(a, b, assets, url, bucket_url, s3_environment)
        finally:
            a.stop()
            b.stop()


def test_two_replicas_behave_as_one_server(replicas: Cluster) -> None:
    a, b, assets = replicas.a, replicas.b, replicas.assets
    version = httpx.get(f"{a.url}/health").json()["model"]["version"]
    assert httpx.get(f"{b.url}/health").json()["model"]["version"] == version

    # A photo sent through A is served by B with its bytes; a case made on A is listed on B.
    photo = sharp_photo(seed=3)
    gp_on_a, gp_on_b = a.client("gp1"), b.client("gp1")
    case_id = gp_on_a.post("/cases/next-id").json()["case_id"]
    sent = gp_on_a.post(
        "/check-image",
        params={"case_id": case_id},
        files={"file": ("p.jpg", photo, "image/jpeg")},
    )
    assert sent.status_code == 200, sent.text
    image_id = sent.json()["image_id"]
    served = httpx.get(f"{b.url}/images/gp1/{image_id}.jpg")
    assert served.status_code == 200
    assert served.content == photo
    saved = gp_on_a.post(
        "/cases", json={"case_id": case_id, "image_paths": [f"gp1/{image_id}.jpg"]}
    )
    assert saved.status_code == 200, saved.text
    listed = gp_on_b.get("/cases").json()["cases"]
    assert [c["case_id"] for c in listed] == [case_id]

    # Failed logins on A count on B: the right password is refused there too.
    for _ in range(3):
        wrong = httpx.post(f"{a.url}/auth/login", json={"username": "gp2", "password": "nope"})
        assert wrong.status_code == 401
    refused = httpx.post(f"{b.url}/auth/login", json={"username": "gp2", "password": PASSWORD})
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) > 0

    # 8 clients uploading across both replicas: unique case and image ids, nothing lost.
    acknowledged: list[tuple[str, str, str, str]] = []
    lock = threading.Lock()

    def upload(n: int) -> None:
        server = (a, b)[n % 2]
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for round_ in range(6):
                data = sharp_photo(seed=100 + n * 10 + round_)
                answer = client.post(
                    "/check-image",
                    files={"file": ("p.jpg", data, "image/jpeg")},
                    headers={"X-User-Id": f"gp{n}"},
                )
                assert answer.status_code == 200, answer.text
                body = answer.json()
                with lock:
                    acknowledged.append(
                        (f"gp{n}", body["image_id"], str(body["case_id"]), _sha(data))
                    )

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(UPLOADERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(acknowledged) == UPLOADERS * 6
    assert len({image for _, image, _, _ in acknowledged}) == len(acknowledged)
    assert len({case for _, _, case, _ in acknowledged}) == len(acknowledged)
    for owner, image_id, _, digest in acknowledged:
        for server in (a, b):
            again = httpx.get(f"{server.url}/images/{owner}/{image_id}.jpg")
            assert again.status_code == 200
            assert _sha(again.content) == digest

    # A model served through A reaches B within REGISTRY_POLL_SECONDS; B's change reaches A.
    tiny_torchscript(assets / "second.pt", seed=1)
    admin_on_a, admin_on_b = a.client("admin1"), b.client("admin1")
    activated = admin_on_a.post("/admin/models/assets/activate", json={"file_name": "second.pt"})
    assert activated.status_code == 200, activated.text
    second = activated.json()["version_id"]
    assert second != version
    _wait_for_model(b, second)
    back = admin_on_b.post(f"/admin/models/{version}/activate")
    assert back.status_code == 200, back.text
    _wait_for_model(a, version)
    for client in (gp_on_a, gp_on_b, admin_on_a, admin_on_b):
        client.close()


def _wait_for_model(server: Server, version: str, within_s: float = 15) -> None:
    deadline = time.monotonic() + within_s
    while httpx.get(f"{server.url}/health").json()["model"]["version"] != version:
        assert time.monotonic() < deadline, f"{server.url} does not serve {version}"
        time.sleep(0.2)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_replica_killed_mid_upload_loses_nothing_and_its_debris_is_cleared(
    replicas: Cluster,
) -> None:
    """SIGKILL replica A while 8 clients upload through A and B. Every acknowledged photo is
    served by B; once the lease has passed B removes what A left half-done, without a restart:
    bucket objects and database rows match one to one."""
    a, b = replicas.a, replicas.b
    acknowledged: list[tuple[str, str, str]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def upload(n: int) -> None:
        server = (a, b)[n % 2]
        with httpx.Client(base_url=server.url, timeout=60) as client:
            round_ = 0
            while not stop.is_set():
                data = sharp_photo(seed=500 + n * 100 + round_)
                round_ += 1
                try:
                    answer = client.post(
                        "/check-image",
                        files={"file": ("p.jpg", data, "image/jpeg")},
                        headers={"X-User-Id": f"gp{n}"},
                    )
                except httpx.HTTPError:
                    assert server is a, "replica B failed an upload"
                    return  # A is gone
                assert answer.status_code == 200, answer.text
                with lock:
                    acknowledged.append((f"gp{n}", answer.json()["image_id"], _sha(data)))

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(UPLOADERS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while len(acknowledged) < 30:
        assert time.monotonic() < deadline, "uploads did not get going"
        time.sleep(0.05)
    a.kill()  # requests in flight at every step of the upload path
    time.sleep(1.0)  # B keeps taking photos meanwhile
    stop.set()
    for thread in threads:
        thread.join()

    for owner, image_id, digest in acknowledged:
        served = httpx.get(f"{b.url}/images/{owner}/{image_id}.jpg")
        assert served.status_code == 200, (owner, image_id)
        assert _sha(served.content) == digest
    let_intent_leases_pass(Settings(database_url=replicas.database_url))  # type: ignore[call-arg]
    deadline = time.monotonic() + 20
    while True:
        keys, intents = replicas.stored()
        if intents == 0 and replicas.photo_objects() == keys:
            break
        assert time.monotonic() < deadline, (intents, len(keys), len(replicas.photo_objects()))
        time.sleep(0.5)
    assert len(keys) >= len(acknowledged)
