"""``allcare migrate`` on an old backserver folder built by the test, checked through the HTTP
API; a second run adds nothing; a dry run writes nothing. ``allcare export-model``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from allcare.cli import app
from allcare.core.config import Settings
from allcare.store.models import Case, CaseLabel, Event, Image, ModelVersion, User
from tests.conftest import ENCRYPTION_KEY, Api
from tests.legacy_tree import OLD_KEY, OLD_PASSWORD, build_old_server
from tests.s3_server import S3Server


@pytest.fixture
def old_server(tmp_path: Path):
    return build_old_server(tmp_path / "backserver")


@pytest.fixture
def run(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Callable[..., object]:
    monkeypatch.setenv("STORAGE_ROOT", str(settings.storage_root))
    monkeypatch.setenv("DATABASE_URL", settings.sqlalchemy_url)
    monkeypatch.setenv("INFERENCE_RUNTIME", "torch")
    monkeypatch.setenv("LEGACY_DATA_ENCRYPTION_KEY", OLD_KEY)
    runner = CliRunner()
    return lambda *args, stdin=None: runner.invoke(app, list(args), input=stdin)


def counts(api: Api) -> dict[str, int]:
    with api.container.db.session() as session:
        return {
            model.__name__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (User, Case, Image, CaseLabel, ModelVersion, Event)
        }


def login(api: Api, user_id: str) -> dict[str, str]:
    response = api.client.post("/auth/login", json={"username": user_id, "password": OLD_PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_an_old_clinic_arrives_whole_and_a_second_run_adds_nothing(
    old_server,
    run: Callable[..., object],
    make_api: Callable[..., Api],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The old key is piped in (never an argument: `ps` and shell history would show it).
    monkeypatch.delenv("LEGACY_DATA_ENCRYPTION_KEY")
    result = run(
        "migrate", "--from", str(old_server.root), "--data-encryption-key-stdin", stdin=OLD_KEY
    )
    assert result.exit_code == 0, result.output
    report = result.output
    for expected in (
        "storage/user001/metadata.jsonl:3: not JSON",
        "storage/user002/metadata.jsonl:4: encrypted line cannot be decrypted",
        "photo file is missing",
        "user 'user005' (owner of imported data) is not in users.json: created disabled",
        "the pool says 'mel' for user001/10000, the case record 'nv'",
        "model v20260211_002: its file was not found",
        "labels_pool.jsonl:4: not JSON",
        "event_log.jsonl:3: not JSON",
        "dropout: outside 0.0..0.9",
        "user001/10000 -> ",
        "user002/10000 -> ",
    ):
        assert expected in report, (expected, report)

    api = make_api()
    before = counts(api)
    gp1 = api.client.get("/cases", headers=login(api, "user001")).json()["cases"]
    by_legacy = {c.get("legacy_case_id", c["case_id"]): c for c in gp1}
    assert set(by_legacy) == {"10000", "10001", "10002"}
    renumbered = by_legacy["10000"]
    assert int(renumbered["case_id"]) > 10100  # above every old id, from the global sequence
    assert (renumbered["status"], renumbered["entry_type"], renumbered["age"]) == (
        "Confirmed",
        "case",
        "47",
    )
    assert renumbered["correct_label"] == "nv"
    assert renumbered["annotated_by"] == "user003"
    assert renumbered["annotations"]["boxes"] == [{"left": 1, "top": 2, "width": 3, "height": 4}]
    assert by_legacy["10001"]["case_id"] == "10001"  # unambiguous old ids are kept
    assert by_legacy["10001"]["correct_label"] == "bcc"  # from the labels pool
    assert by_legacy["10001"]["entry_type"] == "reject"
    assert by_legacy["10002"]["entry_type"] == "uncertain"

    a, d = old_server.ids["A"], old_server.ids["D"]
    assert api.client.get(f"/images/user001/{a}.jpg").content == old_server.images[a]
    assert api.client.get(f"/images/user002/{d}.jpg").content == old_server.images[d]  # was .bin
    assert api.client.get(f"/images/user002/{a}.jpg").status_code == 404
    gp2 = api.client.get("/cases", headers=login(api, "user002")).json()["cases"]
    assert {c.get("legacy_case_id", c["case_id"]) for c in gp2} == {"10000", "10005"}

    admin = login(api, "user004")
    registry = api.client.get("/admin/models", headers=admin).json()
    assert registry["current_production"] == registry["active_inference"] == "v20260205_001"
    statuses = {m["version_id"]: m["status"] for m in registry["models"]}
    assert statuses == {"v20260205_001": "production", "v20260211_002": "failed"}
    log = api.client.get("/admin/models/v20260205_001/training-log", headers=admin).json()
    assert log["total_epochs"] == 1
    assert api.container.engine.model.version == "v20260205_001"
    config = api.client.get("/admin/training-config", headers=admin).json()["config"]
    assert (config["epochs"], config["optimizer"], config["dropout"]) == (5, "SGD", 0.3)
    events = api.client.get("/admin/events", headers=admin, params={"limit": 100}).json()
    assert {"training_completed", "model_promoted"} <= {e["type"] for e in events["events"]}
    labels = api.client.get("/admin/labels/count", headers=admin).json()
    assert labels["total_labels"] == 2
    pool = api.client.get("/admin/labels", headers=admin).json()["labels"]
    assert {e["correct_label"]: e["used_in_models"] for e in pool}["bcc"] == ["v20260205_001"]
    candidates = api.client.post(
        "/active-learning/candidates", json={"top_k": 0}, headers=login(api, "user003")
    ).json()
    assert {c.get("legacy_case_id", c["case_id"]) for c in candidates["candidates"]} == {
        "10000",  # user002's
        "10002",
        "10005",
        "10100",
    }
    with api.container.db.session() as session:
        assert session.get(User, "user005").disabled
    new_case = api.client.post("/cases/next-id", headers=login(api, "user001")).json()
    assert int(new_case["case_id"]) > max(int(c["case_id"]) for c in gp1)

    monkeypatch.setenv("LEGACY_DATA_ENCRYPTION_KEY", OLD_KEY)
    again = run("migrate", "--from", str(old_server.root))
    assert again.exit_code == 0, again.output
    assert counts(api) == before | {"Case": before["Case"] + 1}  # only the next-id above
    second_report = again.output.splitlines()
    for kind, already in (("cases", "6"), ("images", "3"), ("models", "2"), ("events", "2")):
        line = next(line for line in second_report if line.startswith(kind))
        assert line.split()[1:3] == ["0", already], line


def test_a_key_on_the_command_line_is_refused_before_anything_is_read(
    old_server, run: Callable[..., object], make_api: Callable[..., Api]
) -> None:
    refused = run("migrate", "--from", str(old_server.root), "--data-encryption-key", OLD_KEY)
    assert refused.exit_code == 1
    assert "visible in `ps` and the shell history" in refused.output
    assert OLD_KEY not in refused.output
    assert counts(make_api())["Case"] == 0


def test_a_dry_run_reports_the_same_and_writes_nothing(
    old_server, run: Callable[..., object], make_api: Callable[..., Api]
) -> None:
    dry = run("migrate", "--from", str(old_server.root), "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "dry run: nothing was written" in dry.output
    cases_line = next(line for line in dry.output.splitlines() if line.startswith("cases"))
    assert cases_line.split()[1] == "6"
    api = make_api()
    assert counts(api) == {
        "User": 0,
        "Case": 0,
        "Image": 0,
        "CaseLabel": 0,
        "ModelVersion": 0,
        "Event": 0,
    }
    assert not list((api.container.settings.storage_root / "blobs").rglob("*.jpg"))


def test_into_an_encrypted_server_and_without_the_old_key(
    old_server,
    run: Callable[..., object],
    make_api: Callable[..., Api],
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENCRYPT_STORAGE", "true")
    monkeypatch.setenv("DATA_ENCRYPTION_KEY", ENCRYPTION_KEY)
    monkeypatch.delenv("LEGACY_DATA_ENCRYPTION_KEY")
    result = run("migrate", "--from", str(old_server.root))
    assert result.exit_code == 0, result.output
    # Without the old key the server's own (new) key is tried: the old lines fail.
    assert "encrypted line cannot be decrypted (wrong key?)" in result.output
    assert "encrypted photo" not in result.output  # its record was encrypted too: never reached
    api = make_api(make_settings(encrypt_storage=True, data_encryption_key=ENCRYPTION_KEY))
    a = old_server.ids["A"]
    assert api.client.get(f"/images/user001/{a}.jpg").content == old_server.images[a]
    blob = next((api.container.settings.storage_root / "blobs").rglob("*.enc"))
    assert old_server.images[a][100:200] not in blob.read_bytes()


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_model_writes_a_checked_copy(
    old_server, run: Callable[..., object], tmp_path: Path, fmt: str
) -> None:
    assert run("migrate", "--from", str(old_server.root)).exit_code == 0
    out = tmp_path / f"exported.{'onnx' if fmt == 'onnx' else 'pt'}"
    result = run("export-model", "v20260205_001", "--format", fmt, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.is_file()
    assert "largest probability difference from the source" in result.output
    assert not list(tmp_path.glob(".*partial*"))
    missing = run("export-model", "v20990101_001", "--format", fmt, "--out", str(out))
    assert missing.exit_code == 1
    assert (
        run("export-model", "v20260205_001", "--format", "pickle", "--out", str(out)).exit_code == 1
    )


@pytest.mark.s3
def test_a_migration_into_a_bucket_is_served_from_it(
    old_server,
    run: Callable[..., object],
    make_api: Callable[..., Api],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    bucket_url: str,
    s3_environment: S3Server,
    tmp_path: Path,
) -> None:
    """BLOB_STORE_URL set: the old photos and models go straight into the bucket."""
    monkeypatch.setenv("BLOB_STORE_URL", bucket_url)
    result = run("migrate", "--from", str(old_server.root))
    assert result.exit_code == 0, result.output
    local = settings.storage_root / "blobs"
    assert not local.exists() or not any(p.is_file() for p in local.rglob("*"))

    # Another machine: nothing local, the same database and bucket.
    api = make_api(
        settings.model_copy(
            update={
                "blob_store_url": bucket_url,
                "s3_endpoint_url": s3_environment.endpoint_url,
                "storage_root": tmp_path / "replica",
                "inference_runtime": "torch",
            }
        )
    )
    a = old_server.ids["A"]
    assert api.client.get(f"/images/user001/{a}.jpg").content == old_server.images[a]
    assert api.container.engine.model.version == "v20260205_001"
