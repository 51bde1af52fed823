"""Helpers shared by CLI commands: settings, database sessions and clean error exits."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from sqlalchemy.orm import Session

from allcare.core.config import ConfigError, Settings, load_settings
from allcare.core.passwords import PasswordPolicyError
from allcare.runtime import Runtime
from allcare.services.errors import ServiceError


def fail(message: str) -> typer.Exit:
    typer.secho(f"Error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


def data_settings() -> Settings:
    """The settings, after one stderr line naming the database and data directory they open:
    a command run from the wrong folder (or without STORAGE_ROOT) shows it at once."""
    settings = load_settings()
    typer.echo(
        f"Using database {settings.database_display} and storage root "
        f"{settings.storage_root.resolve()}",
        err=True,
    )
    return settings


@contextmanager
def cli_session() -> Iterator[Session]:
    """A migrated database session; domain and configuration errors end the command cleanly."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        db, _sealer = Runtime.open_store(data_settings())
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    try:
        with db.session() as session:
            yield session
    except (ServiceError, PasswordPolicyError) as exc:
        raise fail(getattr(exc, "detail", str(exc))) from exc
    finally:
        db.dispose()
