import io
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter

from allcare.core.config import Settings
from allcare.ml.classes import CLASS_NAMES
from allcare.ml.embeddings import EMBEDDING_DIM
from allcare.store import vectors
from allcare.store.models import Image as ImageRow
from tests.conftest import ENCRYPTION_KEY, Api, live_server
from tests.models import real_architecture, tiny_torchscript
from tests.photos import blurry_photo, jpeg_bytes, png_bomb, sharp_photo
from tests.uploads import blob_files, camera, stored_counts, upload

HAM = Path(__file__).parents[2].parent / "shared" / "data" / "ham10000-dev"


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    return tiny_torchscript(tmp_path / "tiny.pt")


@pytest.fixture
def served(make_api: Callable[..., Api], make_settings: Callable[..., Settings], model_path):
    api = make_api(make_settings(model_path=model_path, inference_runtime="torch"))
    api.add_user("gp1", "gp")
    api.add_user("gp2", "gp")
    return api


def test_camera_upload_is_classified_stored_and_served(served: Api) -> None:
    gp = served.as_user("gp1")
    case_id = gp.post("/cases/next-id").json()["case_id"]
    photo = sharp_photo()
    response = upload(served.client, camera("gp1"), photo, case_id=case_id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success"
    assert body["message"] == "Image processed"
    assert body["case_id"] == case_id
    assert body["user_id"] == "gp1"
    assert body["user_role"] == "gp"
    assert str(uuid.UUID(body["image_id"], version=4)) == body["image_id"]
    confidences = [p["confidence"] for p in body["predictions"]]
    assert sorted(p["label"] for p in body["predictions"]) == sorted(CLASS_NAMES)
    assert confidences == sorted(confidences, reverse=True)
    assert abs(sum(confidences) - 1) < 1e-6
    assert all(isinstance(c, float) and 0 <= c <= 1 for c in confidences)

    image = served.client.get(f"/images/gp1/{body['image_id']}.jpg")
    assert image.status_code == 200
    assert image.content == photo  # upright JPEG without metadata: the very bytes
    path = f"{body['user_id']}/{body['image_id']}.jpg"
    gp.post("/cases", json={"case_id": case_id, "status": "Confirmed", "image_paths": [path]})
    [record] = gp.get("/cases").json()["cases"]
    assert record["image_ids"] == [body["image_id"]]

    assert stored_prediction(served, body["image_id"]) == {
        "model_version": body["model_version"],
        "blur_score": pytest.approx(body["blur_score"], abs=0.01),
        "probabilities": {p["label"]: pytest.approx(p["confidence"]) for p in body["predictions"]},
    }


def stored_prediction(api: Api, image_id: str) -> dict[str, object]:
    """What the image row keeps for active learning, opened as the server would."""
    with api.container.db.session() as session:
        row = session.get(ImageRow, image_id)
        assert row is not None
        assert row.probabilities is not None
        sealed = row.probabilities
        opened = api.container.sealer.open(sealed, f"image-probabilities:{image_id}")
        return {
            "model_version": row.model_version,
            "blur_score": row.blur_score,
            "probabilities": dict(zip(CLASS_NAMES, vectors.unpack(opened).tolist(), strict=True)),
        }


def stored_embedding(api: Api, image_id: str) -> np.ndarray | None:
    with api.container.db.session() as session:
        row = session.get(ImageRow, image_id)
        assert row is not None
        if row.embedding is None:
            return None
        return vectors.unpack(
            api.container.sealer.open(row.embedding, f"image-embedding:{image_id}")
        )


@pytest.fixture(scope="module")
def resnet_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random weights, but a real ResNet50, whose features do depend on the image."""
    path = tmp_path_factory.mktemp("resnet") / "resnet50.pt"
    state = real_architecture("resnet50").state_dict()
    torch.save({"model_state_dict": state, "architecture": "resnet50"}, path)
    return path


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_checkpoint_models_store_an_embedding_of_every_photo(
    make_api: Callable[..., Api],
    make_settings: Callable[..., Settings],
    resnet_checkpoint: Path,
    runtime: str,
) -> None:
    """Penultimate-layer features, reduced to 64 values, for diversity-aware active learning."""
    api = make_api(make_settings(model_path=resnet_checkpoint, inference_runtime=runtime))
    api.add_user("gp1", "gp")
    noise = sharp_photo()
    lesion = Image.open(io.BytesIO(noise))
    ImageDraw.Draw(lesion).ellipse((90, 50, 230, 190), fill=(70, 30, 20))
    buffer = io.BytesIO()
    lesion.save(buffer, format="JPEG", quality=90)
    bodies = [upload(api.client, camera("gp1"), data).json() for data in (noise, buffer.getvalue())]
    bodies.append(upload(api.client, camera("gp1"), noise).json())
    first, other, again = (stored_embedding(api, body["image_id"]) for body in bodies)
    assert first is not None
    assert other is not None
    assert again is not None
    assert first.shape == (EMBEDDING_DIM,)
    far = float(np.linalg.norm(first.astype(np.float32) - other.astype(np.float32)))
    near = float(np.linalg.norm(first.astype(np.float32) - again.astype(np.float32)))
    assert near < far / 10


def test_encrypted_storage_seals_the_photo_and_its_probabilities(
    make_api: Callable[..., Api], make_settings: Callable[..., Settings], model_path: Path
) -> None:
    settings = make_settings(
        model_path=model_path,
        inference_runtime="torch",
        encrypt_storage=True,
        data_encryption_key=ENCRYPTION_KEY,
    )
    api = make_api(settings)
    api.add_user("gp1", "gp")
    photo = sharp_photo()
    body = upload(api.client, camera("gp1"), photo).json()
    [blob] = blob_files(api)
    assert blob.suffix == ".enc"
    assert photo[200:400] not in blob.read_bytes()
    with api.container.db.session() as session:
        sealed = session.get(ImageRow, body["image_id"]).probabilities
    assert (
        api.container.sealer.open(sealed, f"image-probabilities:{body['image_id']}") not in sealed
    )
    confidences = stored_prediction(api, body["image_id"])["probabilities"]
    assert confidences == {p["label"]: pytest.approx(p["confidence"]) for p in body["predictions"]}
    assert api.client.get(f"/images/gp1/{body['image_id']}.jpg").content == photo


def test_token_upload_without_case_allocates_one(served: Api) -> None:
    response = upload(served.client, served.headers("gp1"))
    assert response.json()["case_id"] == "10000"
    assert stored_counts(served) == (1, 1)


def test_predict_only_stores_nothing_and_allocates_no_id(served: Api) -> None:
    headers = served.headers("gp1")
    for params in ({"predict_only": "true"}, {"predict_only": "true", "case_id": "10000"}):
        response = upload(served.client, headers, **params)
        assert response.status_code == 200
        assert response.json()["status"] == "success"
        assert response.json()["case_id"] == params.get("case_id")
    assert stored_counts(served) == (0, 0)
    assert blob_files(served) == []
    assert served.as_user("gp1").post("/cases/next-id").json() == {"case_id": "10000"}


def test_blurry_photo_answers_fail_and_is_not_attached(served: Api) -> None:
    gp = served.as_user("gp1")
    case_id = gp.post("/cases/next-id").json()["case_id"]
    response = upload(served.client, camera("gp1"), blurry_photo(), case_id=case_id)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "fail"
    threshold = served.container.settings.blur_threshold
    assert (
        body["message"]
        == f"Image is too blurry (score={body['blur_score']:.2f}, threshold={threshold})"
    )
    assert body["blur_score"] < threshold
    assert len(body["predictions"]) == 7
    assert served.client.get(f"/images/gp1/{body['image_id']}.jpg").status_code == 404
    assert stored_counts(served) == (0, 1)
    assert blob_files(served) == []
    assert gp.post("/cases/release-id", json={"case_id": case_id}).json()["status"] == "ok"


def test_a_header_claiming_admin_gets_a_gp_nothing_more(served: Api) -> None:
    others = served.as_user("gp2").post("/cases/next-id").json()["case_id"]
    response = upload(served.client, {"X-User-Id": "gp1", "X-User-Role": "admin"}, case_id=others)
    assert response.status_code == 404
    assert stored_counts(served) == (0, 1)
    own = upload(served.client, {"X-User-Id": "gp1", "X-User-Role": "admin"})
    assert own.json()["user_role"] == "gp"


def test_the_camera_header_only_adds_photos_to_the_gps_own_cases(served: Api) -> None:
    """With no credentials, X-User-Id names a GP; naming a doctor or admin (who could reach
    everybody's cases) is refused, and another GP's case is unknown, as to any stranger."""
    served.add_user("doc", "doctor")
    served.add_user("boss", "admin")
    gp2_case = served.as_user("gp2").post("/cases/next-id").json()["case_id"]
    for reviewer in ("doc", "boss"):
        refused = upload(served.client, camera(reviewer), case_id=gp2_case)
        assert refused.status_code == 401
        assert "GP accounts only" in refused.json()["detail"]
    stranger = upload(served.client, camera("gp1"), case_id=gp2_case)
    assert stranger.status_code == 404
    assert stranger.json() == {"detail": "Unknown case_id; request one from POST /cases/next-id"}
    assert stored_counts(served) == (0, 1)
    own = upload(served.client, camera("gp2"), case_id=gp2_case)
    assert own.status_code == 200
    assert own.json()["case_id"] == gp2_case


def test_a_signed_in_doctor_cannot_attach_photos_to_a_gps_case(served: Api) -> None:
    served.add_user("doc", "doctor")
    served.add_user("boss", "admin")
    gp2_case = served.as_user("gp2").post("/cases/next-id").json()["case_id"]
    refused = upload(served.client, served.headers("doc"), case_id=gp2_case)
    assert refused.status_code == 403
    assert stored_counts(served) == (0, 1)
    # Prediction only changes nothing, so a reviewer may still re-classify a case's photo.
    checked = upload(served.client, served.headers("doc"), case_id=gp2_case, predict_only="true")
    assert checked.status_code == 200
    admin = upload(served.client, served.headers("boss"), case_id=gp2_case)
    assert admin.status_code == 200
    assert stored_counts(served) == (1, 1)


def test_unknown_case_is_refused_before_any_image_work(served: Api) -> None:
    response = upload(served.client, camera("gp1"), case_id="99999")
    assert response.status_code == 404
    assert stored_counts(served) == (0, 0)


@pytest.mark.parametrize(
    ("label", "data", "status"),
    [
        ("text", b"hello, I am a text file\n" * 20, 400),
        ("truncated-jpeg", jpeg_bytes()[:3000], 400),
        ("zero-bytes", b"", 400),
        ("1x1", None, 400),
        ("gif", None, 415),
        ("png-20000x20000", None, 413),
    ],
)
def test_bad_photos_get_4xx_json_and_leave_nothing(
    served: Api, label: str, data: bytes | None, status: int
) -> None:
    if label == "1x1":
        buffer = io.BytesIO()
        Image.new("RGB", (1, 1)).save(buffer, format="PNG")
        data = buffer.getvalue()
    elif label == "gif":
        buffer = io.BytesIO()
        Image.new("RGB", (100, 100)).save(buffer, format="GIF")
        data = buffer.getvalue()
    elif label == "png-20000x20000":
        data = png_bomb()
    case_id = served.as_user("gp1").post("/cases/next-id").json()["case_id"]
    started = time.perf_counter()
    response = upload(served.client, camera("gp1"), data, case_id=case_id)
    assert response.status_code == status, response.text
    assert isinstance(response.json()["detail"], str)
    assert time.perf_counter() - started < 2
    assert stored_counts(served) == (0, 1)
    assert blob_files(served) == []


def test_thirty_megabytes_of_random_bytes_is_413(served: Api) -> None:
    data = np.random.default_rng(0).integers(0, 256, 30 * 1024 * 1024, dtype=np.uint8).tobytes()
    response = upload(served.client, camera("gp1"), data)
    assert response.status_code == 413
    assert stored_counts(served) == (0, 0)


def test_a_phone_sized_photo_never_touches_a_temp_file(
    served: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The part is kept in memory (the photo is read whole anyway): no temp-file spooling."""

    def refuse(_self: object) -> None:
        raise AssertionError("the upload was spooled to a temp file")

    monkeypatch.setattr(tempfile.SpooledTemporaryFile, "rollover", refuse)
    photo = sharp_photo((2000, 1500))
    assert len(photo) > 2 * 1024 * 1024
    response = upload(served.client, camera("gp1"), photo)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "success"


@pytest.mark.parametrize("mode", ["CMYK", "I;16"])
def test_cmyk_and_16_bit_photos_are_converted_and_classified(served: Api, mode: str) -> None:
    rgb = Image.open(io.BytesIO(sharp_photo()))
    if mode == "CMYK":
        image, fmt = rgb.convert("CMYK"), "JPEG"
    else:
        grey = np.asarray(rgb.convert("L"), dtype=np.uint16) * 257
        image, fmt = Image.fromarray(grey), "PNG"
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    response = upload(served.client, camera("gp1"), buffer.getvalue())
    assert response.status_code == 200
    stored = served.client.get(f"/images/gp1/{response.json()['image_id']}.jpg")
    assert Image.open(io.BytesIO(stored.content)).mode in ("RGB", "L")


def test_onnx_runtime_serves_the_same_probabilities(
    make_api: Callable[..., Api], make_settings: Callable[..., Settings], model_path: Path
) -> None:
    results = []
    for runtime in ("torch", "onnx"):
        api = make_api(make_settings(model_path=model_path, inference_runtime=runtime))
        api.add_user(f"gp_{runtime}", "gp")
        body = upload(api.client, camera(f"gp_{runtime}"), predict_only="true").json()
        results.append({p["label"]: p["confidence"] for p in body["predictions"]})
    for label in CLASS_NAMES:
        assert abs(results[0][label] - results[1][label]) < 1e-4


def test_broken_model_file_stops_start_up(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    from allcare.container import Container
    from allcare.core.config import ConfigError

    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="MODEL_PATH"):
        Container.start(make_settings(model_path=broken))


def test_model_path_is_registered_in_production_and_reported(served: Api) -> None:
    model = served.client.get("/health").json()["model"]
    assert model["loaded"] is True
    assert re.fullmatch(r"v\d{8}_001", model["version"])
    admin = served.add_user("admin1", "admin")
    registry = served.as_user(admin).get("/admin/models").json()
    assert registry["current_production"] == registry["active_inference"] == model["version"]
    [entry] = registry["models"]
    assert (entry["status"], entry["source"], entry["source_name"]) == (
        "production",
        "model_path",
        "tiny.pt",
    )


def test_model_swap_under_concurrent_uploads_loses_no_request(served: Api, tmp_path: Path) -> None:
    replacement = tiny_torchscript(tmp_path / "favours_mel.pt", favour=4)
    old_version = served.container.engine.model.version

    def send(n: int) -> tuple[int, str]:
        with httpx.Client(base_url=url, timeout=30) as client:
            response = upload(client, camera("gp1"), sharp_photo(seed=n), predict_only="true")
            return response.status_code, response.json().get("model_version", "")

    with live_server(served.client.app) as url, ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(send, n) for n in range(48)]
        time.sleep(0.2)
        served.container.engine.replace(replacement, "mel-lover")
        results = [f.result() for f in futures]
        after = send(99)
    assert all(status == 200 for status, _ in results)
    assert {version for _, version in results} <= {old_version, "mel-lover"}
    assert after == (200, "mel-lover")


def test_full_queue_answers_503_with_retry_after(
    make_api: Callable[..., Api], make_settings: Callable[..., Settings], model_path: Path
) -> None:
    api = make_api(
        make_settings(
            model_path=model_path,
            inference_runtime="torch",
            inference_queue_size=1,
            batch_max_size=1,
        )
    )
    api.add_user("gp1", "gp")
    runner = api.container.engine.model.runner
    gate = threading.Event()
    real_run = runner.run
    runner.run = lambda batch: (gate.wait(20), real_run(batch))[1]  # type: ignore[method-assign]
    with live_server(api.client.app) as url, ThreadPoolExecutor(4) as pool:

        def send() -> httpx.Response:
            with httpx.Client(base_url=url, timeout=30) as client:
                return upload(client, camera("gp1"), predict_only="true")

        first = pool.submit(send)
        while api.container.engine.queue_depth or api.container.engine.images_run:
            time.sleep(0.01)
        time.sleep(0.3)  # the first request is inside the blocked model
        second = pool.submit(send)
        while not api.container.engine.queue_depth:
            time.sleep(0.01)
        refused = send()
        gate.set()
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert "retry" in refused.json()["detail"]
        assert first.result().status_code == 200
        assert second.result().status_code == 200


@pytest.mark.skipif(not HAM.exists(), reason="ham10000-dev data set not present")
def test_real_lesion_photos_pass_and_their_blurred_copies_fail(served: Api) -> None:
    files = sorted((HAM / "fullres" / "images").glob("*.jpg"))[:10]
    files += sorted((HAM / "images").glob("*.jpg"))[:10]
    for path in files:
        original = path.read_bytes()
        sharp = upload(served.client, camera("gp1"), original, predict_only="true").json()
        assert sharp["status"] == "success", (path.name, sharp["blur_score"])
        image = Image.open(path)
        blurred = image.filter(ImageFilter.GaussianBlur(0.01 * min(image.size) * 2))
        buffer = io.BytesIO()
        blurred.save(buffer, format="JPEG", quality=90)
        soft = upload(served.client, camera("gp1"), buffer.getvalue(), predict_only="true").json()
        assert soft["status"] == "fail", (path.name, soft["blur_score"])


def test_without_a_model_the_answer_is_503_and_nothing_is_stored(api: Api) -> None:
    api.add_user("gp1", "gp")
    case_id = api.as_user("gp1").post("/cases/next-id").json()["case_id"]
    response = upload(api.client, camera("gp1"), case_id=case_id)
    assert response.status_code == 503
    assert response.json() == {
        "detail": "Model not loaded: set MODEL_PATH to a model file, or promote a registered "
        "version (allcare models promote VERSION)"
    }
    assert stored_counts(api) == (0, 1)


@pytest.mark.parametrize(
    ("headers", "status", "detail"),
    [
        ({}, 400, "Missing Authorization header or X-User-Id header"),
        ({"X-User-Id": "!!!"}, 400, "Missing Authorization header or X-User-Id header"),
        ({"X-User-Id": "ghost", "X-User-Role": "admin"}, 401, "Unknown or disabled user"),
        ({"X-User-Id": "off", "X-User-Role": "gp"}, 401, "Unknown or disabled user"),
    ],
)
def test_legacy_headers_refused(
    served: Api, headers: dict[str, str], status: int, detail: str
) -> None:
    served.add_user("off", "gp", disabled=True)
    response = upload(served.client, headers)
    assert response.status_code == status
    assert response.json() == {"detail": detail}
    assert stored_counts(served) == (0, 0)


def test_legacy_headers_work_nowhere_else(api: Api) -> None:
    api.add_user("boss", "admin")
    legacy = {"X-User-Id": "boss", "X-User-Role": "admin"}
    for method, path in [("GET", "/cases"), ("POST", "/cases/next-id")]:
        response = api.client.request(method, path, headers=legacy)
        assert response.status_code == 401, path


def test_legacy_headers_can_be_turned_off(
    make_api: Callable[..., Api], make_settings: Callable[..., Settings], model_path: Path
) -> None:
    api = make_api(make_settings(legacy_identity_headers=False, model_path=model_path))
    api.add_user("gp1", "gp")
    assert upload(api.client, camera("gp1")).status_code == 401
    assert upload(api.client, api.headers("gp1")).status_code == 200


def test_missing_file_is_422_and_bad_case_id_400(served: Api) -> None:
    headers = served.headers("gp1")
    assert served.client.post("/check-image", headers=headers).status_code == 422
    response = upload(served.client, headers, case_id="12/../3")
    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid case_id"}


def test_upload_limit_is_configurable(
    make_api: Callable[..., Api], make_settings: Callable[..., Settings], model_path: Path
) -> None:
    api = make_api(make_settings(max_upload_bytes=20_000, model_path=model_path))
    api.add_user("gp1", "gp")
    response = upload(api.client, camera("gp1"), sharp_photo((800, 800)))
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]
