"""``allcare export-model``: a registered model as TorchScript or ONNX, proven equal.

The export is loaded back the way the server loads models and must give the same probabilities
as the source (within 1e-4) on random images before it is written under its final name.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from allcare.core.config import Settings
from allcare.ml.loading import ModelOptions, load_model
from allcare.ml.model_file import read_model
from allcare.ml.preprocess import INPUT_SIZE
from allcare.ml.runners import softmax
from allcare.ml.torch_runtime import export_onnx, torch_output
from allcare.services.errors import InvalidInput
from allcare.services.registry import get_version, model_file
from allcare.store.db import Database

TOLERANCE = 1e-4
FORMATS = ("torchscript", "onnx")


def export_version(
    settings: Settings, db: Database, version_id: str, fmt: str, out: Path
) -> dict[str, Any]:
    if fmt not in FORMATS:
        raise InvalidInput(f"Unknown format {fmt!r}; use torchscript or onnx")
    with db.session() as session:
        source = model_file(settings, get_version(session, version_id))
    _, module = read_model(source, trust_pickle=settings.model_trust_pickle)
    module.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".onnx" if fmt == "onnx" else ".pt"
    fd, temp_name = tempfile.mkstemp(dir=out.parent, prefix=".", suffix=f".partial{suffix}")
    os.close(fd)
    temp = Path(temp_name)
    try:
        example = torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE)
        if fmt == "onnx":
            export_onnx(module, temp)
        else:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # TorchScript is deprecated upstream
                torch.jit.trace(module, example).save(str(temp))
        difference = _difference(module, temp, fmt, settings)
        if difference > TOLERANCE:
            raise InvalidInput(
                f"The {fmt} export of {version_id} differs from the source by {difference:.2e}"
            )
        os.replace(temp, out)
    finally:
        temp.unlink(missing_ok=True)
    return {"version_id": version_id, "format": fmt, "out": str(out), "max_difference": difference}


def _difference(module: torch.nn.Module, exported: Path, fmt: str, settings: Settings) -> float:
    sample = np.random.default_rng(0).standard_normal((4, 3, INPUT_SIZE, INPUT_SIZE))
    sample = sample.astype(np.float32)
    runtime = "onnx" if fmt == "onnx" else "torch"
    options = ModelOptions(runtime, "cpu", 2, settings.storage_root / "model-cache")
    loaded = load_model(exported, options, f"export-check-{fmt}")
    got = softmax(loaded.runner.run(sample).logits)
    expected = softmax(torch_output(module, sample).logits)
    return float(np.abs(got - expected).max())
