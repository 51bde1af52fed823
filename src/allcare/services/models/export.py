"""``allcare export-model``: a registered model as TorchScript or ONNX, proven equal.

The export must give the same probabilities as the source (within 1e-4, ml/portable.py) before
it is written under its final name, durably (core/durable.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

from allcare.core.config import Settings
from allcare.core.durable import durable_path
from allcare.ml.model_file import read_model
from allcare.ml.portable import FORMATS, ExportFormat, export_difference, export_module
from allcare.services.errors import InvalidInput
from allcare.services.models.registry import get_version, model_file
from allcare.store.db import Database

TOLERANCE = 1e-4


@dataclass(frozen=True)
class Export:
    version_id: str
    format: str
    out: Path
    max_difference: float


def export_version(
    settings: Settings, db: Database, version_id: str, fmt: str, out: Path
) -> Export:
    if fmt not in FORMATS:
        raise InvalidInput(f"Unknown format {fmt!r}; use torchscript or onnx")
    chosen = cast(ExportFormat, fmt)
    with db.session() as session:
        source = model_file(settings, get_version(session, version_id))
    _, module = read_model(source, trust_pickle=settings.model_trust_pickle)
    with durable_path(out, keep_suffix=True) as temp:
        export_module(module, chosen, temp)
        difference = export_difference(module, temp, chosen, settings.storage_root / "model-cache")
        if difference > TOLERANCE:
            raise InvalidInput(
                f"The {fmt} export of {version_id} differs from the source by {difference:.2e}"
            )
    return Export(version_id, fmt, out, difference)
