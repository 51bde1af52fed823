"""The ``allcare`` command."""

from __future__ import annotations

import sys
from importlib.metadata import version
from typing import Annotated

import typer

from allcare.cli.audit import audit_app
from allcare.cli.backup import backup_command, move_to_bucket_command, restore_command
from allcare.cli.common import command_group
from allcare.cli.errors import one_line
from allcare.cli.evaluation import evaluation_app
from allcare.cli.export import export_model
from allcare.cli.migrate import migrate
from allcare.cli.models import models_app, train
from allcare.cli.serve import serve
from allcare.cli.users import users_app
from allcare.cli.worker import worker
from allcare.store.private_files import make_private

app = command_group(
    "AllCare Server: skin-lesion triage backend.\n\n"
    "Settings come from environment variables (STORAGE_ROOT, DATABASE_URL, MODEL_PATH, ...; "
    "the README's Settings table lists them all). Commands that open data print the database "
    "and storage root they use on stderr. Run `allcare COMMAND --help` for a command's options."
)


def _version(asked: bool) -> None:
    if asked:
        typer.echo(f"allcare {version('allcare-server')}")
        raise typer.Exit


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """AllCare Server: skin-lesion triage backend."""


app.command()(serve)
app.command()(worker)
app.command()(train)
app.command()(migrate)
app.command("export-model")(export_model)
app.command("backup")(backup_command)
app.command("restore")(restore_command)
app.command("move-to-bucket")(move_to_bucket_command)
app.add_typer(users_app, name="users")
app.add_typer(models_app, name="models")
app.add_typer(audit_app, name="audit")
app.add_typer(evaluation_app, name="evaluation-set")


def main() -> None:
    """The console entry point: a failure is one line on stderr and exit status 1."""
    make_private()  # every file a command writes (database, photos, models, backups) is 0600
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        typer.secho(f"Error: {one_line(exc)}", err=True, fg=typer.colors.RED)
        sys.exit(1)
