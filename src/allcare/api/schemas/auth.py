from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, StringConstraints


class LoginIn(BaseModel):
    username: Annotated[str, StringConstraints(max_length=64)]
    password: Annotated[str, StringConstraints(max_length=1024)]


class UserOut(BaseModel):
    user_id: str
    first_name: str
    last_name: str
    role: str


class LoginOut(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    user: UserOut
