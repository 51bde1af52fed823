from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from allcare.api.audit import note
from allcare.api.deps import CasesDep, PrincipalDep
from allcare.api.schemas.cases import (
    CaseIdOut,
    CaseListOut,
    CaseLoggedOut,
    CaseLogIn,
    CaseRecordOut,
    CaseUpdatedOut,
    CaseUpdateIn,
    RejectCaseIn,
    ReleaseIdIn,
    ReleaseIdOut,
)
from allcare.api.schemas.common import errors
from allcare.services.cases.records import EntryType
from allcare.services.principal import Principal

router = APIRouter(tags=["cases"])


@router.post(
    "/cases/next-id",
    summary="Allocate the next case id",
    responses=errors(401),
    response_model=CaseIdOut,
)
def next_case_id(principal: PrincipalDep, cases: CasesDep, request: Request) -> CaseIdOut:
    """A new case id for this GP (a released one of theirs first); the app asks before its first
    photo."""
    case_id = cases.allocate(principal)
    note(request, resource=f"case:{case_id}", owner=principal.user_id)
    return CaseIdOut(case_id=str(case_id))


@router.post(
    "/cases/release-id",
    summary="Give back an unused case id",
    responses=errors(400, 401, 413),
    response_model=ReleaseIdOut,
    response_model_exclude_none=True,
)
def release_case_id(
    body: ReleaseIdIn, principal: PrincipalDep, cases: CasesDep, request: Request
) -> ReleaseIdOut:
    """Give back an id the GP allocated but never used (no photo, no decision); any other
    answers `status: skipped` with the reason."""
    note(request, resource=f"case:{body.case_id[:40]}")  # whose it is: the audit looks it up
    return ReleaseIdOut.of(cases.release(principal, body.case_id))


@router.get(
    "/cases",
    summary="List cases (a GP's own; doctors and admins every GP's)",
    responses=errors(401),
    response_model=CaseListOut,
)
def list_cases(
    principal: PrincipalDep,
    cases: CasesDep,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    status: Annotated[str | None, Query(max_length=64)] = None,
    include_uncertain: bool = True,
    include_rejected: bool = True,
) -> CaseListOut:
    """Newest first. A GP sees only their own cases; doctors and admins see every GP's."""
    records = cases.list_records(
        principal,
        limit=limit,
        status=status,
        include_uncertain=include_uncertain,
        include_rejected=include_rejected,
    )
    note(request, resource=f"cases:{len(records)}", owner=_scope(principal))
    return CaseListOut(cases=[CaseRecordOut.from_record(record) for record in records])


def _note_target(request: Request, case_id: str) -> None:
    """The case a decision names, recorded before the service may refuse it: a refused attempt
    on someone else's case keeps its target (and the audit finds the owner)."""
    if case_id.strip():
        note(request, resource=f"case:{case_id.strip()[:40]}")


def _scope(principal: Principal) -> str | None:
    """Whose cases a list can show: the GP's own, or (doctor, admin) everyone's."""
    return None if principal.sees_all_cases else principal.user_id


@router.post(
    "/cases",
    summary="Log a case with the GP's decision",
    responses=errors(400, 401, 403, 404, 413),
    response_model=CaseLoggedOut,
)
def log_case(
    body: CaseLogIn, principal: PrincipalDep, cases: CasesDep, request: Request
) -> CaseLoggedOut:
    """The GP's decision on a case, with the prediction the app showed; photos named in
    `image_paths` must be the GP's own."""
    _note_target(request, body.case_id)
    case = cases.record_decision(principal, EntryType.CASE, body.model_dump())
    note(request, resource=f"case:{case.id}", owner=case.owner_id)
    return CaseLoggedOut(
        status="ok", message="logged", case_id=str(case.id), case_status=case.status
    )


@router.post(
    "/cases/uncertain",
    summary="Log a case the GP is unsure of",
    responses=errors(400, 401, 403, 404, 413),
    response_model=CaseLoggedOut,
)
def log_uncertain(
    body: CaseLogIn, principal: PrincipalDep, cases: CasesDep, request: Request
) -> CaseLoggedOut:
    """Like POST /cases, for a case the GP wants an expert to look at."""
    _note_target(request, body.case_id)
    case = cases.record_decision(principal, EntryType.UNCERTAIN, body.model_dump())
    note(request, resource=f"case:{case.id}", owner=case.owner_id)
    return CaseLoggedOut(
        status="ok", message="uncertain_logged", case_id=str(case.id), case_status=case.status
    )


@router.post(
    "/cases/reject",
    summary="Log a case the GP rejected the prediction of",
    responses=errors(400, 401, 403, 404, 413),
    response_model=CaseLoggedOut,
    response_model_exclude_none=True,
)
def reject_case(
    body: RejectCaseIn, principal: PrincipalDep, cases: CasesDep, request: Request
) -> CaseLoggedOut:
    """Like POST /cases, for a case whose prediction the GP rejected (status `rejected`)."""
    fields = body.model_dump() | {"status": "rejected"}
    _note_target(request, body.case_id)
    case = cases.record_decision(principal, EntryType.REJECT, fields)
    note(request, resource=f"case:{case.id}", owner=case.owner_id)
    return CaseLoggedOut(status="ok", message="rejected_logged", case_id=str(case.id))


@router.put(
    "/cases/{case_id}",
    summary="Change a logged case's details",
    responses=errors(400, 401, 404, 413),
    response_model=CaseUpdatedOut,
)
def update_case(
    case_id: str, body: CaseUpdateIn, principal: PrincipalDep, cases: CasesDep, request: Request
) -> CaseUpdatedOut:
    """Merge the given fields into a logged case of the caller's; others' cases answer 404."""
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    case = cases.update(principal, case_id, changes)
    note(request, owner=case.owner_id)
    return CaseUpdatedOut(status="ok", case_id=str(case.id))
