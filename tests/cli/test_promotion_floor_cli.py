"""A promotion by hand below PROMOTION_FLOOR_* needs --force and a reason; the numbers (or
their absence) are in the refusal, the answer and the audit trail."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from allcare.cli import app
from allcare.core.config import Settings
from tests.conftest import Api
from tests.models import tiny_torchscript


def test_a_version_without_held_out_numbers_needs_force(
    make_api: Callable[..., Api],
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = make_api(make_settings(model_path=tiny_torchscript(tmp_path / "a.pt")))
    first.client.__exit__(None, None, None)
    second = make_api(make_settings(model_path=tiny_torchscript(tmp_path / "b.pt", seed=7)))
    second.add_user("admin1", "admin")
    admin = second.as_user("admin1")
    versions = {m["status"]: m["version_id"] for m in admin.get("/admin/models").json()["models"]}
    older = versions["archived"]
    settings = second.container.settings
    monkeypatch.setenv("STORAGE_ROOT", str(settings.storage_root))
    monkeypatch.setenv("DATABASE_URL", settings.sqlalchemy_url)
    monkeypatch.setenv("INFERENCE_RUNTIME", "torch")

    refused = CliRunner().invoke(app, ["models", "promote", older, "--reason", "roll back"])
    assert refused.exit_code == 1
    assert f"{older} was not promoted: no held-out balanced accuracy recorded" in refused.output
    assert admin.get("/admin/models").json()["current_production"] == versions["production"]

    forced = CliRunner().invoke(
        app, ["models", "promote", older, "--reason", "roll back", "--force"]
    )
    assert forced.exit_code == 0, forced.output
    assert "balanced accuracy not recorded" in forced.output
    assert admin.get("/admin/models").json()["current_production"] == older
    [event] = admin.get("/admin/events", params={"type": "model_promoted"}).json()["events"][:1]
    assert "forced below the promotion floor" in event["message"]
