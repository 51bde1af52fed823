"""Helpers shared by CLI commands: settings, database sessions and clean error exits."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from sqlalchemy.orm import Session
from typer.core import TyperArgument, TyperCommand, TyperOption

from allcare.container import open_store
from allcare.core.config import ConfigError, Settings, load_settings
from allcare.core.passwords import PasswordPolicyError
from allcare.services.errors import ServiceError
from allcare.store.crypto import Sealer
from allcare.store.db import Database


class PlainCommand(TyperCommand):
    """Help as git's or pip's reads: ``DATA_DIR`` for an argument, ``INTEGER``/``PATH``/``TEXT``
    or the choices for an option's value (Typer printed ``{data_dir}`` and ``<int range>``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.metavar is not None:
                continue
            if isinstance(param, TyperArgument):
                param.metavar = (param.name or "value").upper()
            elif isinstance(param, TyperOption) and not param.is_flag:
                param.metavar = _value_name(param)

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = str(param.metavar) + ("..." if param.nargs != 1 else "")
                pieces.append(name if param.required else f"[{name}]")
        return pieces


def _value_name(option: TyperOption) -> str:
    """From the option's Python annotation (Typer keeps its click types private)."""
    described = option.type_descriptor
    if described.is_choice:
        values = (getattr(c, "value", c) for c in described.choices or ())
        return "[" + "|".join(str(value) for value in values) + "]"
    names = {"int": "INTEGER", "float": "NUMBER", "Path": "PATH", "datetime": "DATETIME"}
    return names.get(option.bare_type(), "TEXT")


class CommandGroup(typer.Typer):
    """A command group with plain help (click's formatting, no rich boxes that printed
    ``<bool>`` beside every flag), no completion installers, no rich tracebacks (``main``
    prints one line)."""

    def __init__(self, help_text: str) -> None:
        super().__init__(
            no_args_is_help=True,
            help=help_text,
            rich_markup_mode=None,
            add_completion=False,
            pretty_exceptions_enable=False,
        )

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", PlainCommand)
        return super().command(*args, **kwargs)


def command_group(help_text: str) -> typer.Typer:
    return CommandGroup(help_text)


def fail(message: str) -> typer.Exit:
    typer.secho(f"Error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code=1)


_ANNOUNCED: set[str] = set()


def data_settings() -> Settings:
    """The settings, after one stderr line naming the database and data directory they open:
    a command run from the wrong folder (or without STORAGE_ROOT) shows it at once."""
    settings = load_settings()
    line = (
        f"Using database {settings.database_display} and storage root "
        f"{settings.storage_root.resolve()}"
    )
    if line not in _ANNOUNCED:  # once per process, however often a command opens the store
        _ANNOUNCED.add(line)
        typer.echo(line, err=True)
    return settings


@contextmanager
def cli_session() -> Iterator[Session]:
    """A migrated database session; domain and configuration errors end the command cleanly."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        db, _sealer = open_store(data_settings())
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    try:
        with db.session() as session:
            yield session
    except (ServiceError, PasswordPolicyError) as exc:
        raise fail(getattr(exc, "detail", str(exc))) from exc
    finally:
        db.dispose()


@contextmanager
def cli_store() -> Iterator[tuple[Settings, Database, Sealer]]:
    """Settings, the migrated database and the key ring; domain errors end the command cleanly."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = data_settings()
        db, sealer = open_store(settings)
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    try:
        yield settings, db, sealer
    except ServiceError as exc:
        raise fail(exc.detail) from exc
    finally:
        db.dispose()
