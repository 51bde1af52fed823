from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status

from allcare.api.audit import note
from allcare.api.deps import ContainerDep
from allcare.api.schemas.auth import LoginIn, LoginOut, UserOut
from allcare.api.schemas.common import errors
from allcare.services.principal import is_valid_user_id

router = APIRouter(tags=["auth"])


@router.post(
    "/auth/login",
    summary="Sign in: a bearer token and the user",
    responses=errors(400, 401, 413, 429),
    response_model=LoginOut,
)
async def login(body: LoginIn, container: ContainerDep, request: Request) -> LoginOut:
    """Every attempt is audited with the username tried (never the password); repeated
    failures per username or per client address answer 429 with Retry-After. An attempt counts
    as soon as it is admitted, so a parallel burst cannot outrun the limit."""
    request.state.audit_actor = body.username
    note(request, resource=f"user:{body.username if is_valid_user_id(body.username) else '?'}")
    address = request.client.host if request.client else None
    with await container.login_throttle.begin(body.username, address) as attempt:
        account = await container.authenticator.authenticate(body.username, body.password, address)
        if account is None:
            attempt.failed()
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Invalid username or password")
        attempt.succeeded()
    token = container.tokens.issue(
        subject=account.user_id,
        role=account.role.value,
        first_name=account.first_name,
        last_name=account.last_name,
        credentials_version=account.credentials_version,
    )
    return LoginOut(
        access_token=token,
        user=UserOut(
            user_id=account.user_id,
            first_name=account.first_name,
            last_name=account.last_name,
            role=account.role.value,
        ),
    )
