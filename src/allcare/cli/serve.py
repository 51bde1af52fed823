"""``allcare serve``: run the API with uvicorn, HTTPS when TLS files are configured."""

from __future__ import annotations

import logging

import uvicorn

from allcare.api.app import create_app
from allcare.cli.common import fail
from allcare.core.config import ConfigError, load_settings
from allcare.runtime import Runtime


def serve() -> None:
    """Run the API server on BACKSERVER_HOST:BACKSERVER_PORT."""
    settings = load_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        runtime = Runtime.start(settings)
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    uvicorn.run(
        create_app(settings, runtime=runtime),
        host=settings.backserver_host,
        port=settings.backserver_port,
        ssl_certfile=settings.tls_cert_file,
        ssl_keyfile=settings.tls_key_file,
        log_level=settings.log_level.lower(),
        proxy_headers=False,
    )
