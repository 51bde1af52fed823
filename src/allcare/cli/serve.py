"""``allcare serve``: run the API with uvicorn, HTTPS when TLS files are configured."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Annotated

import typer
import uvicorn

from allcare.api.app import create_app
from allcare.api.server import uvicorn_config
from allcare.api.server_processes import serve_processes
from allcare.cli.common import data_settings, fail
from allcare.container import Container
from allcare.core.config import ConfigError
from allcare.core.logging import configure_logging
from allcare.store.data_lock import single_writer


def serve(
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Server processes on this machine's port (PostgreSQL only; each loads the "
            "model and gets its share of the cores).",
        ),
    ] = 1,
) -> None:
    """Run the API server on BACKSERVER_HOST:BACKSERVER_PORT.

    Configured by environment variables only: STORAGE_ROOT (data, default ./storage),
    DATABASE_URL (default SQLite in STORAGE_ROOT), MODEL_PATH, BACKSERVER_HOST/PORT,
    TLS_CERT_FILE/TLS_KEY_FILE, ENCRYPT_STORAGE and DATA_ENCRYPTION_KEY, JWT_SECRET_KEY,
    LOG_LEVEL/LOG_FORMAT, ... The README's "Settings" table lists every one with its default;
    docs/operations.md shows a systemd unit that sets them.
    """
    settings = data_settings()
    configure_logging(settings.log_level, settings.log_format)
    with ExitStack() as held:
        try:
            held.enter_context(single_writer(settings, "serving"))
            if workers > 1:
                Container.prepare(settings, workers)
            else:
                container = Container.start(settings)
        except ConfigError as exc:
            raise fail(str(exc)) from exc
        if workers > 1:
            serve_processes(settings, workers)
        else:
            app = create_app(settings, container=container)
            uvicorn.Server(uvicorn_config(app, settings)).run()
