"""Model files an administrator drops into MODEL_ASSETS_DIR (contract 2.23, 2.24).

Only bare file names with a model extension are accepted; activating one registers it (once, by
sha256) and serves it only after it loaded, and the choice survives restarts (D12).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from allcare.core.config import Settings
from allcare.ml.model_source import sha256_file
from allcare.services.errors import InvalidInput, NotFound
from allcare.services.models.deployment import Deployment
from allcare.services.models.registry import Pointer, Source, pointer
from allcare.services.principal import Principal
from allcare.store.models import ModelVersion


def _extension_ok(name: str, settings: Settings) -> bool:
    return name.lower().endswith(settings.model_extensions)


def _asset_files(settings: Settings) -> list[Path]:
    folder = settings.assets_dir
    if not folder.is_dir():
        return []
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and _extension_ok(p.name, settings)
    ]
    return sorted(files, key=lambda p: ("torchscript" not in p.name.lower(), p.name))


def _is_active(path: Path, active: ModelVersion | None) -> bool:
    """By content: the same name and size as the active version, then the same sha256."""
    if active is None or active.source_name != path.name or active.size_bytes is None:
        return False
    return path.stat().st_size == active.size_bytes and sha256_file(path) == active.sha256


@dataclass(frozen=True)
class Asset:
    file_name: str
    path: str
    size_bytes: int
    modified_at: str
    is_active: bool


@dataclass(frozen=True)
class AssetListing:
    assets_dir: str
    active_model_path: str | None
    active_version: str | None
    models: list[Asset]


@dataclass(frozen=True)
class AssetActivation:
    file_name: str
    path: str
    version_id: str


def list_assets(session: Session, settings: Settings) -> AssetListing:
    active_id = pointer(session, Pointer.ACTIVE)
    active = session.get(ModelVersion, active_id) if active_id else None
    models = []
    active_path = None
    for path in _asset_files(settings):
        stat = path.stat()
        is_active = _is_active(path, active)
        if is_active:
            active_path = str(path)
        models.append(
            Asset(
                file_name=path.name,
                path=str(path),
                size_bytes=stat.st_size,
                modified_at=datetime.fromtimestamp(stat.st_mtime).isoformat(),
                is_active=is_active,
            )
        )
    return AssetListing(str(settings.assets_dir), active_path, active_id, models)


def activate_asset(
    deployment: Deployment, settings: Settings, principal: Principal, file_name: str
) -> AssetActivation:
    name = file_name.strip()
    if not name or "/" in name or "\\" in name or name.startswith(".") or "\x00" in name:
        raise InvalidInput("Invalid model file_name")
    if not _extension_ok(name, settings):
        raise InvalidInput("Unsupported model extension")
    path = settings.assets_dir / name
    if not path.is_file():
        raise NotFound("Model file not found")
    version = deployment.register_and_activate(
        path,
        Source.ASSET,
        principal.user_id,
        lambda v: f"{principal.user_id} made asset {name} ({v.id}) serve predictions",
    )
    return AssetActivation(name, str(path), version.id)
