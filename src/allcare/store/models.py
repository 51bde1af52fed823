"""The database schema (SQLAlchemy 2.0 typed ORM). Patient fields live in sealed ``details``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on both SQLite (which drops the zone) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None or value.tzinfo is not None:
            return value
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


def table_of(model: type[Base]) -> Table:
    """A mapped class's Core table, for Core inserts and updates (``__table__`` is typed only
    as a FromClause)."""
    return cast(Table, model.__table__)


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(128))
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(default=False)
    # The hash came from the legacy server, whose bcrypt used only a password's first 72 bytes.
    legacy_password: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Tokens issued before this instant are refused (password reset, role change, disable).
    credentials_changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Counter(Base):
    """Named sequences shared by all processes; incremented with one atomic UPDATE."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class Case(Base):
    """A case id from the global sequence: allocated, released, or carrying the latest decision."""

    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_owner_state", "owner_id", "state"),
        Index("ix_cases_state_decided", "state", "decided_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    state: Mapped[str] = mapped_column(String(16))
    entry_type: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str | None] = mapped_column(String(64))
    owner_role: Mapped[str | None] = mapped_column(String(16))
    details: Mapped[bytes | None] = mapped_column(LargeBinary)
    allocated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The newest expert label (case_labels.id; no foreign key, the two tables point at each
    # other) and the case's side of the frozen evaluation split, fixed at its first label.
    current_label_id: Mapped[int | None] = mapped_column(Integer)
    eval_split: Mapped[str | None] = mapped_column(String(8))
    # What decides that side (services/labels/pool.py): the case id, or a digest of the lesion
    # id the record carries, so one lesion never sits on both sides.
    split_key: Mapped[str | None] = mapped_column(String(80))


class CaseDecision(Base):
    """Append-only history of decisions and edits: re-logging a case never loses the old one."""

    __tablename__ = "case_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    actor_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(16))
    entry_type: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[bytes] = mapped_column(LargeBinary)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Image(Base):
    __tablename__ = "images"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    blob_key: Mapped[str] = mapped_column(String(255), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(16))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    blur_score: Mapped[float | None] = mapped_column(Float)
    # All class probabilities in CLASS_NAMES order and a 64-value embedding (ml/embeddings.py),
    # packed vectors (store/vectors.py), sealed; with the model version that produced them, so
    # active learning never re-runs inference.
    probabilities: Mapped[bytes | None] = mapped_column(LargeBinary)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    model_version: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class BlobIntent(Base):
    """A blob being written; deleted in the transaction that commits the row referencing it.

    One left behind means the process died before that commit: its file is garbage.
    """

    __tablename__ = "blob_intents"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AccessEvent(Base):
    """Append-only record of access to patient data (image views by URL included)."""

    __tablename__ = "access_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor_id: Mapped[str | None] = mapped_column(String(64))
    actor_kind: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    resource: Mapped[str] = mapped_column(String(160))
    owner_id: Mapped[str | None] = mapped_column(String(64), index=True)
    client: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int | None] = mapped_column(Integer)


class CaseLabel(Base):
    """An expert label (and, from the annotation screen, drawings), append-only: the newest row
    of a case is its label, the older ones its history. The label itself is in sealed
    ``details``; ``trainable`` (one of the seven classes, not ``unknown``) stays clear so label
    counts need no key."""

    __tablename__ = "case_labels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    labeller_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    source: Mapped[str] = mapped_column(String(16))
    trainable: Mapped[bool] = mapped_column(Boolean)
    details: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)


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


class LegacyImport(Base):
    """What a migration from the old server brought in, so that a second run imports nothing
    twice, and how old identifiers map to new ones (colliding case ids are renumbered)."""

    __tablename__ = "legacy_imports"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    legacy_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    new_key: Mapped[str] = mapped_column(String(255))
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LoginFailure(Base):
    """A failed login, counted by every replica (PostgreSQL; SQLite counts in memory)."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class RateBucket(Base):
    """A token bucket every replica draws from (uploads per uploader, image-URL misses)."""

    __tablename__ = "rate_buckets"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
