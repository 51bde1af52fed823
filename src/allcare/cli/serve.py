"""``allcare serve``: run the API with uvicorn, HTTPS when TLS files are configured."""

from __future__ import annotations

import uvicorn

from allcare.api.app import create_app
from allcare.api.server import uvicorn_config
from allcare.cli.common import fail
from allcare.core.config import ConfigError, load_settings
from allcare.core.logging import configure_logging
from allcare.runtime import Runtime


def serve() -> None:
    """Run the API server on BACKSERVER_HOST:BACKSERVER_PORT."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        runtime = Runtime.start(settings)
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    uvicorn.Server(uvicorn_config(create_app(settings, runtime=runtime), settings)).run()
