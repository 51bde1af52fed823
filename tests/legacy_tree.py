"""An old backserver folder, built the way the old server wrote it (contract section 3): two
GPs whose case ids collide, plain and encrypted records and photos, a corrupt line, an
undecryptable line, a missing photo, a record in the older global file, and an AL_Back registry
with a model file, labels pool, event log and training configuration."""

from __future__ import annotations

import base64
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
import torch
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from allcare.ml.architectures import build
from tests.photos import jpeg_bytes

OLD_KEY = "ZmFrZS1sZWdhY3kta2V5LWZvci10ZXN0cy0xMjM0NTY="  # 32 bytes, url-safe base64
OLD_PASSWORD = "old-password-1"


def _encrypt(data: bytes) -> bytes:
    key = base64.urlsafe_b64decode(OLD_KEY)
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, data, None)


def _enc_line(record: dict[str, object]) -> dict[str, object]:
    blob = _encrypt(json.dumps(record).encode())
    return {"enc": base64.urlsafe_b64encode(blob).decode(), "v": 1}


@dataclass
class OldServer:
    root: Path
    images: dict[str, bytes] = field(default_factory=dict)  # image id -> JPEG bytes
    ids: dict[str, str] = field(default_factory=dict)  # name -> image id


def _photo(name: str, seed: int, server: OldServer) -> str:
    image_id = str(uuid.UUID(int=seed * 7919 + 12345, version=4))
    server.ids[name] = image_id
    server.images[image_id] = jpeg_bytes(seed=seed)
    return image_id


