"""Converts a PyTorch model file to ONNX in a child process, so the server never imports torch
(importing it alone costs about 550 MB of resident memory).

The export is cached by the source file's sha256, next to the source when that folder is
writable, else in a fallback folder, with a JSON sidecar describing the source. The child
checks that ONNX Runtime gives the same probabilities as PyTorch before the export is used.

    python -m allcare.ml.onnx_export SOURCE TARGET [--trust-pickle]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from allcare.core.durable import durable_path, write_durably
from allcare.ml.model_source import ModelLoadError
from allcare.ml.optional import needs_torch
from allcare.ml.preprocess import INPUT_SIZE
from allcare.ml.runners import Runner

log = logging.getLogger(__name__)
# What matters to a user is the answer: the same class and probabilities within 0.1
# percentage point. Float32 kernels of the two runtimes sum in different orders, so logits of
# deep networks differ by ~1e-4 after a faithful export; a tighter bound threw trained
# candidates away for rounding (issue 13).
PROBABILITY_TOLERANCE = 1e-3
FEATURE_TOLERANCE = 1e-3
EXPORT_TIMEOUT_S = 900


# Bumped when the exported graph changes (v2: a second output with the penultimate features).
EXPORT_FORMAT = "v2"


def cache_name(source: Path, sha256: str) -> str:
    return f".{source.name}.{sha256[:16]}.{EXPORT_FORMAT}.onnx"


def sidecar(onnx_path: Path) -> Path:
    return onnx_path.with_name(onnx_path.name + ".json")


def cached_or_exported(
    source: Path, sha256: str, fallback_dir: Path, trust_pickle: bool
) -> tuple[Path, dict[str, Any]]:
    folders = [source.parent, fallback_dir]
    for folder in folders:
        candidate = folder / cache_name(source, sha256)
        if candidate.is_file() and sidecar(candidate).is_file():
            return candidate, json.loads(sidecar(candidate).read_text())
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        if os.access(folder, os.W_OK):
            target = folder / cache_name(source, sha256)
            log.info(
                "Exporting %s to ONNX as %s (once per model file; this can take a minute)",
                source,
                target,
            )
            return target, export_in_subprocess(source, target, trust_pickle)
    raise ModelLoadError(f"No writable folder for the ONNX export of {source}")


def export_in_subprocess(source: Path, target: Path, trust_pickle: bool) -> dict[str, Any]:
    missing = needs_torch(f"Serving the PyTorch file {source.name} (its ONNX export)")
    if missing:
        raise ModelLoadError(
            f"{missing}; or serve an .onnx file, or copy this file's export ({target.name} and "
            "its .json) from a machine that has PyTorch into the same folder"
        )
    command = [sys.executable, "-m", "allcare.ml.onnx_export", str(source), str(target)]
    if trust_pickle:
        command.append("--trust-pickle")
    try:
        done = subprocess.run(  # noqa: S603 - our own module, arguments are paths
            command, capture_output=True, text=True, timeout=EXPORT_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ModelLoadError(f"Exporting {source} to ONNX took over {EXPORT_TIMEOUT_S} s") from exc
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelLoadError(reason.removeprefix("ModelLoadError: "))
    return json.loads(sidecar(target).read_text())


def export(source: Path, target: Path, trust_pickle: bool) -> dict[str, Any]:
    from allcare.ml.model_file import read_model
    from allcare.ml.runners import OnnxRunner
    from allcare.ml.torch_runtime import export_onnx, with_features

    model_source, module = read_model(source, trust_pickle=trust_pickle)
    module = with_features(module)
    with durable_path(target, keep_suffix=True) as temp:
        try:
            export_onnx(module, temp)
        except Exception as exc:
            raise ModelLoadError(f"Cannot export {source} to ONNX: {exc}") from exc
        difference, drift, same_class = _agreement(OnnxRunner(temp, "cpu", 1), module)
        if difference > PROBABILITY_TOLERANCE or drift > FEATURE_TOLERANCE or not same_class:
            raise ModelLoadError(
                f"The ONNX export of {source} differs from PyTorch: probabilities by "
                f"{difference:.2e} (tolerance {PROBABILITY_TOLERANCE}), features by {drift:.2e} "
                f"(tolerance {FEATURE_TOLERANCE}), same classes: {same_class}; use "
                "INFERENCE_RUNTIME=torch for this model"
            )
    metadata = {
        "source_sha256": model_source.sha256,
        "format": model_source.format.value,
        "architecture": model_source.architecture,
        "max_difference": difference,
        "feature_drift": drift,
    }
    write_durably(sidecar(target), json.dumps(metadata).encode())
    return metadata


def _agreement(runner: Runner, module: Any) -> tuple[float, float, bool]:
    """Largest probability difference, relative feature drift, and whether every top class
    agrees, on four random images."""
    from allcare.ml.runners import softmax
    from allcare.ml.torch_runtime import torch_output

    sample = np.random.default_rng(0).standard_normal((4, 3, INPUT_SIZE, INPUT_SIZE))
    sample = sample.astype(np.float32)
    exported, expected = runner.run(sample), torch_output(module, sample)
    difference = float(np.abs(softmax(exported.logits) - softmax(expected.logits)).max())
    same_class = bool((exported.logits.argmax(axis=1) == expected.logits.argmax(axis=1)).all())
    drift = 0.0
    if exported.features is not None and expected.features is not None:
        scale = max(1.0, float(np.abs(expected.features).max()))
        drift = float(np.abs(exported.features - expected.features).max()) / scale
    return difference, drift, same_class


def main() -> None:
    parser = argparse.ArgumentParser(description="Export a PyTorch model file to ONNX.")
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--trust-pickle", action="store_true")
    args = parser.parse_args()
    try:
        print(json.dumps(export(args.source, args.target, args.trust_pickle)))
    except ModelLoadError as exc:
        print(f"ModelLoadError: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


if __name__ == "__main__":
    main()
