"""``allcare export-model``: a registered model out, as TorchScript or ONNX."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from allcare.cli.common import cli_store, fail
from allcare.ml.optional import needs_torch
from allcare.services.errors import ServiceError


def export_model(
    version_id: str,
    format: Annotated[str, typer.Option("--format", help="torchscript or onnx")],
    out: Annotated[Path, typer.Option(help="The file to write.")],
) -> None:
    """Write a registered model as TorchScript or ONNX, checked against the source."""
    missing = needs_torch("allcare export-model")
    if missing:
        raise fail(missing)
    from allcare.services.models.export import export_version

    with cli_store() as (settings, db, _sealer):
        try:
            result = export_version(settings, db, version_id, format, out)
        except ServiceError as exc:
            raise fail(exc.detail) from exc
    typer.echo(
        f"Wrote {result.out} ({result.format}); largest probability difference from the "
        f"source: {result.max_difference:.1e}"
    )
