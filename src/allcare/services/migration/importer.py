"""``allcare migrate``: bring an old backserver's accounts, cases, photos and labels over.

Cases are keyed by (owner, old case id): the old server gave every user the ids 10000, 10001,
... (D6). An old id that only one owner used, and that is free here, stays the same, so GPs
find their cases under the numbers they know; ids that several owners used get new ids from the
global sequence, with the old id kept on the record (``legacy_case_id``) and in the report.
Every imported item is recorded (``legacy_imports``), so a second run imports nothing twice.
A bad line, an undecryptable record or a missing photo is reported and skipped; the rest goes on.
Photos keep their ids, so the ``image_paths`` the app holds keep working, and are stored again
in the blob store (sealed when encryption is on). The learning side follows in
migration_learning.py.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import update
from sqlalchemy.orm import Session

from allcare.core.clock import aware, now_utc
from allcare.ml.classes import CLASS_NAMES
from allcare.ml.photo import image_size
from allcare.services.accounts.users import import_legacy_users
from allcare.services.cases.images import IMAGE_FILE_PATTERN, IMAGE_NAMESPACE
from allcare.services.cases.records import MAX_CASE_ID_DIGITS, CaseState, EntryType
from allcare.services.labels.fields import LabelSource, seal_label
from allcare.services.labels.pool import split_for
from allcare.services.labels.records import LABEL_CHOICES, UNKNOWN
from allcare.services.migration.legacy_reader import LegacyTree, Problem, Record
from allcare.services.migration.report import ALREADY, MigrationReport
from allcare.services.principal import Role, is_valid_user_id
from allcare.store import vectors
from allcare.store.blobs import BlobStore
from allcare.store.contexts import case_context, label_context, probabilities_context
from allcare.store.crypto import Sealer
from allcare.store.db import CASE_COUNTER, Database, begin_write, next_value
from allcare.store.models import Case, CaseLabel, Counter, Image, LegacyImport, User

PLACEHOLDER_HASH = "!imported-without-password"  # matches no bcrypt hash: cannot log in
UNKNOWN_LABELLER = "legacy_import"
DERIVED_FIELDS = {
    "case_id", "user_id", "user_role", "entry_type", "image_ids", "updated_at", "received_at",
    "correct_label", "labeled_by", "labeled_at", "label_notes", "annotations", "annotated_by",
    "annotated_at", "annotation_image_index", "annotation_notes",
}  # fmt: skip
DIGITS = re.compile(r"^\d+$")


def legacy_time(text: Any) -> datetime | None:
    """Old timestamps are naive local time; stored as UTC."""
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        return None
    return aware(moment)


@dataclass
class CaseGroup:
    owner: str
    legacy_id: str
    decision: Record | None = None
    photos: list[Record] = field(default_factory=list)


class Migration:
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

    def _begin(self, session: Session) -> None:
        """A write transaction; in a dry run the one already open goes on (nothing commits)."""
        if not (self.dry_run and session.in_transaction()):
            begin_write(session)

    def _commit(self, session: Session) -> None:
        """A real run commits item by item (an interrupted run resumes where it stopped); a dry
        run keeps everything in one transaction that is rolled back at the end."""
        if self.dry_run:
            session.flush()
        else:
            session.commit()

    def _done(self, session: Session, kind: str, key: str) -> str | None:
        row = session.get(LegacyImport, (kind, key))
        return row.new_key if row else None

    def _mark(self, session: Session, kind: str, key: str, new_key: str) -> None:
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

    # -- cases ---------------------------------------------------------------------------------

    def collect(self) -> list[CaseGroup]:
        groups: dict[tuple[str, str], CaseGroup] = {}
        for item in self.tree.records():
            if isinstance(item, Problem):
                self.report.problem("cases", str(item))
                continue
            legacy_id = str(item.data.get("case_id") or "").strip()
            if not legacy_id:
                self.report.problem("cases", f"{item.where}: record without a case_id")
                continue
            group = groups.setdefault((item.owner, legacy_id), CaseGroup(item.owner, legacy_id))
            if item.is_case:
                group.decision = item  # the last line wins, as the old server replaced them
            else:
                group.photos.append(item)
        return list(groups.values())

    def import_cases(self, session: Session, groups: list[CaseGroup]) -> None:
        owners_of: dict[str, set[str]] = defaultdict(set)
        for group in groups:
            owners_of[group.legacy_id].add(group.owner)
        pending: list[CaseGroup] = []
        for group in groups:
            known = self._done(session, "case", f"{group.owner}/{group.legacy_id}")
            if known is not None:
                self.case_ids[(group.owner, group.legacy_id)] = int(known)
                self.report.count("cases", ALREADY)
                for photo in group.photos:  # an interrupted run may have stopped between them
                    self._import_photo(session, int(known), photo)
                continue
            pending.append(group)
        keep = [g for g in pending if self._keeps_id(session, g, owners_of)]
        renumber = [g for g in pending if g not in keep]
        for group in keep:
            self._import_case(session, group, int(group.legacy_id))
        self._raise_counter(session)
        for group in renumber:
            self._begin(session)
            new_id = next_value(session, CASE_COUNTER)
            self.report.renumbered.append((group.owner, group.legacy_id, str(new_id)))
            self._import_case(session, group, new_id)
        self._raise_counter(session)

    def _keeps_id(self, session: Session, group: CaseGroup, owners_of: dict[str, set[str]]) -> bool:
        text = group.legacy_id
        if not DIGITS.fullmatch(text) or len(text) > MAX_CASE_ID_DIGITS:
            return False
        return len(owners_of[text]) == 1 and session.get(Case, int(text)) is None

    def _raise_counter(self, session: Session) -> None:
        """The global sequence continues above every imported id."""
        if not self.case_ids:
            return
        self._begin(session)
        highest = max(self.case_ids.values())
        session.execute(
            update(Counter)
            .where(Counter.name == CASE_COUNTER, Counter.value < highest)
            .values(value=highest)
        )
        self._commit(session)

    def _import_case(self, session: Session, group: CaseGroup, case_id: int) -> None:
        self.progress(f"case {group.owner}/{group.legacy_id}")
        self._begin(session)
        self.ensure_account(session, group.owner, "owner")
        record = group.decision.data if group.decision else {}
        details = {k: v for k, v in record.items() if k not in DERIVED_FIELDS}
        if str(case_id) != group.legacy_id:
            details["legacy_case_id"] = group.legacy_id
        entry_type = str(record.get("entry_type") or "").lower()
        decided = group.decision is not None and entry_type in {e.value for e in EntryType}
        if group.decision is not None and not decided:
            self.report.problems.append(
                f"{group.decision.where}: unknown entry_type {entry_type!r}; imported as 'case'"
            )
            decided, entry_type = True, EntryType.CASE.value
        created = legacy_time(record.get("created_at")) or now_utc()
        owner = session.get(User, group.owner)
        case = Case(
            id=case_id,
            owner_id=group.owner,
            state=CaseState.DECIDED if decided else CaseState.ALLOCATED,
            entry_type=entry_type if decided else None,
            status=str(record.get("status"))[:64] if record.get("status") is not None else None,
            owner_role=str(record.get("user_role") or (owner.role if owner else "gp"))[:16],
            details=self.sealer.seal(json.dumps(details).encode(), case_context(case_id))
            if decided
            else None,
            allocated_at=created,
            decided_at=created if decided else None,
            updated_at=legacy_time(record.get("updated_at")),
        )
        session.add(case)
        session.flush()
        self._mark(session, "case", f"{group.owner}/{group.legacy_id}", str(case_id))
        self.case_ids[(group.owner, group.legacy_id)] = case_id
        self.report.count("cases")
        if group.decision is not None:
            self._import_label(session, case, record, str(group.decision.where))
        self._commit(session)
        for photo in group.photos:
            self._import_photo(session, case_id, photo)

    # -- photos --------------------------------------------------------------------------------

    def _import_photo(self, session: Session, case_id: int, record: Record) -> None:
        image_id = str(record.data.get("image_id") or "").lower()
        if not IMAGE_FILE_PATTERN.fullmatch(f"{image_id}.jpg"):
            self.report.problem("images", f"{record.where}: image id {image_id!r} is not a UUID4")
            return
        if session.get(Image, image_id) is not None:
            self.report.count("images", ALREADY)
            return
        found = self.tree.photo(record.owner, image_id)
        if isinstance(found, Problem):
            self.report.problem("images", f"{record.where}: {found}")
            return
        data, _ = found
        size = image_size(data)
        if size is None:
            self.report.problem("images", f"{record.where}: photo {image_id} is not an image")
            return
        width, height = size
        self._begin(session)
        key = self.blobs.key_for(IMAGE_NAMESPACE, image_id, ".jpg")
        sha256, key_id = "", None
        if not self.dry_run:
            self.blobs.intend(session, key)
            session.commit()
            blob = self.blobs.write(key, IMAGE_NAMESPACE, image_id, data)
            sha256, key_id = blob.sha256, blob.key_id
            self._begin(session)
        probabilities = _probabilities(record.data.get("predictions"))
        session.add(
            Image(
                id=image_id,
                owner_id=record.owner,
                case_id=case_id,
                blob_key=key,
                sha256=sha256,
                size_bytes=len(data),
                content_type="image/jpeg",
                key_id=key_id,
                width=width,
                height=height,
                blur_score=_number(record.data.get("blur_score")),
                probabilities=None
                if probabilities is None
                else self.sealer.seal(vectors.pack(probabilities), probabilities_context(image_id)),
                model_version="legacy",
                created_at=legacy_time(record.data.get("created_at")) or now_utc(),
            )
        )
        if not self.dry_run:
            self.blobs.settle(session, key)
        self._mark(session, "image", image_id, image_id)
        self._commit(session)
        self.report.count("images")

    # -- labels --------------------------------------------------------------------------------

    def _import_label(
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

    def run_cases(self, session: Session) -> None:
        self.import_users(session)
        groups = self.collect()
        self.import_cases(session, groups)
        self.report.notes.append(
            f"Case ids: {len(self.case_ids)} old (owner, case id) pairs map to new ids; "
            "released ids of the old per-user counters are not carried over (one global "
            "sequence now)."
        )


def _probabilities(predictions: Any) -> np.ndarray | None:
    """The old ``[{label, confidence}]`` list as a vector in class order (others ignored)."""
    if not isinstance(predictions, list):
        return None
    vector = np.zeros(len(CLASS_NAMES), dtype=np.float32)
    for item in predictions:
        if isinstance(item, dict) and item.get("label") in CLASS_NAMES:
            value = _number(item.get("confidence"))
            if value is not None:
                vector[CLASS_NAMES.index(item["label"])] = value
    return vector if vector.any() else None


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None
