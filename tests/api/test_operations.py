"""/metrics, request ids, JSON access logs and the liveness/readiness split."""

import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from allcare.core.config import Settings
from allcare.core.logging import RequestIdFilter
from allcare.store.db import Database
from tests.conftest import Api
from tests.models import tiny_torchscript
from tests.uploads import camera, upload

METRICS_TOKEN = "scrape-" + "m" * 30


@pytest.fixture
def observed(make_api: Callable[..., Api], make_settings: Callable[..., Settings], tmp_path: Path):
    model = tiny_torchscript(tmp_path / "tiny.pt")
    api = make_api(
        make_settings(model_path=model, inference_runtime="torch", metrics_token=METRICS_TOKEN)
    )
    api.add_user("gp1", "gp")
    return api


def scrape(api: Api) -> dict[str, list]:
    response = api.client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}


def sample(families: dict[str, list], name: str, **labels: str) -> float:
    for family in families.values():
        for s in family:
            if s.name == name and labels.items() <= s.labels.items():
                return s.value
    raise AssertionError(f"no sample {name} {labels}")


def test_metrics_report_routes_inference_model_training_and_audit(observed: Api) -> None:
    for _ in range(3):
        assert upload(observed.client, camera("gp1")).status_code == 200
    observed.client.get("/cases")
    families = scrape(observed)
    count = "allcare_http_request_duration_seconds_count"
    assert sample(families, count, method="POST", route="/check-image", status="200") == 3
    assert sample(families, count, method="GET", route="/cases", status="401") == 1
    assert sample(families, "allcare_inference_batch_size_count") == 3
    assert sample(families, "allcare_inference_batch_size_sum") == 3
    assert sample(families, "allcare_inference_queue_depth") == 0
    version = observed.container.engine.model.version
    assert sample(families, "allcare_model_info", version=version) == 1
    assert sample(families, "allcare_model_production_info", version=version) == 1
    assert sample(families, "allcare_model_loaded") == 1
    assert sample(families, "allcare_audit_write_failures_total") == 0
    assert sample(families, "allcare_database_up") == 1
    assert "allcare_training_runs" in families


def test_metric_labels_never_carry_raw_paths(observed: Api) -> None:
    observed.client.get("/images/gp1/0b5a3c9e-1f59-4b8e-9d6e-3f1f7b0f2a11.jpg")
    observed.client.get("/wp-admin/secret")
    families = scrape(observed)
    routes = {
        s.labels["route"] for s in families["allcare_http_request_duration_seconds"] if s.labels
    }
    assert "/images/{user_id}/{file_name}" in routes
    assert "unmatched" in routes
    assert not any("0b5a3c9e" in r or "wp-admin" in r for r in routes)


def test_metrics_need_the_token(observed: Api) -> None:
    assert observed.client.get("/metrics").status_code == 401
    wrong = observed.client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401


def test_metrics_do_not_exist_without_a_token_setting(api: Api) -> None:
    assert api.client.get("/metrics").status_code == 404


def test_every_answer_has_a_request_id_and_a_sane_given_one_is_kept(api: Api) -> None:
    first = api.client.get("/health").headers["X-Request-ID"]
    second = api.client.get("/health").headers["X-Request-ID"]
    assert len(first) == 32
    assert first != second
    kept = api.client.get("/health", headers={"X-Request-ID": "app-123.x"})
    assert kept.headers["X-Request-ID"] == "app-123.x"
    forged = api.client.get("/health", headers={"X-Request-ID": "bad id\nINFO fake"})
    assert forged.headers["X-Request-ID"] != "bad id\nINFO fake"


def test_access_log_lines_carry_the_request_id_and_the_route_template(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.handler.addFilter(RequestIdFilter())
    with caplog.at_level(logging.INFO, logger="allcare.access"):
        response = api.client.get("/images/gp1/0b5a3c9e-1f59-4b8e-9d6e-3f1f7b0f2a11.jpg")
    record = next(r for r in caplog.records if r.name == "allcare.access")
    assert record.request_id == response.headers["X-Request-ID"]
    assert record.route == "/images/{user_id}/{file_name}"
    assert record.status == 404
    assert "0b5a3c9e" not in record.getMessage()


def test_json_log_lines_are_one_object_each(capsys: pytest.CaptureFixture[str]) -> None:
    from allcare.core.logging import configure_logging, request_id

    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("info", "json")
        token = request_id.set("r-1")
        logging.getLogger("allcare.test").info("hello %s", "there", extra={"route": "/cases"})
        request_id.reset(token)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["message"] == "hello there"
    assert line["request_id"] == "r-1"
    assert line["level"] == "INFO"
    assert line["route"] == "/cases"
    assert {"time", "logger"} <= line.keys()


def test_without_a_model_the_server_is_live_but_not_ready(api: Api) -> None:
    assert api.client.get("/health/live").json() == {"status": "ok"}
    no_model = api.client.get("/health/ready")
    assert no_model.status_code == 503
    assert no_model.json()["model"]["loaded"] is False


def test_readiness_needs_the_database_and_liveness_does_not(observed: Api) -> None:
    ready = observed.client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["objects"] == {"ok": True, "backend": "local"}
    observed.container.db.dispose()
    observed.container.db = Database("postgresql+psycopg://nobody@127.0.0.1:1/unreachable")
    assert observed.client.get("/health/ready").status_code == 503
    assert observed.client.get("/health/live").status_code == 200


def test_a_started_server_runs_numpy_blas_on_one_thread(api: Api) -> None:
    """OpenBLAS's pool spins between calls and would take CPU from the inference runtime."""
    from threadpoolctl import threadpool_info

    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas
    assert all(pool["num_threads"] == 1 for pool in blas)


def test_the_decode_thread_logs_under_the_request_id(
    observed: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from allcare.core.logging import request_id
    from allcare.services.cases import photo_checks

    seen: list[str | None] = []
    real_check = photo_checks.check_photo

    def check_photo(data: bytes, limits: object) -> object:
        seen.append(request_id.get())
        return real_check(data, limits)

    monkeypatch.setattr(photo_checks, "check_photo", check_photo)
    response = upload(observed.client, camera("gp1"))
    assert seen == [response.headers["X-Request-ID"]]
