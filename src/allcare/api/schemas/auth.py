from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints


class LoginIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"username": "gp1", "password": "<gp1's password>"}]}
    )

    username: Annotated[str, StringConstraints(max_length=64)]
    password: Annotated[str, StringConstraints(max_length=1024)]


class UserOut(BaseModel):
    user_id: str
    first_name: str
    last_name: str
    role: str


class LoginOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...",
                    "token_type": "bearer",
                    "user": {
                        "user_id": "gp1",
                        "first_name": "Ali",
                        "last_name": "Khan",
                        "role": "gp",
                    },
                }
            ]
        }
    )

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    user: UserOut
