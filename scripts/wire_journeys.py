"""The app's journeys through one in-process server, every answer written down with ids, times,
the data folder and trained-model digests replaced, so that two trees' wires can be diffed. A
refactor must leave the diff empty; a training run's numbers are compared by shape only.

    .venv/bin/python scripts/wire_journeys.py /tmp/new.txt            # makes the inputs too
    PYTHONPATH=/path/to/other/tree/src .venv/bin/python scripts/wire_journeys.py /tmp/old.txt
    diff /tmp/old.txt /tmp/new.txt

The journeys are login, camera upload, case logging (plain, uncertain, reject), release, edits,
listing per role, labels and annotations, the review ranking, retraining, promotion and
rollback: 94 answers. The inputs are a trainable model, 12 photos and a users file. They are
made once with this tree's test helpers, in ``--inputs`` (default /tmp/allcare-journey-inputs),
so run this tree first. A run takes about a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import bcrypt

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "journey-pass-1"  # noqa: S105 - the journey accounts' only password
LABELS = ["nv", "mel", "bkl", "bcc", "nv", "mel", "akiec", "df", "vasc", "nv", "bkl", "mel"]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")
TOKEN = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")
DIGEST = re.compile(r"[0-9a-f]{64}")
FLOAT = re.compile(r"-?\d+\.\d+(e-?\d+)?")


def make_inputs(folder: Path) -> None:
    sys.path.insert(0, str(REPO))
    from tests.learning import colour_photo, mobilenet_checkpoint

    folder.mkdir(parents=True, exist_ok=True)
    mobilenet_checkpoint(folder / "model.pt", "nv")
    for i, label in enumerate(LABELS):
        (folder / f"p{i}_{label}.jpg").write_bytes(colour_photo(label, i))
    digest = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
    roles = {"gp1": "gp", "gp2": "gp", "doc1": "doctor", "admin1": "admin"}
    users = {
        name: {"password_hash": digest, "first_name": name, "last_name": "J", "role": role}
        for name, role in roles.items()
    }
    (folder / "users.json").write_text(json.dumps(users))


class Recorder:
    def __init__(self, root: Path) -> None:
        self.root = str(root)
        self.lines: list[str] = []

    def __call__(self, kind: str, response: Any, *, numbers: bool = True) -> Any:
        """``numbers=False``: a training run's figures and durations vary; keep the shape."""
        json_body = "json" in response.headers.get("content-type", "")
        text = response.text if json_body else f"<{len(response.content)} bytes>"
        text = UUID.sub("<uuid>", text.replace(self.root, "<root>"))
        text = DIGEST.sub("<sha256>", TOKEN.sub("<jwt>", TIME.sub("<time>", text)))
        if not numbers:
            text = FLOAT.sub("<float>", text)
        self.lines.append(f"{kind} {response.status_code}\n{text}\n")
        return response


