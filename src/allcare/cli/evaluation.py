"""``allcare evaluation-set ...``: the curated set training runs are judged on."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from allcare.cli.common import cli_store, command_group
from allcare.cli.models import ACTOR

evaluation_app = command_group("Choose the evaluation set the promotion gate judges candidates on.")


@evaluation_app.command("register")
def register(
    data_dir: Annotated[Path, typer.Argument(help="Folder with labels.csv and images/.")],
    split: Annotated[str, typer.Option(help="labels.csv split to evaluate on")] = "test",
) -> None:
    """Judge every later run on one split of a labelled folder (grouped by its lesion_id)."""
    from allcare.services.learning.evaluation_set import register_curated

    with cli_store() as (_settings, db, _sealer), db.session() as session:
        described = register_curated(session, data_dir, split, ACTOR)
    typer.echo(
        f"Runs triggered from now on are judged on {described.cases} photos of "
        f"{described.groups} lesions (split {split!r} of {described.data_dir})"
    )


@evaluation_app.command("show")
def show() -> None:
    """Which set the next run is judged on."""
    from allcare.services.learning.evaluation_set import snapshot, summary

    with cli_store() as (_settings, db, _sealer), db.session() as session:
        described = summary(snapshot(session))
    where = f" (split {described.split!r} of {described.data_dir})" if described.split else ""
    typer.echo(
        f"{described.source}{where}: {described.cases} cases, {described.groups} groups, "
        f"{described.photos} photos"
    )


@evaluation_app.command("clear")
def clear() -> None:
    """Back to the clinic's own held-out cases."""
    from allcare.services.learning.evaluation_set import clear_curated

    with cli_store() as (_settings, db, _sealer), db.session() as session:
        cleared = clear_curated(session, ACTOR)
    typer.echo("Runs are judged on the clinic's held-out cases" + ("" if cleared else " (already)"))
