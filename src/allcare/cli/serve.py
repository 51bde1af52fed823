"""``allcare serve``: run the API with uvicorn, HTTPS when TLS files are configured."""

from __future__ import annotations

import uvicorn

from allcare.api.app import create_app
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
    uvicorn.run(
        create_app(settings, runtime=runtime),
        host=settings.backserver_host,
        port=settings.backserver_port,
        ssl_certfile=settings.tls_cert_file,
        ssl_keyfile=settings.tls_key_file,
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's loggers go through ours (JSON, request id)
        access_log=False,  # allcare.access logs each request, by route template
        proxy_headers=False,
    )
