"""PyTorch is optional: a serving-only install (no ``[train]`` extra) has ONNX Runtime only.
What needs torch asks here first, so its refusal names the fix instead of an ImportError."""

from __future__ import annotations

from importlib.util import find_spec

TRAIN_EXTRA = "install the [train] extra (scripts/bootstrap.sh train, or pip install -e '.[train]')"


def torch_installed() -> bool:
    return find_spec("torch") is not None


def needs_torch(what: str) -> str | None:
    """None when torch is installed, else the sentence that says what to do."""
    if torch_installed():
        return None
    return f"{what} needs PyTorch, which this install does not have: {TRAIN_EXTRA}"
