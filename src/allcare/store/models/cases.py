"""Cases, their decisions, photos, labels and the access log; patient fields live in sealed
``details``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from allcare.store.models._base import Base, UTCDateTime, utcnow


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
