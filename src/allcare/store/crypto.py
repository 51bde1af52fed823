"""Encryption at rest: AES-GCM with a key id on every sealed value, and a key ring for rotation.

Sealed format: ``ACE1`` + 8-byte key id + 12-byte nonce + ciphertext and GCM tag. The associated
data binds a value to its record (e.g. ``image:<uuid>``), so ciphertexts cannot be swapped between
rows. Values written without encryption are stored as they are and read back unchanged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from allcare.core.config import ConfigError, Settings

MAGIC = b"ACE1"
KEY_ID_BYTES = 8
NONCE_BYTES = 12
_HEADER = len(MAGIC) + KEY_ID_BYTES + NONCE_BYTES


class DecryptionError(RuntimeError):
    """Stored data could not be decrypted: a missing key or tampered bytes. Never skipped."""


def parse_key(encoded: str, name: str = "DATA_ENCRYPTION_KEY") -> bytes:
    """URL-safe base64 (padding optional) of 16, 24 or 32 bytes, as the legacy server accepted."""
    text = encoded.strip()
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"{name} is not URL-safe base64") from exc
    if len(raw) not in (16, 24, 32):
        raise ConfigError(
            f"{name} decodes to {len(raw)} bytes; AES needs 16, 24 or 32. Generate one with "
            "`python -c 'import base64,os; "
            "print(base64.urlsafe_b64encode(os.urandom(32)).decode())'`."
        )
    return raw


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"allcare-key-id" + key).digest()[:KEY_ID_BYTES]


class Sealer:
    """Seals new values with the current key (if encryption is on) and opens any known key's."""

    def __init__(self, current: bytes | None, older: list[bytes], encrypt: bool) -> None:
        if encrypt and current is None:
            raise ConfigError("ENCRYPT_STORAGE is on but DATA_ENCRYPTION_KEY is not set")
        self._current = current
        self._encrypt = encrypt
        keys = [k for k in [current, *older] if k is not None]
        self._ring = {key_id(k): AESGCM(k) for k in keys}

    @classmethod
    def from_settings(cls, settings: Settings) -> Sealer:
        current = (
            parse_key(settings.data_encryption_key.get_secret_value())
            if settings.data_encryption_key
            else None
        )
        older_text = (
            settings.data_encryption_old_keys.get_secret_value()
            if settings.data_encryption_old_keys
            else ""
        )
        older = [
            parse_key(part, "DATA_ENCRYPTION_OLD_KEYS")
            for part in older_text.split(",")
            if part.strip()
        ]
        return cls(current, older, settings.encrypt_storage)

    @property
    def encrypting(self) -> bool:
        return self._encrypt

    @property
    def current_key_id(self) -> str | None:
        return key_id(self._current).hex() if self._encrypt and self._current else None

    def seal(self, data: bytes, context: str) -> bytes:
        if not self._encrypt or self._current is None:
            return data
        kid = key_id(self._current)
        nonce = os.urandom(NONCE_BYTES)
        return MAGIC + kid + nonce + self._ring[kid].encrypt(nonce, data, context.encode())

    def open(self, data: bytes, context: str) -> bytes:
        if not is_sealed(data):
            return data
        kid = data[len(MAGIC) : len(MAGIC) + KEY_ID_BYTES]
        cipher = self._ring.get(kid)
        if cipher is None:
            raise DecryptionError(
                f"Stored data is encrypted with key {kid.hex()}, which is not configured "
                "(DATA_ENCRYPTION_KEY / DATA_ENCRYPTION_OLD_KEYS)"
            )
        nonce = data[len(MAGIC) + KEY_ID_BYTES : _HEADER]
        try:
            return cipher.decrypt(nonce, data[_HEADER:], context.encode())
        except InvalidTag as exc:
            raise DecryptionError(f"Stored data failed authentication ({context})") from exc

    def open_many(self, values: list[bytes], contexts: list[str]) -> list[bytes]:
        """``open`` for a whole column at once (active learning reads every photo's
        probabilities), with the per-value work kept to the decryption itself."""
        opened = []
        start, end = len(MAGIC), len(MAGIC) + KEY_ID_BYTES
        for data, context in zip(values, contexts, strict=True):
            if data[: len(MAGIC)] != MAGIC:
                opened.append(data)
                continue
            cipher = self._ring.get(data[start:end])
            if cipher is None:
                return [self.open(d, c) for d, c in zip(values, contexts, strict=True)]
            try:
                opened.append(cipher.decrypt(data[end:_HEADER], data[_HEADER:], context.encode()))
            except InvalidTag as exc:
                raise DecryptionError(f"Stored data failed authentication ({context})") from exc
        return opened


def is_sealed(data: bytes) -> bool:
    return data[: len(MAGIC)] == MAGIC