def _prediction(top: str) -> list[dict[str, object]]:
    rest = [c for c in ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc") if c != top]
    return [{"label": top, "confidence": 0.64}] + [{"label": c, "confidence": 0.06} for c in rest]


def build_old_server(root: Path) -> OldServer:
    server = OldServer(root)
    storage = root / "storage"
    hashed = bcrypt.hashpw(OLD_PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    users = {
        "user001": {
            "password_hash": hashed,
            "first_name": "Ali",
            "last_name": "Khan",
            "role": "gp",
        },
        "user002": {"password_hash": hashed, "first_name": "Bo", "last_name": "Li", "role": "gp"},
        "user003": {
            "password_hash": hashed,
            "first_name": "Maya",
            "last_name": "P",
            "role": "doctor",
        },
        "user004": {
            "password_hash": hashed,
            "first_name": "Ada",
            "last_name": "A",
            "role": "admin",
        },
    }
    root.mkdir(parents=True)
    (root / "users.json").write_text(json.dumps(users))

    a, b, c = (_photo(n, s, server) for n, s in (("A", 1), ("B", 2), ("C", 3)))
    (storage / "user001").mkdir(parents=True)
    for image_id in (a, b):  # C's file is missing
        (storage / "user001" / f"{image_id}.jpg").write_bytes(server.images[image_id])
    user001 = [
        {"case_id": "10000", "image_id": a, "blur_score": 120.5, "predictions": _prediction("nv"),
         "status": "success", "created_at": "2026-02-15T13:10:00.000001", "user_id": "user001"},
        {"case_id": "10000", "entry_type": "case", "status": "Confirmed", "user_id": "user001",
         "user_role": "gp", "predictions": _prediction("nv")[:3],
         "image_paths": [f"user001/{a}.jpg"], "image_ids": [a], "gender": "W", "age": "47",
         "location": "Front Chest",
         "symptoms": ["Red marks"], "created_at": "2026-02-15T13:12:33.943962",
         "correct_label": "nv", "annotated_by": "user003", "annotation_image_index": 0,
         "annotations": {"strokes": [], "boxes": [{"left": 1, "top": 2, "width": 3, "height": 4}]},
         "annotated_at": "2026-02-16T09:00:00.000"},
        "{this line is corrupt",
        {"case_id": "10001", "image_id": b, "blur_score": 88.0, "predictions": _prediction("bcc"),
         "status": "success", "created_at": "2026-02-15T14:00:00", "user_id": "user001"},
        {"case_id": "10001", "entry_type": "reject", "status": "rejected", "user_id": "user001",
         "reason": "User rejected prediction", "notes": "odd border",
         "image_paths": [f"user001/{b}.jpg"], "created_at": "2026-02-15T14:01:00"},
        {"case_id": "10002", "image_id": c, "blur_score": 50.0, "predictions": _prediction("mel"),
         "status": "success", "created_at": "2026-02-15T15:00:00", "user_id": "user001"},
        {"case_id": "10002", "entry_type": "uncertain", "status": "pending", "user_id": "user001",
         "image_paths": [f"user001/{c}.jpg"], "created_at": "2026-02-15T15:01:00"},
    ]  # fmt: skip
    _write_jsonl(storage / "user001" / "metadata.jsonl", user001)
    (storage / "user001" / "case_counter.json").write_text('{"last_case_id": 10002}')

    d = _photo("D", 4, server)
    (storage / "user002").mkdir()
    (storage / "user002" / f"{d}.bin").write_bytes(_encrypt(server.images[d]))
    user002 = [
        _enc_line({"case_id": "10000", "image_id": d, "blur_score": 99.0,
                   "predictions": _prediction("df"), "status": "success", "user_id": "user002"}),
        _enc_line({"case_id": "10000", "entry_type": "case", "status": "Confirmed",
                   "user_id": "user002", "image_paths": [f"user002/{d}.jpg"], "age": "61",
                   "created_at": "2026-02-17T10:00:00"}),
        {"case_id": "10005", "entry_type": "case", "status": "pending", "user_id": "user002",
         "image_paths": ["/data/user/0/app/cache/gallery.jpg"],
         "created_at": "2026-02-18T10:00:00"},
        {"enc": base64.urlsafe_b64encode(b"x" * 40).decode(), "v": 1},
    ]  # fmt: skip
    _write_jsonl(storage / "user002" / "metadata.jsonl", user002)

    _write_jsonl(
        storage / "metadata.jsonl",
        [{"case_id": "10100", "entry_type": "case", "status": "Confirmed", "user_id": "user005",
          "image_paths": [], "created_at": "2025-12-01T08:00:00"}],
    )  # fmt: skip

    al_back = root / "AL_Back"
    folder = al_back / "models" / "candidates" / "v20260205_001"
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    module = build("mobilenet_v3_large")
    torch.save(
        {"model_state_dict": module.state_dict(), "architecture": "mobilenet_v3_large"},
        folder / "[2026-02-05] - mobilenet_v3_large.pt",
    )
    (folder / "training_log.json").write_text(
        json.dumps([{"epoch": 1, "train_loss": 1.9, "val_accuracy": 0.3}])
    )
    registry = {
        "models": {
            "v20260205_001": {
                "status": "production", "created_at": "2026-02-05T19:30:23.899870",
                "base_model": "base", "architecture": "mobilenet_v3_large",
                "training_config": {"epochs": 1, "batch_size": 16},
                "metrics": {"val_accuracy": 0.31, "train_accuracy": 0.5},
                "path": "/srv/old/backserver/AL_Back/models/candidates/v20260205_001/"
                "[2026-02-05] - mobilenet_v3_large.pt",
            },
            "v20260211_002": {
                "status": "archived", "created_at": "2026-02-11T20:29:20.531002",
                "architecture": "efficientnet_v2_m", "metrics": {"val_accuracy": 0.2},
                "path": "/srv/old/backserver/AL_Back/models/candidates/v20260211_002/gone.pt",
            },
        },
        "current_production": "v20260205_001",
        "pending_promotion": None,
        "active_inference": {"version_id": "v20260205_001", "path": "/srv/old/model.pt"},
    }  # fmt: skip
    (al_back / "db").mkdir(parents=True)
    (al_back / "db" / "model_registry.json").write_text(json.dumps(registry))
    pool = [
        "// labels pool",
        {"case_id": "10001", "image_paths": [f"user001/{b}.jpg"], "correct_label": "bcc",
         "user_id": "user003", "created_at": "2026-02-16T10:00:00",
         "used_in_models": ["v20260205_001"]},
        {"case_id": "10000", "image_paths": [f"user001/{a}.jpg"], "correct_label": "mel",
         "user_id": "user003", "created_at": "2026-02-16T11:00:00", "used_in_models": []},
        "not json either",
    ]  # fmt: skip
    _write_jsonl(al_back / "db" / "labels_pool.jsonl", pool)
    events = [
        {"timestamp": "2026-02-05T19:31:00", "type": "training_completed",
         "message": "Training completed", "metadata": {"version_id": "v20260205_001"}},
        {"timestamp": "2026-02-05T19:32:00", "type": "model_promoted",
         "message": "Promoted", "metadata": {"version_id": "v20260205_001", "accuracy": 0.0}},
        "{broken",
    ]  # fmt: skip
    _write_jsonl(al_back / "db" / "event_log.jsonl", events)
    (al_back / "config").mkdir()
    (al_back / "config" / "active_config.json").write_text(
        json.dumps({"epochs": 5, "batch_size": 8, "learning_rate": 0.0005, "optimizer": "SGD",
                    "dropout": 2.0, "augmentation_applied": True})
    )  # fmt: skip
    return server


def _write_jsonl(path: Path, rows: list[object]) -> None:
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
