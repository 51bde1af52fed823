"""The model registry, its pointers, training runs and the learning loop's events and settings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from allcare.store.models._base import Base, UTCDateTime, utcnow


class ModelVersion(Base):
    """One model of the registry: trained here, or a file brought in (MODEL_PATH, an asset)."""

    __tablename__ = "model_versions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    source: Mapped[str] = mapped_column(String(16))
    source_name: Mapped[str | None] = mapped_column(String(255))
    architecture: Mapped[str | None] = mapped_column(String(40))
    base_version: Mapped[str | None] = mapped_column(String(32))
    file_key: Mapped[str | None] = mapped_column(String(255))
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    training_config: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    evaluation: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The evaluation cases and photos fixed when the run was triggered (label_pool.EvalSet).
    eval_set: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    training_log: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker_pid: Mapped[int | None] = mapped_column(Integer)
    worker_host: Mapped[str | None] = mapped_column(String(255))  # where worker_pid is
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    triggered_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class TrainingLabel(Base):
    """Exactly the labels a training run used, snapshotted when it started (D23)."""

    __tablename__ = "training_labels"

    version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id"), primary_key=True)
    label_id: Mapped[int] = mapped_column(ForeignKey("case_labels.id"), primary_key=True)


class PointerChange(Base):
    """Append-only history of the two registry pointers: ``production`` (what training starts
    from and the gate compares with) and ``active`` (what serves); the newest row is current."""

    __tablename__ = "pointer_changes"
    __table_args__ = (Index("ix_pointer_changes_name_id", "name", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(16))
    version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id"))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Event(Base):
    """The learning loop's audit log (retrain_triggered, model_promoted, ...): who, when, what.
    Metadata names cases, versions and metrics, never a diagnosis or other patient field."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    type: Mapped[str] = mapped_column(String(32), index=True)
    message: Mapped[str] = mapped_column(Text)
    actor_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class AppSetting(Base):
    """Settings an administrator changes at run time (the training configuration)."""

    __tablename__ = "app_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(64))
