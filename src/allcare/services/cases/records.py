"""Case ids from one global sequence, GP decisions with full history, and role-scoped listing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Select, exists, func, insert, select, update
from sqlalchemy.orm import Session

from allcare.core.clock import now_utc, wire_time
from allcare.services.cases.listing import CaseRecord, open_document, read_records, seal_document
from allcare.services.errors import Forbidden, InvalidInput, NotFound, PayloadTooLarge
from allcare.services.labels.pool import split_key
from allcare.services.principal import Principal, Role
from allcare.store.contexts import case_history_context
from allcare.store.crypto import Sealer
from allcare.store.db import CASE_COUNTER, begin_write, next_value
from allcare.store.models import Case, CaseDecision, Image, table_of

MAX_CASE_ID_DIGITS = 15
# A case's own fields (notes, symptoms, paths...): a few KB in practice. The cap keeps one
# record, and so a list of 100 of them, small (a 713 KB record made a 71 MB list).
DEFAULT_MAX_RECORD_BYTES = 65536
CASE_NOT_FOUND = "Case not found"
# Where a caller names a case to add to: the same answer whether it does not exist or is not
# theirs, so the answer never tells one from the other.
UNKNOWN_CASE_ID = "Unknown case_id; request one from POST /cases/next-id"
NOT_YOURS_TO_CHANGE = (
    "Only the case's owner or an admin may change a case; doctors label and annotate it"
)


class CaseState(StrEnum):
    ALLOCATED = "allocated"
    RELEASED = "released"
    DECIDED = "decided"


class EntryType(StrEnum):
    CASE = "case"
    UNCERTAIN = "uncertain"
    REJECT = "reject"


class ReleaseSkip(StrEnum):
    """Why a case id was not given back (the app reads the value)."""

    MISSING_COUNTER = "missing_counter"  # the caller never had a case id
    OUT_OF_RANGE = "out_of_range"  # not theirs, unknown, or already released
    CASE_IN_USE = "case_in_use"  # decided, or photos were sent to it


@dataclass(frozen=True)
class Released:
    """The case id given back for reuse, or why not."""

    case_id: int | None
    skipped: ReleaseSkip | None = None


def server_photo_owner(path: str) -> str | None:
    """The owner segment of a path the app loads from this server (``<user>/<file>``: has a
    '/', no '\\', no leading '/', not a URL); None for a photo kept on the phone."""
    if "/" not in path or "\\" in path or path.startswith("/"):
        return None
    if path.lower().startswith(("http://", "https://")):
        return None
    return path.split("/", 1)[0]


def parse_case_id(text: str) -> int:
    value = text.strip()
    if not value or not value.isascii() or not value.isdigit() or len(value) > MAX_CASE_ID_DIGITS:
        raise InvalidInput("Invalid case_id")
    return int(value)


class CaseService:
    def __init__(
        self, session: Session, sealer: Sealer, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    ) -> None:
        self.session = session
        self._sealer = sealer
        self._max_record_bytes = max_record_bytes

    # -- ids -------------------------------------------------------------------------------

    def allocate(self, principal: Principal) -> int:
        begin_write(self.session)
        case_id = self._allocate(principal)
        self.session.commit()
        return case_id

    def _allocate(self, principal: Principal) -> int:
        """Reuse the caller's smallest released id, else take the next global one. Core
        statements, not the ORM's unit of work: every photo of a new case comes through here."""
        released = self.session.scalar(
            select(Case.id)
            .where(Case.owner_id == principal.user_id, Case.state == CaseState.RELEASED)
            .order_by(Case.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        values = {
            "state": CaseState.ALLOCATED.value,
            "owner_role": principal.role.value,
            "allocated_at": now_utc(),
        }
        cases = table_of(Case)
        if released is None:
            case_id = next_value(self.session, CASE_COUNTER)
            self.session.execute(
                insert(cases).values(id=case_id, owner_id=principal.user_id, **values)
            )
        else:
            case_id = released
            self.session.execute(update(cases).where(cases.c.id == case_id).values(**values))
        return case_id

    def release(self, principal: Principal, case_id_text: str) -> Released:
        case_id = parse_case_id(case_id_text)
        begin_write(self.session)
        owns_any = self.session.scalar(select(exists().where(Case.owner_id == principal.user_id)))
        if not owns_any:
            return Released(None, ReleaseSkip.MISSING_COUNTER)
        case = self.session.get(Case, case_id, with_for_update=True)
        if case is None or case.owner_id != principal.user_id or case.state == CaseState.RELEASED:
            return Released(None, ReleaseSkip.OUT_OF_RANGE)
        has_images = self.session.scalar(select(exists().where(Image.case_id == case_id)))
        if case.state == CaseState.DECIDED or has_images:
            return Released(None, ReleaseSkip.CASE_IN_USE)
        case.state = CaseState.RELEASED
        self.session.commit()
        return Released(case_id)

    # -- decisions -------------------------------------------------------------------------

    def record_decision(
        self, principal: Principal, entry_type: EntryType, fields: dict[str, Any]
    ) -> Case:
        """Store the caller's decision; a later decision on the same case replaces it (kept in
        the history)."""
        case_id_text = str(fields.pop("case_id", "") or "")
        case_id = parse_case_id(case_id_text) if case_id_text.strip() else None
        begin_write(self.session)
        now = now_utc()
        if case_id is not None:
            case = self._writable(principal, case_id, missing=UNKNOWN_CASE_ID)
        else:
            case = self._allocated(principal)
        if not fields.get("created_at"):
            fields["created_at"] = wire_time(now)
        self._check_fields(principal, case, fields)
        if case.owner_id == principal.user_id:
            case.owner_role = principal.role.value
        case.state = CaseState.DECIDED
        case.entry_type = entry_type.value
        case.status = fields.get("status")
        case.details = seal_document(self._sealer, case.id, fields)
        case.decided_at = now
        self._group(case, fields)
        self._append_history(case, principal, "decision", fields)
        self.session.commit()
        return case

    @staticmethod
    def _group(case: Case, fields: dict[str, Any]) -> None:
        """The key of the case's evaluation split: its lesion's when the record names one."""
        if fields.get("lesion_id") or case.split_key is None:
            case.split_key = split_key(case.id, fields.get("lesion_id"))

    def update(self, principal: Principal, case_id_text: str, changes: dict[str, Any]) -> Case:
        case_id = parse_case_id(case_id_text)
        owner_hint = changes.pop("user_id", None)
        changes.pop("user_role", None)
        if not changes:
            raise InvalidInput("No fields to update")
        begin_write(self.session)
        case = self._writable(principal, case_id, missing=CASE_NOT_FOUND)
        if case.state != CaseState.DECIDED:
            raise NotFound(CASE_NOT_FOUND)
        if principal.role == Role.ADMIN and owner_hint and owner_hint != case.owner_id:
            raise NotFound(CASE_NOT_FOUND)
        details = open_document(self._sealer, case)
        details.update(changes)
        self._check_fields(principal, case, details)
        if "status" in changes:
            case.status = changes["status"]
        case.details = seal_document(self._sealer, case.id, details)
        case.updated_at = now_utc()
        self._group(case, changes)
        self._append_history(case, principal, "edit", changes)
        self.session.commit()
        return case

    def _check_fields(self, principal: Principal, case: Case, fields: dict[str, Any]) -> None:
        """A record stays small, and names only its owner's (or the caller's) server photos:
        a path the app would load from this server must not point at another user's photo."""
        size = len(json.dumps(fields).encode())
        if size > self._max_record_bytes:
            raise PayloadTooLarge(
                f"Case record too large: {size} bytes; the limit is {self._max_record_bytes} "
                "(MAX_CASE_RECORD_BYTES)"
            )
        allowed = {principal.user_id, case.owner_id}
        for index, path in enumerate(fields.get("image_paths") or []):
            owner = server_photo_owner(path)
            if owner is not None and owner not in allowed:
                raise InvalidInput(
                    f"image_paths[{index}] names a photo of another user; a case holds only "
                    "its owner's photos"
                )

    def _allocated(self, principal: Principal) -> Case:
        case = self.session.get(Case, self._allocate(principal), populate_existing=True)
        assert case is not None, "allocated in this transaction"
        return case

    def check_photo_target(self, principal: Principal, case_id: int) -> None:
        """Read-only: refuse early, before any image work, a case the caller may not add to."""
        case = self._writable(principal, case_id, missing=UNKNOWN_CASE_ID, lock=False)
        if case.state == CaseState.RELEASED and case.owner_id != principal.user_id:
            raise Forbidden("Case id was released by its owner")
        self.session.rollback()

    def _writable(
        self, principal: Principal, case_id: int, *, missing: str, lock: bool = True
    ) -> Case:
        """The case, if the caller may change it. A case the caller may not even see answers
        ``missing`` exactly as one that does not exist; a reviewer who sees it gets 403."""
        case = self.session.get(Case, case_id, with_for_update=lock)
        if case is None or not (principal.sees_all_cases or case.owner_id == principal.user_id):
            raise NotFound(missing)
        if not principal.may_change(case.owner_id):
            raise Forbidden(NOT_YOURS_TO_CHANGE)
        return case

    def claim_for_photo(self, principal: Principal, case_id: int | None) -> int:
        """The case a new photo joins: the given one if the caller may add to it (a released id
        is taken back by its owner), else a newly allocated one. Runs inside the caller's write
        transaction."""
        if case_id is None:
            return self._allocate(principal)
        case = self._writable(principal, case_id, missing=UNKNOWN_CASE_ID)
        if case.state == CaseState.RELEASED:
            if case.owner_id != principal.user_id:
                raise Forbidden("Case id was released by its owner")
            case.state = CaseState.ALLOCATED
        return case.id

    # -- reading ---------------------------------------------------------------------------

    def list_records(
        self,
        principal: Principal,
        *,
        limit: int,
        status: str | None = None,
        include_uncertain: bool = True,
        include_rejected: bool = True,
    ) -> list[CaseRecord]:
        query: Select[Case] = select(Case).where(Case.state == CaseState.DECIDED)
        if not principal.sees_all_cases:
            query = query.where(Case.owner_id == principal.user_id)
        if not include_uncertain:
            query = query.where(Case.entry_type != EntryType.UNCERTAIN)
        if not include_rejected:
            query = query.where(Case.entry_type != EntryType.REJECT)
        if status:
            query = query.where(func.lower(Case.status) == status.lower())
        query = query.order_by(Case.decided_at.desc(), Case.id.desc()).limit(limit)
        cases = list(self.session.scalars(query))
        return read_records(self.session, self._sealer, cases)

    # -- sealing ---------------------------------------------------------------------------

    def _append_history(
        self, case: Case, principal: Principal, action: str, fields: dict[str, Any]
    ) -> None:
        self.session.add(
            CaseDecision(
                case_id=case.id,
                actor_id=principal.user_id,
                action=action,
                entry_type=case.entry_type,
                status=case.status,
                details=self._sealer.seal(
                    json.dumps(fields).encode(), case_history_context(case.id)
                ),
            )
        )
