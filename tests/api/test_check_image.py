from collections.abc import Callable

import pytest

from allcare.core.config import Settings
from tests.conftest import Api
from tests.photos import jpeg_bytes


def upload(client, headers: dict[str, str], **params: str):
    files = {"file": ("photo.jpg", jpeg_bytes(), "image/jpeg")}
    return client.post("/check-image", params=params, files=files, headers=headers)


def test_without_a_model_the_answer_is_503_and_nothing_is_stored(api: Api) -> None:
    api.add_user("gp1", "gp")
    response = upload(api.client, api.headers("gp1"))
    assert response.status_code == 503
    assert response.json() == {"detail": "Model not loaded"}
    assert api.as_user("gp1").post("/cases/next-id").json() == {"case_id": "10000"}


def test_legacy_headers_identify_an_existing_user(api: Api) -> None:
    api.add_user("gp1", "gp")
    response = upload(api.client, {"X-User-Id": " gp1 ", "X-User-Role": "admin"})
    assert response.status_code == 503  # identity accepted; the model is what is missing


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
    api: Api, headers: dict[str, str], status: int, detail: str
) -> None:
    api.add_user("off", "gp", disabled=True)
    response = upload(api.client, headers)
    assert response.status_code == status
    assert response.json() == {"detail": detail}


def test_legacy_headers_work_nowhere_else(api: Api) -> None:
    api.add_user("boss", "admin")
    legacy = {"X-User-Id": "boss", "X-User-Role": "admin"}
    for method, path in [("GET", "/cases"), ("POST", "/cases/next-id")]:
        response = api.client.request(method, path, headers=legacy)
        assert response.status_code == 401, path


def test_legacy_headers_can_be_turned_off(
    make_api: Callable[..., Api], make_settings: Callable[..., Settings]
) -> None:
    api = make_api(make_settings(legacy_identity_headers=False))
    api.add_user("gp1", "gp")
    assert upload(api.client, {"X-User-Id": "gp1"}).status_code == 401


def test_missing_file_is_422_and_bad_case_id_400(api: Api) -> None:
    api.add_user("gp1", "gp")
    headers = api.headers("gp1")
    assert api.client.post("/check-image", headers=headers).status_code == 422
    response = upload(api.client, headers, case_id="12/../3")
    assert response.status_code == 400
    assert response.json() == {"detail": "Invalid case_id"}


def test_oversized_upload_is_413(
    make_api: Callable[..., Api], make_settings: Callable[..., Settings]
) -> None:
    api = make_api(make_settings(max_upload_bytes=20_000))
    api.add_user("gp1", "gp")
    files = {"file": ("big.jpg", b"\xff" * 200_000, "image/jpeg")}
    response = api.client.post("/check-image", files=files, headers=api.headers("gp1"))
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]
