"""Request-scoped dependencies: container, database session, API key and the calling user."""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterator
from typing import Annotated

import anyio.to_thread
from fastapi import Depends, Header, HTTPException, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.datastructures import Headers

from allcare.api.audit import note_actor
from allcare.container import Container
from allcare.core.tokens import InvalidToken
from allcare.services.accounts.users import Account, active_account
from allcare.services.cases.images import ImageService
from allcare.services.cases.records import CaseService
from allcare.services.labels.records import LabelPolicy, LabelService
from allcare.services.principal import AuthMethod, Principal, Role

BEARER = {"WWW-Authenticate": "Bearer"}
# Declared for the OpenAPI document (the /docs Authorize button, each operation's lock); the
# checks below read the headers themselves, so their messages stay the app's.
_BEARER_SCHEME = HTTPBearer(
    auto_error=False,
    scheme_name="BearerToken",
    description="The access_token of POST /auth/login: `Authorization: Bearer <token>`",
)
_CAMERA_SCHEME = APIKeyHeader(
    name="X-User-Id",
    auto_error=False,
    scheme_name="CameraUserId",
    description="Legacy, POST /check-image only: the camera screen's GP account id, without a "
    "token (LEGACY_IDENTITY_HEADERS); X-User-Role is ignored",
)
TokenDeclared = Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER_SCHEME)]
_LEGACY_ID_CHARS = re.compile(r"[^\w-]")
LEGACY_GP_ONLY = (
    "X-User-Id is accepted for GP accounts only; doctors and admins send a token "
    "from POST /auth/login"
)


def get_container(request: Request) -> Container:
    return request.app.state.container


ContainerDep = Annotated[Container, Depends(get_container)]


def get_session(container: ContainerDep) -> Iterator[Session]:
    with container.db.session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_case_service(session: SessionDep, container: ContainerDep) -> CaseService:
    return CaseService(session, container.sealer, container.settings.max_case_record_bytes)


CasesDep = Annotated[CaseService, Depends(get_case_service)]


def get_label_service(session: SessionDep, container: ContainerDep) -> LabelService:
    settings = container.settings
    policy = LabelPolicy(
        holdout_share=settings.eval_holdout_share,
        retrain_threshold=settings.retrain_min_new_labels,
        annotation_entry_types=settings.annotation_entry_types,
    )
    return LabelService(session, container.sealer, policy)


LabelsDep = Annotated[LabelService, Depends(get_label_service)]


def get_image_service(
    session: SessionDep, container: ContainerDep, cases: CasesDep
) -> ImageService:
    return ImageService(session, container.blobs, container.sealer, cases)


ImagesDep = Annotated[ImageService, Depends(get_image_service)]


def require_api_key(
    container: ContainerDep,
    api_key: Annotated[
        str | None,
        Header(
            alias="X-API-Key",
            description="The app's bundled client key: required when the server sets API_KEY; "
            "a marker of the app, never an identity",
        ),
    ] = None,
) -> None:
    """The app's bundled client marker; checked for compatibility, never trusted as identity."""
    expected = container.settings.api_key.get_secret_value()
    if not expected:
        return
    given = api_key or ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Invalid API key")


def _principal(session: Session, account: Account, method: AuthMethod) -> Principal:
    principal = account.principal(method)
    # End the lookup's transaction: the connection goes back to the pool while the request
    # decodes or waits for inference, and no read snapshot is held meanwhile.
    session.commit()
    return principal


def _from_bearer(header: str, session: Session, container: Container) -> Principal:
    parts = header.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Invalid Authorization header format. Expected: Bearer <token>",
            headers=BEARER,
        )
    try:
        claims = container.tokens.decode(parts[1])
    except InvalidToken as exc:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, str(exc), headers=BEARER) from exc
    account = active_account(session, claims.subject)
    if account is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "Account is disabled or no longer exists", headers=BEARER
        )
    if claims.credentials_version != account.credentials_version:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Token was revoked (credentials changed); please log in again",
            headers=BEARER,
        )
    return _principal(session, account, AuthMethod.TOKEN)


def current_principal(
    request: Request, session: SessionDep, container: ContainerDep, _token: TokenDeclared
) -> Principal:
    """JWT only; the user is re-read from the database on every request, role included."""
    header = request.headers.get("authorization")
    if not header:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Not authenticated", headers=BEARER)
    principal = _from_bearer(header, session, container)
    note_actor(request, principal)
    return principal


async def camera_principal(
    request: Request,
    container: ContainerDep,
    _token: TokenDeclared,
    _camera: Annotated[str | None, Depends(_CAMERA_SCHEME)],
) -> Principal:
    """JWT, or the legacy X-User-Id header the camera screen sends instead of a token.

    The header only names an existing, enabled GP account (the app's camera screen is the GP's;
    a doctor's or admin's id is refused, as their accounts can reach other users' data); the
    role always comes from the database and X-User-Role is ignored. Such a principal only ever
    reaches its own cases (``Principal.sees_all_cases``). The upload route
    needs no request session, so the lookup takes one worker-thread hop with its own short one.
    """
    principal = await anyio.to_thread.run_sync(_camera_lookup, request.headers, container)
    note_actor(request, principal)
    return principal


def _camera_lookup(headers: Headers, container: Container) -> Principal:
    with container.db.session() as session:
        header = headers.get("authorization")
        if header:
            return _from_bearer(header, session, container)
        if not container.settings.legacy_identity_headers:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Not authenticated", headers=BEARER)
        user_id = _LEGACY_ID_CHARS.sub("", headers.get("x-user-id", "").strip())
        if not user_id:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST, "Missing Authorization header or X-User-Id header"
            )
        account = active_account(session, user_id)
        if account is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Unknown or disabled user")
        if account.role != Role.GP:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, LEGACY_GP_ONLY, headers=BEARER)
        return _principal(session, account, AuthMethod.LEGACY_HEADERS)


def require_admin(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if principal.role != Role.ADMIN:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Admin role required")
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]
AdminDep = Annotated[Principal, Depends(require_admin)]
CameraPrincipalDep = Annotated[Principal, Depends(camera_principal)]
