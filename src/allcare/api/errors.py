"""Every error leaves as JSON ``{"detail": ...}``: the admin screen json-decodes error bodies."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import TimeoutError as PoolTimeout

from allcare.services.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    ServiceError,
    TooManyRequests,
    Unavailable,
    UnsupportedMedia,
)
from allcare.store.crypto import DecryptionError

log = logging.getLogger(__name__)
SECRET_FIELDS = frozenset({"password", "new_password", "token", "access_token", "secret"})
REDACTED = "[redacted]"
UNDECRYPTABLE = "Stored data could not be decrypted; the server log says why"

_STATUS_BY_ERROR: dict[type[ServiceError], int] = {
    InvalidInput: status.HTTP_400_BAD_REQUEST,
    Forbidden: status.HTTP_403_FORBIDDEN,
    NotFound: status.HTTP_404_NOT_FOUND,
    Conflict: status.HTTP_409_CONFLICT,
    PayloadTooLarge: status.HTTP_413_CONTENT_TOO_LARGE,
    UnsupportedMedia: status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    TooManyRequests: status.HTTP_429_TOO_MANY_REQUESTS,
    Unavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
}


async def _service_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    code = next(c for kind, c in _STATUS_BY_ERROR.items() if isinstance(exc, kind))
    retry_after = getattr(exc, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse({"detail": exc.detail}, status_code=code, headers=headers)


async def _decryption_error(request: Request, exc: Exception) -> JSONResponse:
    """Loud, never skipped; the reason (which key id is missing) goes to the administrator's
    log, not to whoever asked. The route template keeps an image URL's name out of the log."""
    route = getattr(request.scope.get("route"), "path", "?")
    log.error("Undecryptable data on %s %s: %s", request.method, route, exc)
    return JSONResponse(
        {"detail": UNDECRYPTABLE}, status_code=status.HTTP_500_INTERNAL_SERVER_ERROR
    )


def _json_safe(value: Any) -> Any:
    """Validation errors echo the input; NaN and infinity (which Python's JSON parser accepts)
    are not JSON, so they are echoed as text instead of turning a 422 into a 500."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def _redacted(error: dict[str, Any]) -> dict[str, Any]:
    """A field error never echoes a secret: not the password that failed validation, nor a
    password inside the whole-body input of an error about another field."""
    if any(str(part).lower() in SECRET_FIELDS for part in error.get("loc", ())):
        return error | {"input": REDACTED}
    if "input" in error:
        return error | {"input": _without_secrets(error["input"])}
    return error


def _without_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: REDACTED if str(key).lower() in SECRET_FIELDS else _without_secrets(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_without_secrets(item) for item in value]
    return value


async def _invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_redacted(error) for error in exc.errors()]
    detail = _json_safe(jsonable_encoder(errors))
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def _pool_exhausted(request: Request, exc: Exception) -> JSONResponse:
    """Every pooled database connection stayed busy for the pool timeout: overload, not a bug."""
    log.warning("No database connection free for %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(
        {"detail": "The server is busy; retry shortly"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "1"},
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("Unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        {"detail": "Internal server error"}, status_code=status.HTTP_500_INTERNAL_SERVER_ERROR
    )


def install_error_handlers(app: FastAPI) -> None:
    for kind in _STATUS_BY_ERROR:
        app.add_exception_handler(kind, _service_error)
    app.add_exception_handler(DecryptionError, _decryption_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(PoolTimeout, _pool_exhausted)
    app.add_exception_handler(Exception, _unexpected)
