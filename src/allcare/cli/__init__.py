"""The ``allcare`` command."""

from __future__ import annotations

import typer

from allcare.cli.serve import serve
from allcare.cli.users import users_app

app = typer.Typer(no_args_is_help=True, help="AllCare Server: skin-lesion triage backend.")
app.command()(serve)
app.add_typer(users_app, name="users")
