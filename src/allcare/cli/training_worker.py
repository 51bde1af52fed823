"""The training worker process: one background run, then exit.

    python -m allcare.cli.training_worker VERSION_ID

Started by the supervisor (services/learning/supervisor.py) with the server's settings in its
environment; the run itself is services/learning/run.py. It trains at a lower CPU priority so
serving keeps its share of the machine.
"""

from __future__ import annotations

import os
import sys

from allcare.container import open_blobs, open_store
from allcare.core.config import load_settings
from allcare.core.logging import configure_logging
from allcare.ml.training import use_training_threads
from allcare.services.learning.run import TrainingRun


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m allcare.cli.training_worker VERSION_ID")
    settings = load_settings()
    configure_logging("info", settings.log_format)
    os.nice(10)  # serving first: training takes the CPU the API leaves
    use_training_threads(settings.training_threads)
    db, sealer = open_store(settings)
    try:
        blobs = open_blobs(settings, db, sealer)
        code = TrainingRun(settings, db, sealer, blobs, sys.argv[1]).execute()
    finally:
        db.dispose()
    raise SystemExit(code)


if __name__ == "__main__":
    main()
