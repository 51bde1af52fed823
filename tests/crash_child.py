"""Stores one photo for gp1 and SIGKILLs itself at the crash point given on the command line."""

from __future__ import annotations

import os
import signal
import sys

from sqlalchemy import event
from sqlalchemy.orm import Session

import allcare.core.durable as durable_module
from allcare.container import Container
from allcare.core.config import Settings
from tests.photos import store_photo


def die(*_args: object) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


IMAGE_INSERTED: list[bool] = []


def note_image_insert(_conn: object, _cursor: object, statement: str, *_: object) -> None:
    if statement.lstrip().upper().startswith("INSERT INTO IMAGES"):
        IMAGE_INSERTED.append(True)


def main(crash_point: str) -> None:
    container = Container.start(Settings())
    event.listen(container.db.engine, "before_cursor_execute", note_image_insert)
    if crash_point == "mid_write":
        durable_module.os.replace = die  # type: ignore[assignment] - the temp file is written, not renamed
    elif crash_point == "before_commit":
        event.listen(container.db.engine, "commit", lambda _conn: IMAGE_INSERTED and die())
    elif crash_point == "after_commit":
        event.listen(Session, "after_commit", lambda _session: IMAGE_INSERTED and die())
    store_photo(container, "gp1", None)
    sys.exit("the crash point was never reached")


if __name__ == "__main__":
    main(sys.argv[1])
