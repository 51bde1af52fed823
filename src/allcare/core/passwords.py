"""bcrypt password hashing compatible with the legacy users.json hashes ($2b$, cost 12)."""

from __future__ import annotations

import bcrypt

BCRYPT_ROUNDS = 12
BCRYPT_MAX_BYTES = 72
# Verified against when the username is unknown, so both paths cost one bcrypt check.
_DUMMY_HASH = bcrypt.hashpw(b"allcare-timing-equaliser", bcrypt.gensalt(BCRYPT_ROUNDS))


class PasswordPolicyError(ValueError):
    """A new password that the server refuses to store."""


def check_new_password(password: str) -> None:
    encoded = password.encode()
    if len(password) < 8:
        raise PasswordPolicyError("Password must be at least 8 characters long")
    if len(encoded) > BCRYPT_MAX_BYTES:
        raise PasswordPolicyError("Password must be at most 72 bytes (bcrypt's limit)")


def hash_password(password: str) -> str:
    check_new_password(password)
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode()


def verify_password(password: str, password_hash: str | None, legacy: bool = False) -> bool:
    """Constant-cost check. bcrypt reads at most 72 bytes: a longer password can never be one
    set here, so it fails (else any suffix after byte 72 would log in), except against a
    ``legacy`` hash, made by the old server whose bcrypt silently used the first 72 bytes."""
    encoded = password.encode("utf-8", "surrogatepass")
    candidate = encoded[:BCRYPT_MAX_BYTES]
    if len(encoded) > BCRYPT_MAX_BYTES and not legacy:
        password_hash = None  # the same cost as a wrong password
    if password_hash is None:
        bcrypt.checkpw(candidate, _DUMMY_HASH)
        return False
    try:
        return bcrypt.checkpw(candidate, password_hash.encode())
    except ValueError:
        bcrypt.checkpw(candidate, _DUMMY_HASH)
        return False


def is_bcrypt_hash(value: str) -> bool:
    return value.startswith(("$2a$", "$2b$", "$2y$")) and len(value) == 60
