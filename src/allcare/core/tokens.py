"""JWT access tokens with the legacy claims, and the signing secret's safe resolution."""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt

from allcare.core.config import (
    MIN_JWT_SECRET_LENGTH,
    PLACEHOLDER_JWT_SECRET,
    ConfigError,
    Settings,
)

log = logging.getLogger(__name__)
SECRET_FILE_NAME = ".jwt_secret"  # noqa: S105 - a file name


class InvalidToken(Exception):
    """The token cannot be trusted; the message is safe to show to the client."""


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    role: str
    credentials_version: int | None


class TokenCodec:
    def __init__(self, secret: str, algorithm: str, lifetime: timedelta) -> None:
        self._secret = secret
        self._algorithm = algorithm
        self.lifetime = lifetime

    def issue(
        self, *, subject: str, role: str, first_name: str, last_name: str, credentials_version: int
    ) -> str:
        """``cv`` ties the token to the account's credentials: a change revokes it at once."""
        now = datetime.now(UTC)
        claims = {
            "sub": subject,
            "role": role,
            "cv": credentials_version,
            "first_name": first_name,
            "last_name": last_name,
            "iat": int(now.timestamp()),
            "exp": int((now + self.lifetime).timestamp()),
        }
        return jwt.encode(claims, self._secret, algorithm=self._algorithm)

    def decode(self, token: str) -> TokenClaims:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[self._algorithm],
                options={"require": ["sub", "exp", "iat"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("Token has expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken("Invalid token") from exc
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise InvalidToken("Invalid token")
        version = claims.get("cv")
        return TokenClaims(
            subject=subject,
            role=str(claims.get("role", "")),
            credentials_version=version if isinstance(version, int) else None,
        )


def resolve_jwt_secret(settings: Settings) -> str:
    """The configured secret if strong, else one generated once and kept in the data directory."""
    if settings.jwt_secret_key is not None:
        secret = settings.jwt_secret_key.get_secret_value()
        if secret == PLACEHOLDER_JWT_SECRET:
            raise ConfigError(
                "JWT_SECRET_KEY is the legacy documented placeholder, which anyone can use to mint "
                "admin tokens. Unset it (a strong secret is then generated and kept in "
                "STORAGE_ROOT) or set a random value of at least 32 characters."
            )
        if len(secret) < MIN_JWT_SECRET_LENGTH:
            raise ConfigError(
                f"JWT_SECRET_KEY is shorter than {MIN_JWT_SECRET_LENGTH} characters; use e.g. "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`."
            )
        return secret
    return _load_or_create_secret_file(settings.storage_root / SECRET_FILE_NAME)


def _load_or_create_secret_file(path: Path) -> str:
    if path.exists():
        secret = path.read_text().strip()
        if len(secret) < MIN_JWT_SECRET_LENGTH:
            raise ConfigError(
                f"{path} holds a JWT secret that is too short; delete it to regenerate."
            )
        return secret
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _load_or_create_secret_file(path)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
        handle.flush()
        os.fsync(handle.fileno())
    log.warning(
        "JWT_SECRET_KEY is not set: generated a new signing secret and stored it in %s "
        "(mode 0600). Keep that file with the data; deleting it signs everybody out.",
        path,
    )
    return secret
