"""What every step of ``allcare migrate`` shares: its transactions (item by item, or one rolled
back in a dry run), the record of what was imported, the accounts and labels it adds."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from allcare.core.clock import aware, now_utc
from allcare.services.accounts.users import import_legacy_users
from allcare.services.labels.fields import LabelSource, seal_label
from allcare.services.labels.pool import split_for
from allcare.services.labels.records import LABEL_CHOICES, UNKNOWN
from allcare.services.migration.legacy_reader import LegacyTree
from allcare.services.migration.report import ALREADY, MigrationReport
from allcare.services.principal import Role, is_valid_user_id
from allcare.store.blobs import BlobStore
from allcare.store.contexts import label_context
from allcare.store.crypto import Sealer
from allcare.store.db import Database, begin_write
from allcare.store.models import Case, CaseLabel, LegacyImport, User

PLACEHOLDER_HASH = "!imported-without-password"  # matches no bcrypt hash: cannot log in
UNKNOWN_LABELLER = "legacy_import"


def legacy_time(text: Any) -> datetime | None:
    """Old timestamps are naive local time; stored as UTC."""
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return aware(moment)


class MigrationSteps:
    def __init__(
        self,
        db: Database,
        sealer: Sealer,
        blobs: BlobStore,
        tree: LegacyTree,
        holdout_share: float,
        *,
        dry_run: bool = False,
        progress: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.db = db
        self.sealer = sealer
        self.blobs = blobs
        self.tree = tree
        self.holdout_share = holdout_share
        self.dry_run = dry_run
        self.progress = progress
        self.report = MigrationReport(dry_run=dry_run)
        self.case_ids: dict[tuple[str, str], int] = {}

    def begin(self, session: Session) -> None:
        """A write transaction; in a dry run the one already open goes on (nothing commits)."""
        if not (self.dry_run and session.in_transaction()):
            begin_write(session)

    def commit(self, session: Session) -> None:
        """A real run commits item by item (an interrupted run resumes where it stopped); a dry
        run keeps everything in one transaction that is rolled back at the end."""
        if self.dry_run:
            session.flush()
        else:
            session.commit()

    def done(self, session: Session, kind: str, key: str) -> str | None:
        row = session.get(LegacyImport, (kind, key))
        return row.new_key if row else None

    def mark(self, session: Session, kind: str, key: str, new_key: str) -> None:
        session.add(LegacyImport(kind=kind, legacy_key=key, new_key=new_key))

    # -- accounts ------------------------------------------------------------------------------

    def import_users(self, session: Session) -> None:
        path = self.tree.users_file
        if path is None:
            self.report.notes.append(f"No users.json in {self.tree.root}: no accounts imported")
            return
        result = import_legacy_users(session, path, commit=not self.dry_run)
        self.report.count("users", n=len(result.added))
        self.report.count("users", ALREADY, len(result.kept_existing))
        for user_id, problem in result.invalid.items():
            self.report.problem("users", f"{path}: user {user_id!r}: {problem}")

    def ensure_account(self, session: Session, user_id: str, why: str) -> None:
        """Owners and labellers missing from users.json become disabled accounts (no password):
        their data stays attributed to them, and an admin can enable them later."""
        if session.get(User, user_id) is not None:
            return
        session.add(
            User(
                id=user_id,
                password_hash=PLACEHOLDER_HASH,
                role=Role.GP.value if why == "owner" else Role.DOCTOR.value,
                disabled=True,
            )
        )
        session.flush()
        self.report.count("users", "created disabled (not in users.json)")
        self.report.problems.append(
            f"user {user_id!r} ({why} of imported data) is not in users.json: created disabled"
        )

    # -- labels --------------------------------------------------------------------------------

    def import_label(
        self, session: Session, case: Case, record: dict[str, Any], where: str
    ) -> None:
        label = record.get("correct_label")
        if not label:
            return
        if label not in LABEL_CHOICES:
            self.report.problem(
                "labels", f"{where}: label {label!r} is not one of {', '.join(LABEL_CHOICES)}"
            )
            return
        annotated = bool(record.get("annotated_by") or record.get("annotations"))
        labeller = str(
            (record.get("annotated_by") if annotated else record.get("labeled_by"))
            or UNKNOWN_LABELLER
        )
        if not is_valid_user_id(labeller):
            labeller = UNKNOWN_LABELLER
        self.ensure_account(session, labeller, "labeller")
        details: dict[str, Any] = {"correct_label": label}
        notes = record.get("annotation_notes") if annotated else record.get("label_notes")
        if notes:
            details["notes"] = notes
        if annotated:
            details["annotations"] = record.get("annotations") or {"strokes": [], "boxes": []}
            details["image_index"] = record.get("annotation_image_index")
            details["annotated_at"] = record.get("annotated_at")
        when = record.get("annotated_at") if annotated else record.get("labeled_at")
        self.add_label(session, case, label, labeller, details, when, annotated)

    def add_label(
        self,
        session: Session,
        case: Case,
        label: str,
        labeller: str,
        details: dict[str, Any],
        when: Any,
        annotated: bool = False,
    ) -> CaseLabel:
        row = CaseLabel(
            case_id=case.id,
            labeller_id=labeller,
            source=(LabelSource.ANNOTATION if annotated else LabelSource.LABEL).value,
            trainable=label != UNKNOWN,
            details=seal_label(self.sealer, case.id, details),
            created_at=legacy_time(when) or now_utc(),
        )
        session.add(row)
        session.flush()
        case.current_label_id = row.id
        if case.eval_split is None:
            case.eval_split = split_for(case.id, self.holdout_share)
        self.report.count("labels")
        return row

    def current_label(self, session: Session, case_id: int) -> tuple[Case, str | None]:
        case = session.get(Case, case_id)
        assert case is not None
        if case.current_label_id is None:
            return case, None
        row = session.get(CaseLabel, case.current_label_id)
        assert row is not None
        return case, json.loads(self.sealer.open(row.details, label_context(case_id)))[
            "correct_label"
        ]
