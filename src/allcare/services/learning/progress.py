"""What a training run tells the database while it works: its phase and progress, the heartbeat
the supervisor watches (services/learning/supervisor.py), and whether an admin asked it to stop."""

from __future__ import annotations

import time
from typing import Any

from allcare.core.clock import now_utc
from allcare.ml.training import Progress
from allcare.services.models.registry import get_version
from allcare.store.db import Database, begin_write

PROGRESS_INTERVAL_S = 2.0


class RunProgress:
    def __init__(self, db: Database, version_id: str) -> None:
        self.db = db
        self.version_id = version_id
        self._last_report = 0.0

    def report(self, progress: dict[str, Any], *, force: bool = False) -> None:
        """Progress and heartbeat, at most every PROGRESS_INTERVAL_S unless forced."""
        now = time.monotonic()
        if not force and now - self._last_report < PROGRESS_INTERVAL_S:
            return
        self._last_report = now
        with self.db.session() as session:
            begin_write(session)
            version = get_version(session, self.version_id, lock=True)
            version.progress = (
                (version.progress or {}) | progress | {"updated_at": now_utc().isoformat()}
            )
            version.heartbeat_at = now_utc()
            session.commit()

    def training(self, progress: Progress) -> None:
        self.report(
            {
                "phase": "training",
                "epoch": progress.epoch,
                "epochs": progress.epochs,
                "batch": progress.batch,
                "batches": progress.batches,
                "fraction": round(progress.fraction, 4),
                "loss": round(progress.loss, 5),
                "eta_seconds": round(progress.eta_seconds or 0.0, 1),
            },
            force=progress.batch == progress.batches,
        )

    def should_stop(self) -> bool:
        with self.db.session() as session:
            return bool(get_version(session, self.version_id).cancel_requested)

    def cancelled_by(self) -> str:
        with self.db.session() as session:
            progress = get_version(session, self.version_id).progress or {}
        return str(progress.get("cancel_requested_by", "an admin"))