def journeys(inputs: Path, record: Recorder) -> None:
    from fastapi.testclient import TestClient

    from allcare.api.app import create_app

    photos = sorted(inputs.glob("p*.jpg"), key=lambda p: int(p.name[1:].split("_")[0]))
    with TestClient(create_app()) as c:

        def login(user: str) -> dict[str, str]:
            answer = c.post("/auth/login", json={"username": user, "password": PASSWORD})
            return {
                "Authorization": "Bearer " + record(f"login {user}", answer).json()["access_token"]
            }

        def upload(headers: dict[str, str], photo: Path, **params: str) -> Any:
            files = {"file": ("p.jpg", photo.read_bytes(), "image/jpeg")}
            return c.post("/check-image", params=params, headers=headers, files=files)

        gp, gp2, doc, admin = login("gp1"), login("gp2"), login("doc1"), login("admin1")
        record("login wrong", c.post("/auth/login", json={"username": "gp1", "password": "x"}))
        cases = []
        for i, photo in enumerate(photos):
            case_id = record("next-id", c.post("/cases/next-id", headers=gp)).json()["case_id"]
            checked = record("check-image", upload(gp, photo, case_id=case_id)).json()
            path = f"gp1/{checked['image_id']}.jpg"
            fields = {
                "case_id": case_id,
                "image_paths": [path],
                "predictions": checked["predictions"][:3],
                "selected_prediction_index": 0,
                "status": "Confirmed",
                "symptoms": ["itching"],
                "gender": "female",
                "age": "40",
                "location": "arm",
                "notes": f"case {i}",
                "created_at": "2026-12-01T10:00:00Z",
            }
            route = ["/cases", "/cases/uncertain", "/cases/reject"][i % 3]
            record(f"log {route}", c.post(route, json=fields, headers=gp))
            record("image", c.get(f"/images/{path}"))
            cases.append((case_id, photo.stem.split("_")[1]))
        record("predict-only", upload(gp, photos[0], predict_only="true"))
        spare = record("next-id", c.post("/cases/next-id", headers=gp)).json()["case_id"]
        for who, headers, case_id in (
            ("release", gp, spare),
            ("release again", gp, spare),
            ("release used", gp, cases[0][0]),
            ("release other's", gp2, cases[0][0]),
        ):
            record(who, c.post("/cases/release-id", json={"case_id": case_id}, headers=headers))
        edit = {"notes": "edited", "status": "Reviewed"}
        record("edit", c.put(f"/cases/{cases[1][0]}", json=edit, headers=gp))
        record("edit other's", c.put(f"/cases/{cases[1][0]}", json={"notes": "x"}, headers=gp2))
        record("list gp1", c.get("/cases", headers=gp))
        record("list gp2", c.get("/cases", headers=gp2))
        ranking = {"top_k": 5}
        record("candidates", c.post("/active-learning/candidates", json=ranking, headers=doc))
        for case_id, label in cases[:8]:
            body = {"correct_label": label, "notes": "n"}
            record("label", c.post(f"/cases/{case_id}/label", json=body, headers=doc))
        annotation = {"image_index": 0, "correct_label": cases[8][1], "notes": "ann"}
        record(
            "annotate", c.post(f"/cases/{cases[8][0]}/annotations", json=annotation, headers=doc)
        )
        record("list doc1", c.get("/cases", headers=doc))
        ranking = {"top_k": 0, "strategy": "entropy"}
        record("candidates all", c.post("/active-learning/candidates", json=ranking, headers=doc))
        record("labels", c.get("/admin/labels", headers=admin))
        record("labels count", c.get("/admin/labels/count", headers=admin))
        record("models", c.get("/admin/models", headers=admin))
        record("active", c.get("/admin/models/active", headers=admin))
        config = {"epochs": 1, "batch_size": 4}
        record("config", c.post("/admin/training-config", json=config, headers=admin))
        record("status idle", c.get("/admin/retrain/status", headers=admin))
        record("trigger below", c.post("/admin/retrain/trigger", json={}, headers=admin))
        started = c.post("/admin/retrain/trigger", json={"force": True}, headers=admin)
        version = record("trigger", started, numbers=False).json().get("version_id")
        again = c.post("/admin/retrain/trigger", json={"force": True}, headers=admin)
        record("trigger again", again)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            status = c.get("/admin/retrain/status", headers=admin).json()
            if status["retrain_status"]["status"] != "training":
                break
            time.sleep(0.5)
        time.sleep(1)
        record("status done", c.get("/admin/retrain/status", headers=admin), numbers=False)
        record("models after", c.get("/admin/models", headers=admin), numbers=False)
        log = c.get(f"/admin/models/{version}/training-log", headers=admin)
        record("training log", log, numbers=False)
        reason = {"reason": "journey"}
        promote = c.post(f"/admin/models/{version}/promote", json=reason, headers=admin)
        record("promote", promote, numbers=False)
        record("production", c.get("/admin/models/production", headers=admin), numbers=False)
        record("check promoted", upload(gp, photos[1], predict_only="true"), numbers=False)
        rollback = c.post("/admin/models/rollback", json=reason, headers=admin)
        record("rollback", rollback, numbers=False)
        record("check rolled back", upload(gp, photos[1], predict_only="true"))
        record("events", c.get("/admin/events", headers=admin), numbers=False)
        record("health", c.get("/health"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    inputs = Path(tempfile.gettempdir()) / "allcare-journey-inputs"
    parser.add_argument("--inputs", type=Path, default=inputs)
    args = parser.parse_args()
    if not (args.inputs / "users.json").exists():
        make_inputs(args.inputs)
    root = Path(tempfile.mkdtemp(prefix="allcare-journey-"))
    os.environ.update(
        {
            "STORAGE_ROOT": str(root),
            "JWT_SECRET_KEY": "journey-secret-0123456789abcdef0123456789abcdef",
            "MODEL_PATH": str(args.inputs / "model.pt"),
            "USERS_FILE": str(args.inputs / "users.json"),
            "INFERENCE_RUNTIME": "torch",
            "RETRAIN_AUTO": "false",
            "RETRAIN_MIN_STEPS": "0",
            "TRAINING_THREADS": "1",
            "LOG_LEVEL": "warning",
        }
    )
    for name in ("DATABASE_URL", "BLOB_STORE_URL", "ENCRYPT_STORAGE", "TRAINING_QUEUE"):
        os.environ.pop(name, None)
    record = Recorder(root)
    journeys(args.inputs, record)
    args.out.write_text("\n".join(record.lines))
    print(f"{len(record.lines)} answers written to {args.out} (data in {root})")


if __name__ == "__main__":
    main()
