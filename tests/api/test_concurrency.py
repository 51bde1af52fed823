"""16 clients at once against a real uvicorn server, each allocating cases, uploading a photo to
each and logging the decision: unique case ids, every photo stored once with its exact bytes,
every case listed for its owner only, no file without a row and no row without a file."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from allcare.core.config import Settings
from allcare.store.models import BlobIntent, Case, Image
from tests.conftest import PASSWORD, Api, live_server
from tests.models import tiny_torchscript
from tests.photos import sharp_photo

CLIENTS = 16
CASES_PER_CLIENT = 20


@pytest.fixture
def clinic(make_api: Callable[..., Api], make_settings: Callable[..., Settings], tmp_path: Path):
    api = make_api(
        make_settings(model_path=tiny_torchscript(tmp_path / "tiny.pt"), inference_runtime="torch")
    )
    for n in range(CLIENTS):
        api.add_user(f"gp{n}", "gp")
    return api


@pytest.fixture
def server_url(clinic: Api) -> Iterator[str]:
    with live_server(clinic.client.app) as url:
        yield url


def _gp_day(base: str, n: int) -> dict[str, str]:
    """One GP's session: per case, next-id, the camera upload, the decision. Case id -> image id."""
    photo = sharp_photo(seed=n)
    stored: dict[str, str] = {}
    with httpx.Client(base_url=base, timeout=60) as client:
        login = client.post("/auth/login", json={"username": f"gp{n}", "password": PASSWORD})
        token = {"Authorization": f"Bearer {login.json()['access_token']}"}
        for _ in range(CASES_PER_CLIENT):
            case_id = client.post("/cases/next-id", headers=token).json()["case_id"]
            uploaded = client.post(
                "/check-image",
                params={"case_id": case_id},
                files={"file": ("photo.jpg", photo, "image/jpeg")},
                headers={"X-User-Id": f"gp{n}"},  # the camera screen sends no token
            )
            assert uploaded.status_code == 200, uploaded.text
            image_id = uploaded.json()["image_id"]
            decision = {
                "case_id": case_id,
                "status": "Confirmed",
                "image_paths": [f"gp{n}/{image_id}.jpg"],
            }
            logged = client.post("/cases", json=decision, headers=token)
            assert logged.status_code == 200, logged.text
            stored[case_id] = image_id
    return stored


def test_sixteen_clients_with_uploads_get_unique_ids_and_lose_nothing(
    server_url: str, clinic: Api
) -> None:
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(lambda n: _gp_day(server_url, n), range(CLIENTS)))
    issued = [case_id for stored in results for case_id in stored]
    assert len(issued) == CLIENTS * CASES_PER_CLIENT
    assert len(set(issued)) == len(issued)

    for n, stored in enumerate(results):
        cases = clinic.as_user(f"gp{n}").get("/cases?limit=500").json()["cases"]
        assert sorted(c["case_id"] for c in cases) == sorted(stored)
        for case in cases:
            assert case["image_paths"] == [f"gp{n}/{stored[case['case_id']]}.jpg"]
    expected_sha = {
        f"gp{n}": hashlib.sha256(sharp_photo(seed=n)).hexdigest() for n in range(CLIENTS)
    }
    for n in (0, CLIENTS - 1):
        for image_id in list(results[n].values())[:3]:
            served = clinic.client.get(f"/images/gp{n}/{image_id}.jpg")
            assert hashlib.sha256(served.content).hexdigest() == expected_sha[f"gp{n}"]

    with clinic.container.db.session() as session:
        images = list(session.scalars(select(Image)))
        assert session.scalar(select(func.count()).select_from(Case)) == len(issued)
        assert session.scalar(select(func.count()).select_from(BlobIntent)) == 0
    assert len(images) == len(issued)
    assert {image.sha256 for image in images} == set(expected_sha.values())
    blobs = clinic.container.settings.storage_root / "blobs"
    files = {p.relative_to(blobs).as_posix() for p in blobs.rglob("*") if p.is_file()}
    assert files == {image.blob_key for image in images}
