"""Fixtures shared by the API tests: a clinic with a small real model, and a learning loop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from allcare.core.config import Settings
from tests.conftest import Api
from tests.learning import start_clinic
from tests.models import tiny_torchscript


@pytest.fixture
def make_clinic(
    make_api: Callable[..., Api], make_settings: Callable[..., Settings], tmp_path: Path
) -> Callable[..., Api]:
    """Two GPs, a doctor and an admin, and a tiny TorchScript model serving /check-image; the
    keyword arguments override settings."""

    def start(**overrides: object) -> Api:
        model = tiny_torchscript(tmp_path / "tiny.pt")
        api = make_api(make_settings(model_path=model, inference_runtime="torch", **overrides))
        for user, role in (("gp1", "gp"), ("gp2", "gp"), ("doc1", "doctor"), ("admin1", "admin")):
            api.add_user(user, role)
        return api

    return start


@pytest.fixture
def clinic(make_clinic: Callable[..., Api]) -> Api:
    return make_clinic()


@pytest.fixture
def loop(
    make_api: Callable[..., Api], make_settings: Callable[..., Settings], tmp_path: Path
) -> Callable[..., Api]:
    """Starts a clinic whose production MobileNetV3 favours the class given."""
    return lambda favour, **overrides: start_clinic(
        make_api, make_settings, tmp_path, favour, **overrides
    )
