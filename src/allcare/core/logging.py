"""Log lines as JSON objects (or plain text), each carrying the id of the request it belongs to."""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Literal

from pythonjsonlogger.json import JsonFormatter

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
_JSON_FIELDS = ["levelname", "name", "message", "request_id"]


class RequestIdFilter(logging.Filter):
    """Adds the current request's id (None outside a request) to every record, and drops
    uvicorn's terminal-colour copy of its messages."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.__dict__.pop("color_message", None)
        return True


def configure_logging(level: str, style: Literal["json", "text"]) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    if style == "json":
        handler.setFormatter(
            JsonFormatter(
                _JSON_FIELDS,
                rename_fields={"levelname": "level", "name": "logger"},
                timestamp="time",
            )
        )
    else:
        handler.setFormatter(logging.Formatter(_TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
