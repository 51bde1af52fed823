import os
import stat
from pathlib import Path

import pytest

from allcare.core.config import PLACEHOLDER_JWT_SECRET, ConfigError, Settings
from allcare.core.tokens import resolve_jwt_secret


def test_defaults_are_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.api_key.get_secret_value() == ""
    assert settings.jwt_secret_key is None
    assert settings.sqlalchemy_url == "sqlite:///storage/allcare.db"
    assert settings.legacy_identity_headers is True
    assert settings.max_upload_bytes == 15 * 1024 * 1024


def test_environment_names_follow_the_legacy_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_DIR", "/srv/allcare")
    monkeypatch.setenv("ENCRYPT_STORAGE", "yes")
    monkeypatch.setenv("CASE_ID_START", "20000")
    monkeypatch.setenv("ALLOWED_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db/allcare")
    settings = Settings()
    assert settings.storage_root == Path("/srv/allcare")
    assert settings.encrypt_storage is True
    assert settings.case_id_start == 20000
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.sqlalchemy_url == "postgresql+psycopg://u:p@db/allcare"


def test_generated_secret_is_stored_0600_and_reused(tmp_path: Path) -> None:
    settings = Settings(storage_root=tmp_path)
    first = resolve_jwt_secret(settings)
    path = tmp_path / ".jwt_secret"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(first) >= 32
    assert resolve_jwt_secret(settings) == first


@pytest.mark.parametrize("secret", [PLACEHOLDER_JWT_SECRET, "short"])
def test_weak_secrets_are_refused(tmp_path: Path, secret: str) -> None:
    with pytest.raises(ConfigError, match="JWT_SECRET_KEY"):
        resolve_jwt_secret(Settings(storage_root=tmp_path, jwt_secret_key=secret))
