"""Expert labels and annotations from doctors and admins (contract 2.11, 2.12).

Labels are the seven HAM10000 codes plus ``unknown`` (kept, shown, never trained on). Every
submission is a new row, so the newest wins and the history stays with who and when. The first
label of a case fixes its side of the evaluation split (label_pool.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from allcare.core.clock import now_utc
from allcare.ml.classes import CLASS_NAMES
from allcare.services.cases.listing import open_document
from allcare.services.cases.records import CASE_NOT_FOUND, CaseState, parse_case_id
from allcare.services.errors import Forbidden, InvalidInput, NotFound
from allcare.services.events import EventType, record_event
from allcare.services.labels.fields import LabelSource, seal_label
from allcare.services.labels.pool import split_for, unused_label_ids
from allcare.services.principal import Principal, Role
from allcare.store.crypto import Sealer
from allcare.store.db import begin_write
from allcare.store.models import Case, CaseLabel

UNKNOWN = "unknown"
LABEL_CHOICES: tuple[str, ...] = (*CLASS_NAMES, UNKNOWN)
# The legacy texts said "rejected cases" whatever the case's status; the app reads only the 403.
GP_MAY_NOT_LABEL = "GP role is not allowed to label cases: a doctor or an admin labels them"
GP_MAY_NOT_ANNOTATE = (
    "GP role is not allowed to annotate cases: a doctor or an admin annotates them"
)
NOT_FOUND_FOR_ANNOTATION = "Case not found for annotation"


@dataclass(frozen=True)
class LabelPolicy:
    holdout_share: float
    retrain_threshold: int
    annotation_entry_types: frozenset[str]


@dataclass(frozen=True)
class Submission:
    correct_label: str
    notes: str | None = None
    source: LabelSource = LabelSource.LABEL
    image_index: int | None = None
    annotations: dict[str, Any] | None = None
    annotated_at: str | None = None
    case_owner_hint: str | None = None


@dataclass(frozen=True)
class LabelOutcome:
    case_id: int
    owner_id: str
    correct_label: str


class LabelService:
    def __init__(self, session: Session, sealer: Sealer, policy: LabelPolicy) -> None:
        self.session = session
        self._sealer = sealer
        self._policy = policy

    def submit(
        self, principal: Principal, case_id_text: str, submission: Submission
    ) -> LabelOutcome:
        annotating = submission.source == LabelSource.ANNOTATION
        if principal.role == Role.GP:
            raise Forbidden(GP_MAY_NOT_ANNOTATE if annotating else GP_MAY_NOT_LABEL)
        if submission.correct_label not in LABEL_CHOICES:
            raise InvalidInput(f"correct_label must be one of: {', '.join(LABEL_CHOICES)}")
        case_id = parse_case_id(case_id_text)
        begin_write(self.session)
        case = self._target(case_id, submission)
        before = len(unused_label_ids(self.session))
        if case.eval_split is None:
            case.eval_split = split_for(case.split_key or case.id, self._policy.holdout_share)
        row = CaseLabel(
            case_id=case.id,
            labeller_id=principal.user_id,
            source=submission.source.value,
            trainable=submission.correct_label != UNKNOWN,
            details=seal_label(self._sealer, case.id, _details(submission)),
        )
        self.session.add(row)
        self.session.flush()
        case.current_label_id = row.id
        case.updated_at = now_utc()
        self.session.flush()
        after = len(unused_label_ids(self.session))
        record_event(
            self.session,
            EventType.LABEL_ADDED,
            f"Case {case.id} labelled by {principal.user_id} ({submission.source.value})",
            actor_id=principal.user_id,
            case_id=str(case.id),
            label_id=row.id,
            trainable=row.trainable,
            split=case.eval_split,
        )
        threshold = self._policy.retrain_threshold
        if before < threshold <= after:
            record_event(
                self.session,
                EventType.THRESHOLD_REACHED,
                f"{after} unused labels: retraining threshold {threshold} reached",
                actor_id=principal.user_id,
                unused_labels=after,
                threshold=threshold,
            )
        self.session.commit()
        return LabelOutcome(case.id, case.owner_id, submission.correct_label)

    def _target(self, case_id: int, submission: Submission) -> Case:
        annotating = submission.source == LabelSource.ANNOTATION
        missing = NOT_FOUND_FOR_ANNOTATION if annotating else CASE_NOT_FOUND
        case = self.session.get(Case, case_id, with_for_update=True)
        if case is None or case.state != CaseState.DECIDED:
            raise NotFound(missing)
        hint = submission.case_owner_hint
        if hint and hint != case.owner_id:
            raise NotFound(missing)
        if annotating and case.entry_type not in self._policy.annotation_entry_types:
            raise NotFound(missing)
        if submission.image_index is not None:
            paths = open_document(self._sealer, case).get("image_paths") or []
            if submission.image_index >= len(paths):
                raise InvalidInput(
                    f"image_index {submission.image_index} is out of range: "
                    f"the case has {len(paths)} image(s)"
                )
        return case


def _details(submission: Submission) -> dict[str, Any]:
    details: dict[str, Any] = {"correct_label": submission.correct_label}
    if submission.notes:
        details["notes"] = submission.notes
    if submission.source == LabelSource.ANNOTATION:
        details["annotations"] = submission.annotations or {"strokes": [], "boxes": []}
        details["image_index"] = submission.image_index
        details["annotated_at"] = submission.annotated_at
    return details
