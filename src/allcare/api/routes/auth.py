from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status

from allcare.api.audit import note
from allcare.api.deps import RuntimeDep
from allcare.api.schemas.auth import LoginIn, LoginOut, UserOut
from allcare.services.principal import is_valid_user_id
from allcare.services.users import credentials_version

router = APIRouter(tags=["auth"])


@router.post("/auth/login", response_model=LoginOut)
async def login(body: LoginIn, runtime: RuntimeDep, request: Request) -> LoginOut:
    """Every attempt is audited with the username tried (never the password); repeated
    failures per username or per client address answer 429 with Retry-After."""
    request.state.audit_actor = body.username
    note(request, resource=f"user:{body.username if is_valid_user_id(body.username) else '?'}")
    address = request.client.host if request.client else None
    runtime.login_throttle.check(body.username, address)
    user = await runtime.authenticator.authenticate(body.username, body.password)
    if user is None:
        runtime.login_throttle.failed(body.username, address)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Invalid username or password")
    runtime.login_throttle.succeeded(body.username)
    token = runtime.tokens.issue(
        subject=user.id,
        role=user.role,
        first_name=user.first_name,
        last_name=user.last_name,
        credentials_version=credentials_version(user),
    )
    return LoginOut(
        access_token=token,
        user=UserOut(
            user_id=user.id, first_name=user.first_name, last_name=user.last_name, role=user.role
        ),
    )
