"""Which runs the heartbeat rule fails: those a worker took and then stopped reporting; a run
still waiting in the job queue sends no heartbeat and is left to wait (or be cancelled)."""

from __future__ import annotations

from datetime import timedelta

from allcare.core.clock import now_utc
from allcare.core.config import Settings
from allcare.services.learning.status import fail_run, fail_silent_runs
from allcare.store.db import Database
from allcare.store.models import ModelVersion


def _run(db: Database, version_id: str, worker_pid: int | None, beat_age_s: float) -> None:
    beat = now_utc() - timedelta(seconds=beat_age_s)
    with db.session() as session:
        session.add(
            ModelVersion(
                id=version_id,
                status="training",
                source="training",
                worker_pid=worker_pid,
                started_at=beat,
                heartbeat_at=beat,
            )
        )
        session.commit()


def test_only_runs_a_worker_took_fail_when_their_heartbeat_stops(settings: Settings) -> None:
    db = Database(settings.sqlalchemy_url)
    settings.storage_root.mkdir(parents=True, exist_ok=True)
    db.migrate()
    try:
        _run(db, "v20261203_001", worker_pid=4242, beat_age_s=600)  # lost
        _run(db, "v20261203_002", worker_pid=None, beat_age_s=600)  # still queued
        _run(db, "v20261203_003", worker_pid=4243, beat_age_s=5)  # reporting
        assert fail_silent_runs(db, timeout_s=300) == ["v20261203_001"]
        with db.session() as session:
            lost = session.get(ModelVersion, "v20261203_001")
            assert lost is not None
            assert lost.status == "failed"
            assert "no heartbeat for 300 s" in (lost.error or "")
            assert {v.id for v in session.query(ModelVersion).filter_by(status="training")} == {
                "v20261203_002",
                "v20261203_003",
            }
        # Cancelling a queued run ends it at once; one a worker has taken is left to stop itself.
        assert fail_run(db, "v20261203_002", "cancelled", cancelled=True, unless_started=True)
        assert not fail_run(db, "v20261203_003", "cancelled", cancelled=True, unless_started=True)
    finally:
        db.dispose()
