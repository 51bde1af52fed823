from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from allcare.api.deps import CasesDep, PrincipalDep
from allcare.api.schemas.cases import (
    CaseIdOut,
    CaseListOut,
    CaseLoggedOut,
    CaseLogIn,
    CaseUpdatedOut,
    CaseUpdateIn,
    RejectCaseIn,
    ReleaseIdIn,
    ReleaseIdOut,
)
from allcare.services.cases import EntryType

router = APIRouter(tags=["cases"])


@router.post("/cases/next-id", response_model=CaseIdOut)
def next_case_id(principal: PrincipalDep, cases: CasesDep) -> CaseIdOut:
    return CaseIdOut(case_id=str(cases.allocate(principal).id))


@router.post("/cases/release-id", response_model=ReleaseIdOut, response_model_exclude_none=True)
def release_case_id(body: ReleaseIdIn, principal: PrincipalDep, cases: CasesDep) -> ReleaseIdOut:
    return ReleaseIdOut(**cases.release(principal, body.case_id))


@router.get("/cases", response_model=CaseListOut)
def list_cases(
    principal: PrincipalDep,
    cases: CasesDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    status: Annotated[str | None, Query(max_length=64)] = None,
    include_uncertain: bool = True,
    include_rejected: bool = True,
) -> dict[str, object]:
    records = cases.list_records(
        principal,
        limit=limit,
        status=status,
        include_uncertain=include_uncertain,
        include_rejected=include_rejected,
    )
    return {"cases": records}


@router.post("/cases", response_model=CaseLoggedOut)
def log_case(body: CaseLogIn, principal: PrincipalDep, cases: CasesDep) -> CaseLoggedOut:
    case = cases.record_decision(principal, EntryType.CASE, body.model_dump())
    return CaseLoggedOut(
        status="ok", message="logged", case_id=str(case.id), case_status=case.status
    )


@router.post("/cases/uncertain", response_model=CaseLoggedOut)
def log_uncertain(body: CaseLogIn, principal: PrincipalDep, cases: CasesDep) -> CaseLoggedOut:
    case = cases.record_decision(principal, EntryType.UNCERTAIN, body.model_dump())
    return CaseLoggedOut(
        status="ok", message="uncertain_logged", case_id=str(case.id), case_status=case.status
    )


@router.post("/cases/reject", response_model=CaseLoggedOut, response_model_exclude_none=True)
def reject_case(body: RejectCaseIn, principal: PrincipalDep, cases: CasesDep) -> CaseLoggedOut:
    fields = body.model_dump() | {"status": "rejected"}
    case = cases.record_decision(principal, EntryType.REJECT, fields)
    return CaseLoggedOut(status="ok", message="rejected_logged", case_id=str(case.id))


@router.put("/cases/{case_id}", response_model=CaseUpdatedOut)
def update_case(
    case_id: str, body: CaseUpdateIn, principal: PrincipalDep, cases: CasesDep
) -> CaseUpdatedOut:
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    case = cases.update(principal, case_id, changes)
    return CaseUpdatedOut(status="ok", case_id=str(case.id))
