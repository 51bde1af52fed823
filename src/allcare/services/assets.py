"""Model files an administrator drops into MODEL_ASSETS_DIR (contract 2.23, 2.24).

Only bare file names with a model extension are accepted; activating one registers it (once, by
sha256) and serves it only after it loaded, and the choice survives restarts (D12).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from allcare.core.config import Settings
from allcare.ml.model_source import sha256_file
from allcare.services.deployment import Deployment
from allcare.services.errors import InvalidInput, NotFound
from allcare.services.principal import Principal
from allcare.services.registry import Pointer, Source, pointer
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


def list_assets(session: Session, settings: Settings) -> dict[str, Any]:
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
            {
                "file_name": path.name,
                "path": str(path),
                "size_bytes": stat.st_size,
                "modified_at": datetime.fromtimestamp(stat.st_mtime).isoformat(),
                "is_active": is_active,
            }
        )
    return {
        "status": "ok",
        "assets_dir": str(settings.assets_dir),
        "active_model_path": active_path,
        "active_version": active_id,
        "models": models,
        "total": len(models),
    }


def activate_asset(
    deployment: Deployment, settings: Settings, principal: Principal, file_name: str
) -> dict[str, Any]:
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
    return {
        "status": "ok",
        "message": f"Active inference model set to {name}",
        "active_model_path": str(path),
        "model_loaded": True,
        "version_id": version.id,
    }
