"""Every ``allcare`` command ends a failure with one clear line on stderr and exit status 1,
never a traceback: an administrator reads the line, not the stack."""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from allcare.core.config import ConfigError
from allcare.core.passwords import PasswordPolicyError
from allcare.services.errors import ServiceError
from allcare.store.backup import BackupError
from allcare.store.crypto import DecryptionError


def one_line(exc: BaseException) -> str:
    """What went wrong, in one line that names the setting, file or service concerned."""
    if isinstance(exc, ServiceError):
        text = exc.detail
    elif isinstance(exc, ValidationError):
        text = "; ".join(
            f"invalid setting {'.'.join(str(p) for p in e['loc']).upper() or '?'}: {e['msg']}"
            for e in exc.errors()
        )
    elif isinstance(exc, ConfigError | BackupError | PasswordPolicyError | DecryptionError):
        text = str(exc)
    elif isinstance(exc, OSError):
        where = f" {exc.filename}" if exc.filename else ""
        text = f"{exc.strerror or type(exc).__name__}:{where}" if exc.strerror else str(exc)
    elif isinstance(exc, DBAPIError):
        # The driver's own message (never the statement, whose parameters may be patient data)
        text = f"database error: {str(exc.orig).strip().splitlines()[0] if exc.orig else exc}"
    elif isinstance(exc, SQLAlchemyError):
        text = f"database error: {type(exc).__name__}"
    else:
        text = f"unexpected {type(exc).__name__}: {exc}"
    return " ".join(text.split())
