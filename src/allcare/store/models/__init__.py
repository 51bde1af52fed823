"""The database schema (SQLAlchemy 2.0 typed ORM), one module per capability; patient fields
live in sealed ``details``. Importing this package maps every table."""

from allcare.store.models._base import Base, UTCDateTime, table_of, utcnow
from allcare.store.models.accounts import LoginFailure, RateBucket, User
from allcare.store.models.cases import (
    AccessEvent,
    BlobIntent,
    Case,
    CaseDecision,
    CaseLabel,
    Counter,
    Image,
)
from allcare.store.models.learning import (
    AppSetting,
    Event,
    ModelVersion,
    PointerChange,
    TrainingLabel,
)
from allcare.store.models.migration import LegacyImport

__all__ = [
    "AccessEvent",
    "AppSetting",
    "Base",
    "BlobIntent",
    "Case",
    "CaseDecision",
    "CaseLabel",
    "Counter",
    "Event",
    "Image",
    "LegacyImport",
    "LoginFailure",
    "ModelVersion",
    "PointerChange",
    "RateBucket",
    "TrainingLabel",
    "UTCDateTime",
    "User",
    "table_of",
    "utcnow",
]
