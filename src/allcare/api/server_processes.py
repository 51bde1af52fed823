"""``allcare serve --workers N``: N server processes on one socket, one data directory and one
PostgreSQL, supervised by uvicorn (which restarts a process that dies).

The parent holds the data directory's lock and has run the one-time start-up steps
(``Container.prepare``); each process then starts its own container with ``prepared=True``, so
none sweeps files or fails runs that a sibling is still writing. Throttles, ids and the model
pointer are in PostgreSQL, so the processes behave as one server. uvicorn pickles its
configuration into each process: the app is named by its import path and built there.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile

from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from allcare.api.app import create_app
from allcare.api.metrics import MULTIPROCESS_DIR
from allcare.api.server import ProcessHttpProtocol, http_limits, uvicorn_config
from allcare.container import Container
from allcare.core.config import Settings, load_settings
from allcare.core.logging import configure_logging
from allcare.core.processes import die_with_parent

log = logging.getLogger(__name__)


def serve_processes(settings: Settings, count: int) -> None:
    """Run ``count`` processes until SIGINT or SIGTERM (in the parent, after ``prepare``).

    Each process gets its share of the cores unless INFERENCE_THREADS / DECODE_WORKERS say
    otherwise; request metrics are summed over the processes through prometheus_client's
    multiprocess mode, in a folder that lives as long as the parent.
    """
    cores, decode = settings.thread_budget
    os.environ.setdefault("INFERENCE_THREADS", str(max(1, cores // count)))
    os.environ.setdefault("DECODE_WORKERS", str(max(1, decode // count)))
    metrics_dir = tempfile.mkdtemp(prefix="allcare-metrics-")
    os.environ[MULTIPROCESS_DIR] = metrics_dir
    try:
        config = uvicorn_config(
            f"{__name__}:process_app",
            settings,
            factory=True,
            workers=count,
            http=f"{ProcessHttpProtocol.__module__}:{ProcessHttpProtocol.__name__}",
        )
        sockets = [config.bind_socket()]
        Multiprocess(config, sockets=sockets).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def process_app() -> FastAPI:
    """The app of one process (uvicorn's factory). A process whose start fails exits with
    uvicorn's start-up failure code, which stops the parent instead of a restart loop."""
    parent = multiprocessing.parent_process()
    # A SIGKILLed parent must not leave processes serving (nor one that was still starting).
    die_with_parent(signal.SIGTERM, parent=parent.pid if parent else None)
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    ProcessHttpProtocol.limits = http_limits(settings)
    try:
        container = Container.start(settings, prepared=True)
    except Exception as exc:
        log.error("Server process %d did not start: %s", os.getpid(), exc)
        sys.exit(STARTUP_FAILURE)
    return create_app(settings, container=container)
