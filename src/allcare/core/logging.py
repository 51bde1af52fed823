"""Log lines as JSON objects (or plain text), each carrying the id of the request it belongs to."""

from __future__ import annotations

import logging
import traceback
from contextvars import ContextVar
from typing import Any, Literal

from pythonjsonlogger.json import JsonFormatter

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
# The pid tells apart the processes of `allcare serve --workers N`, which share one log.
_JSON_FIELDS = ["levelname", "name", "message", "request_id", "process"]


class RequestIdFilter(logging.Filter):
    """Adds the current request's id (None outside a request) to every record, drops
    uvicorn's terminal-colour copy of its messages, and keeps exception messages out of the
    log: a traceback names the type and the lines, never the message, which may quote what a
    request sent (a password, a patient's name, the parameters of a failed SQL statement)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.__dict__.pop("color_message", None)
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = withheld_traceback(record.exc_info)
            record.exc_info = None
        return True


def withheld_traceback(exc_info: tuple[Any, ...]) -> str:
    kind, _, trace = exc_info
    frames = "".join(traceback.format_tb(trace))
    name = f"{kind.__module__}.{kind.__qualname__}"
    return f"Traceback (most recent call last):\n{frames}{name} (message withheld from the log)"


def configure_logging(level: str, style: Literal["json", "text"]) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if style == "json":
        handler.setFormatter(
            JsonFormatter(
                _JSON_FIELDS,
                rename_fields={"levelname": "level", "name": "logger", "process": "pid"},
                timestamp="time",
            )
        )
    else:
        handler.setFormatter(logging.Formatter(_TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
