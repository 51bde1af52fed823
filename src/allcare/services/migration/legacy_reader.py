"""Reading an old AllCare backserver's files (contract section 3), every item with where it came
from, and every unreadable one as a problem instead of an exception.

Layout (defaults; each part can be pointed elsewhere):

    OLD/users.json
    OLD/storage/<user>/metadata.jsonl, case_counter.json, <image_id>.jpg | .bin
    OLD/storage/metadata.jsonl, <image_id>.jpg | .bin          (the older global layout)
    OLD/AL_Back/db/model_registry.json, labels_pool.jsonl, event_log.jsonl
    OLD/AL_Back/config/active_config.json
    OLD/AL_Back/models/{candidates,archive}/<version>/..., production/model.pt

Encrypted files use the legacy format: AES-GCM, ``nonce (12) || ciphertext || tag``, no
associated data; a metadata line ``{"enc": <urlsafe base64>, "v": 1}``.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from allcare.services.principal import is_valid_user_id

NONCE = 12


@dataclass(frozen=True)
class Where:
    file: Path
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else str(self.file)


@dataclass(frozen=True)
class Problem:
    where: Where
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class Record:
    """One metadata.jsonl record: a case-level record (has ``entry_type``) or an image record."""

    owner: str
    data: dict[str, Any]
    where: Where

    @property
    def is_case(self) -> bool:
        return "entry_type" in self.data


class LegacyTree:
    def __init__(
        self,
        root: Path,
        *,
        storage_root: Path | None = None,
        al_back: Path | None = None,
        key: bytes | None = None,
        default_user: str = "user001",
    ) -> None:
        self.root = root
        self.storage = storage_root or root / "storage"
        self.al_back = al_back or root / "AL_Back"
        self._cipher = AESGCM(key) if key else None
        self.default_user = default_user

    # -- accounts and metadata -----------------------------------------------------------------

    @property
    def users_file(self) -> Path | None:
        path = self.root / "users.json"
        return path if path.is_file() else None

    def user_folders(self) -> Iterator[Path | Problem]:
        if not self.storage.is_dir():
            return
        for folder in sorted(p for p in self.storage.iterdir() if p.is_dir()):
            if folder.name.startswith("."):
                continue
            if not is_valid_user_id(folder.name):
                yield Problem(Where(folder), "not a valid user id; folder skipped")
                continue
            yield folder

    def records(self) -> Iterator[Record | Problem]:
        """Per-user files first, then the old global file (owner from ``user_id``)."""
        for folder in self.user_folders():
            if isinstance(folder, Problem):
                yield folder
                continue
            path = folder / "metadata.jsonl"
            if path.is_file():
                yield from self._jsonl_records(path, owner=folder.name)
        global_file = self.storage / "metadata.jsonl"
        if global_file.is_file():
            yield from self._jsonl_records(global_file, owner=None)

    def _jsonl_records(self, path: Path, owner: str | None) -> Iterator[Record | Problem]:
        for number, data in self._json_lines(path):
            if isinstance(data, Problem):
                yield data
                continue
            where = Where(path, number)
            record_owner = owner or str(data.get("user_id") or self.default_user)
            if not is_valid_user_id(record_owner):
                yield Problem(where, f"owner {record_owner!r} is not a valid user id; skipped")
                continue
            yield Record(record_owner, data, where)

    def _json_lines(self, path: Path) -> Iterator[tuple[int, dict[str, Any] | Problem]]:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            yield 0, Problem(Where(path), f"unreadable: {exc}")
            return
        for number, line in enumerate(text.splitlines(), start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith("//"):
                continue
            where = Where(path, number)
            try:
                data = json.loads(stripped)
            except json.JSONDecodeError as exc:
                yield number, Problem(where, f"not JSON ({exc.msg}); line skipped")
                continue
            if isinstance(data, dict) and "enc" in data:
                data = self._decrypted_line(data, where)
            if not isinstance(data, dict | Problem):
                data = Problem(where, "not a JSON object; line skipped")
            yield number, data

    def _decrypted_line(self, data: dict[str, Any], where: Where) -> dict[str, Any] | Problem:
        if self._cipher is None:
            return Problem(where, "encrypted line, but no data encryption key was given; skipped")
        try:
            blob = base64.urlsafe_b64decode(str(data["enc"]) + "=" * (-len(str(data["enc"])) % 4))
            decoded = json.loads(self._decrypt(blob))
        except (binascii.Error, ValueError, InvalidTag):
            return Problem(where, "encrypted line cannot be decrypted (wrong key?); skipped")
        return decoded if isinstance(decoded, dict) else Problem(where, "not a JSON object")

    def _decrypt(self, blob: bytes) -> bytes:
        assert self._cipher is not None
        if len(blob) < NONCE + 16:
            raise ValueError("too short")
        return self._cipher.decrypt(blob[:NONCE], blob[NONCE:], None)

    # -- photos -------------------------------------------------------------------------------

    def photo(self, owner: str, image_id: str) -> tuple[bytes, Where] | Problem:
        """The photo's JPEG bytes, decrypted when it was stored encrypted (``.bin``)."""
        for folder in (self.storage / owner, self.storage):
            for suffix in (".jpg", ".bin"):
                path = folder / f"{image_id}{suffix}"
                if not path.is_file():
                    continue
                data = path.read_bytes()
                if suffix == ".jpg":
                    return data, Where(path)
                if self._cipher is None:
                    return Problem(Where(path), "encrypted photo, but no key was given; skipped")
                try:
                    return self._decrypt(data), Where(path)
                except (ValueError, InvalidTag):
                    return Problem(Where(path), "encrypted photo cannot be decrypted; skipped")
        return Problem(Where(self.storage / owner / f"{image_id}.jpg"), "photo file is missing")

    # -- the learning side ------------------------------------------------------------------

    def _json_file(self, path: Path) -> Any:
        if not path.is_file():
            return None
        try:
            text = path.read_text(encoding="utf-8").strip()
            return json.loads(text) if text else None
        except (OSError, json.JSONDecodeError):
            return Problem(Where(path), "not readable JSON; skipped")

    def model_list(self) -> dict[str, Any] | Problem | None:
        return self._json_file(self.al_back / "db" / "model_registry.json")

    def active_config(self) -> dict[str, Any] | Problem | None:
        return self._json_file(self.al_back / "config" / "active_config.json")

    def labels_pool(self) -> Iterator[tuple[Where, dict[str, Any] | Problem]]:
        path = self.al_back / "db" / "labels_pool.jsonl"
        if path.is_file():
            for number, data in self._json_lines(path):
                yield Where(path, number), data

    def events(self) -> Iterator[tuple[Where, dict[str, Any] | Problem]]:
        path = self.al_back / "db" / "event_log.jsonl"
        if path.is_file():
            for number, data in self._json_lines(path):
                yield Where(path, number), data

    def model_file(self, version_id: str, entry: dict[str, Any]) -> Path | None:
        """The version's file: its recorded paths rebased under AL_Back (they are absolute paths
        of the old machine), else whatever checkpoint its own folder holds."""
        for recorded in (entry.get("path"), entry.get("production_path")):
            if not recorded:
                continue
            text = str(recorded).replace("\\", "/")
            if "AL_Back/" in text:
                candidate = self.al_back / text.split("AL_Back/", 1)[1]
                if candidate.is_file() and not text.endswith("production/model.pt"):
                    return candidate
        for folder in ("candidates", "archive"):
            directory = self.al_back / "models" / folder / version_id
            if directory.is_dir():
                files = sorted(p for p in directory.iterdir() if p.suffix in (".pt", ".pth"))
                if files:
                    return files[0]
        production = self.al_back / "models" / "production" / "model.pt"
        if entry.get("status") == "production" and production.is_file():
            return production
        return None

    def training_log(self, model_path: Path) -> list[dict[str, Any]] | None:
        log = self._json_file(model_path.parent / "training_log.json")
        return log if isinstance(log, list) else None
