"""``allcare users ...``: account administration. Passwords come from a prompt or stdin only."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from allcare.cli.common import cli_session, command_group, fail
from allcare.services.accounts import users as accounts

users_app = command_group("Manage user accounts.")

PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise fail("No password on standard input")
        return password
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@users_app.command("add")
def add(
    user_id: str,
    role: Annotated[str, typer.Option(help="gp, doctor or admin")],
    first_name: Annotated[str, typer.Option()] = "",
    last_name: Annotated[str, typer.Option()] = "",
    password_stdin: PasswordStdin = False,
) -> None:
    """Create an account."""
    password = _read_password(password_stdin)
    with cli_session() as session:
        user = accounts.create_user(session, user_id, password, role, first_name, last_name)
    typer.echo(f"Created {user.id} ({user.role})")


@users_app.command("list")
def list_() -> None:
    """List accounts."""
    with cli_session() as session:
        rows = accounts.list_users(session)
    for user in rows:
        state = "disabled" if user.disabled else "active"
        typer.echo(f"{user.id}\t{user.role}\t{state}\t{user.first_name} {user.last_name}".rstrip())


@users_app.command("set-role")
def set_role(user_id: str, role: str) -> None:
    """Change a user's role; their current tokens stop working."""
    with cli_session() as session:
        user = accounts.set_role(session, user_id, role)
    typer.echo(f"{user.id} is now {user.role}")


@users_app.command("reset-password")
def reset_password(user_id: str, password_stdin: PasswordStdin = False) -> None:
    """Set a new password; the user's current tokens stop working."""
    password = _read_password(password_stdin)
    with cli_session() as session:
        accounts.reset_password(session, user_id, password)
    typer.echo(f"Password of {user_id} reset")


@users_app.command("disable")
def disable(user_id: str) -> None:
    """Block sign-in and end current sessions; cases stay."""
    with cli_session() as session:
        accounts.set_disabled(session, user_id, True)
    typer.echo(f"{user_id} disabled")


@users_app.command("enable")
def enable(user_id: str) -> None:
    """Allow a disabled account to sign in again."""
    with cli_session() as session:
        accounts.set_disabled(session, user_id, False)
    typer.echo(f"{user_id} enabled")


@users_app.command("delete")
def delete(user_id: str) -> None:
    """Delete an account that owns no cases or images (otherwise disable it)."""
    with cli_session() as session:
        accounts.delete_user(session, user_id)
    typer.echo(f"{user_id} deleted")


@users_app.command("import")
def import_(path: Path) -> None:
    """Import a legacy users.json; existing accounts are never overwritten."""
    with cli_session() as session:
        report = accounts.import_legacy_users(session, path)
    typer.echo(
        f"added {len(report.added)}, already present {len(report.kept_existing)}, "
        f"invalid {len(report.invalid)}"
    )
    for user_id in report.defaulted_role:
        typer.echo(f"  {user_id}: no valid role, imported as gp")
    for user_id, problem in report.invalid.items():
        typer.echo(f"  {user_id}: skipped, {problem}")
