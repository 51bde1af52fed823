from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from allcare.api.deps import AdminDep, SessionDep
from allcare.api.schemas.admin_audit import AccessAuditOut, AccessRecordOut
from allcare.api.schemas.common import IsoDateTime, errors
from allcare.core.clock import aware
from allcare.services.audit.access_log import AccessQuery, page

router = APIRouter(tags=["admin: audit"])


def _local(moment: datetime | None) -> datetime | None:
    return None if moment is None else aware(moment)


@router.get(
    "/admin/audit",
    summary="Who read or changed patient data",
    responses=errors(401, 403),
    response_model=AccessAuditOut,
)
def access_audit(
    _: AdminDep,
    session: SessionDep,
    user: Annotated[str | None, Query(max_length=64, description="who acted")] = None,
    owner: Annotated[str | None, Query(max_length=64, description="whose data")] = None,
    case_id: Annotated[str | None, Query(max_length=20)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    outcome: Annotated[str | None, Query(max_length=16)] = None,
    since: IsoDateTime | None = None,
    until: IsoDateTime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=1, description="next_before of the previous page")
    ] = None,
) -> AccessAuditOut:
    """Who read or changed patient data: newest first, refused attempts included."""
    query = AccessQuery(user, owner, case_id, action, outcome, _local(since), _local(until))
    events, next_before = page(session, query, limit=limit, before=before)
    records = [AccessRecordOut.model_validate(e) for e in events]
    return AccessAuditOut(events=records, next_before=next_before)
