"""Helpers shared by CLI commands: settings, database sessions and clean error exits."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from sqlalchemy.orm import Session

from allcare.core.config import ConfigError, load_settings
from allcare.core.passwords import PasswordPolicyError
from allcare.runtime import Runtime
from allcare.services.errors import ServiceError


def fail(message: str) -> typer.Exit:
    typer.secho(f"Error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


@contextmanager
def cli_session() -> Iterator[Session]:
    """A migrated database session; domain and configuration errors end the command cleanly."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        db, _sealer = Runtime.open_store(load_settings())
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    try:
        with db.session() as session:
            yield session
    except (ServiceError, PasswordPolicyError) as exc:
        raise fail(getattr(exc, "detail", str(exc))) from exc
    finally:
        db.dispose()
