"""``allcare migrate``: bring an old backserver's accounts, cases, photos and labels over.

Cases are keyed by (owner, old case id): the old server gave every user the ids 10000, 10001,
... (D6). An old id that only one owner used, and that is free here, stays the same, so GPs
find their cases under the numbers they know; ids that several owners used get new ids from the
global sequence, with the old id kept on the record (``legacy_case_id``) and in the report.
Every imported item is recorded (``legacy_imports``), so a second run imports nothing twice.
A bad line, an undecryptable record or a missing photo is reported and skipped; the rest goes on.
Photos (photos.py) keep their ids; the steps' shared transactions, accounts and labels are in
steps.py, the learning side in learning.py.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import update
from sqlalchemy.orm import Session

from allcare.core.clock import now_utc
from allcare.services.cases.records import MAX_CASE_ID_DIGITS, CaseState, EntryType
from allcare.services.migration.legacy_reader import Problem, Record
from allcare.services.migration.photos import import_photo
from allcare.services.migration.report import ALREADY
from allcare.services.migration.steps import MigrationSteps, legacy_time
from allcare.store.contexts import case_context
from allcare.store.db import CASE_COUNTER, next_value
from allcare.store.models import Case, Counter, User

DERIVED_FIELDS = {
    "case_id", "user_id", "user_role", "entry_type", "image_ids", "updated_at", "received_at",
    "correct_label", "labeled_by", "labeled_at", "label_notes", "annotations", "annotated_by",
    "annotated_at", "annotation_image_index", "annotation_notes",
}  # fmt: skip
DIGITS = re.compile(r"^\d+$")


@dataclass
class CaseGroup:
    owner: str
    legacy_id: str
    decision: Record | None = None
    photos: list[Record] = field(default_factory=list)


class Migration(MigrationSteps):
    """Accounts and cases with their photos and labels (the learning side: learning.py)."""

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
            known = self.done(session, "case", f"{group.owner}/{group.legacy_id}")
            if known is not None:
                self.case_ids[(group.owner, group.legacy_id)] = int(known)
                self.report.count("cases", ALREADY)
                for photo in group.photos:  # an interrupted run may have stopped between them
                    import_photo(self, session, int(known), photo)
                continue
            pending.append(group)
        keep = [g for g in pending if self._keeps_id(session, g, owners_of)]
        renumber = [g for g in pending if g not in keep]
        for group in keep:
            self._import_case(session, group, int(group.legacy_id))
        self._raise_counter(session)
        for group in renumber:
            self.begin(session)
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
        self.begin(session)
        highest = max(self.case_ids.values())
        session.execute(
            update(Counter)
            .where(Counter.name == CASE_COUNTER, Counter.value < highest)
            .values(value=highest)
        )
        self.commit(session)

    def _import_case(self, session: Session, group: CaseGroup, case_id: int) -> None:
        self.progress(f"case {group.owner}/{group.legacy_id}")
        self.begin(session)
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
        self.mark(session, "case", f"{group.owner}/{group.legacy_id}", str(case_id))
        self.case_ids[(group.owner, group.legacy_id)] = case_id
        self.report.count("cases")
        if group.decision is not None:
            self.import_label(session, case, record, str(group.decision.where))
        self.commit(session)
        for photo in group.photos:
            import_photo(self, session, case_id, photo)

    def run_cases(self, session: Session) -> None:
        self.import_users(session)
        groups = self.collect()
        self.import_cases(session, groups)
        self.report.notes.append(
            f"Case ids: {len(self.case_ids)} old (owner, case id) pairs map to new ids; "
            "released ids of the old per-user counters are not carried over (one global "
            "sequence now)."
        )
