"""JSON bodies must hold text: a lone UTF-16 surrogate is refused before any route sees it.

JSON may spell ``"\\ud800"``, and Python's parser turns it into a str that cannot be encoded:
every route that stored, hashed (a password) or echoed it failed with a 500 whose traceback
quoted the value. Such a body answers 422, naming where the bad string is and echoing nothing.
The raw bytes are searched first, so an ordinary body costs one scan and no second parse.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE_BYTES = re.compile(rb"\xed[\xa0-\xbf]")  # what json.loads decodes with surrogatepass
LONE_SURROGATE = "Input should be text: a lone UTF-16 surrogate (\\ud800-\\udfff) is not"


def lone_surrogate_at(body: bytes) -> list[str | int] | None:
    """Where in the parsed body a string (or key) holds a lone surrogate; None if nowhere
    (or if the body is not JSON at all, which the route answers itself)."""
    if not (_SURROGATE_ESCAPE.search(body) or _SURROGATE_BYTES.search(body)):
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return _find(value, [])


def _find(value: Any, path: list[str | int]) -> list[str | int] | None:
    if isinstance(value, str):
        return None if _is_text(value) else path
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _find(item, [*path, index])
            if found is not None:
                return found
    if isinstance(value, dict):
        for key, item in value.items():
            key_path = [*path, key if _is_text(key) else "<key>"]
            if not _is_text(key):
                return key_path
            found = _find(item, key_path)
            if found is not None:
                return found
    return None


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class JsonTextMiddleware:
    """Reads a JSON request's body (already capped by the body limit outside it), checks it,
    and hands the same bytes on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        try:
            while True:
                message = await receive()
                messages.append(message)
                if message["type"] != "http.request" or not message.get("more_body", False):
                    break
        except HTTPException as exc:  # the body limit, raised from receive
            await _reply(send, exc.status_code, exc.detail)
            return
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
        where = lone_surrogate_at(body)
        if where is not None:
            error = {"type": "string_unicode", "loc": ["body", *where], "msg": LONE_SURROGATE}
            await _reply(send, 422, [error | {"input": None}])
            return
        pending = iter(messages)

        async def replay() -> Message:
            return next(pending, None) or await receive()

        await self.app(scope, replay, send)


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return b"json" in value.lower()
    return False


async def _reply(send: Send, status: int, detail: object) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
