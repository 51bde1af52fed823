import base64
import os

import pytest

from allcare.core.config import ConfigError, Settings
from allcare.store.crypto import DecryptionError, Sealer, parse_key


def key_text(size: int = 32, padded: bool = True) -> str:
    text = base64.urlsafe_b64encode(os.urandom(size)).decode()
    return text if padded else text.rstrip("=")


@pytest.mark.parametrize("size", [16, 24, 32])
def test_legacy_key_forms_are_accepted(size: int) -> None:
    assert len(parse_key(key_text(size, padded=False))) == size


@pytest.mark.parametrize(
    "text", ["not base64 !!", key_text(20), ""], ids=["not base64", "20 bytes", "empty"]
)
def test_malformed_keys_are_clear_start_up_errors(text: str) -> None:
    with pytest.raises(ConfigError, match="DATA_ENCRYPTION_KEY"):
        parse_key(text)


def test_encryption_without_key_refuses_to_start() -> None:
    with pytest.raises(ConfigError, match="DATA_ENCRYPTION_KEY is not set"):
        Sealer.from_settings(Settings(encrypt_storage=True))


def test_sealed_values_are_bound_to_their_record() -> None:
    sealer = Sealer(parse_key(key_text()), [], encrypt=True)
    sealed = sealer.seal(b"age 61", "case:10000")
    assert b"age 61" not in sealed
    assert sealer.open(sealed, "case:10000") == b"age 61"
    with pytest.raises(DecryptionError):
        sealer.open(sealed, "case:10001")
    with pytest.raises(DecryptionError):
        sealer.open(sealed[:-1] + bytes([sealed[-1] ^ 1]), "case:10000")


def test_rotation_reads_old_keys_and_writes_with_the_new_one() -> None:
    old, new = parse_key(key_text()), parse_key(key_text())
    before = Sealer(old, [], encrypt=True).seal(b"x", "c")
    rotated = Sealer(new, [old], encrypt=True)
    assert rotated.open(before, "c") == b"x"
    assert rotated.open(rotated.seal(b"y", "c"), "c") == b"y"
    with pytest.raises(DecryptionError, match="not configured"):
        Sealer(new, [], encrypt=True).open(before, "c")


def test_plain_values_pass_through() -> None:
    sealer = Sealer(None, [], encrypt=False)
    assert sealer.seal(b'{"a": 1}', "c") == b'{"a": 1}'
    assert sealer.open(b'{"a": 1}', "c") == b'{"a": 1}'
