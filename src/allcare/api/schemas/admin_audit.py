"""The access audit's page (GET /admin/audit): who read or changed patient data."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class AccessRecordOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: str
    actor_id: str | None
    actor_kind: str
    action: str
    resource: str
    owner_id: str | None
    client: str | None
    outcome: str
    status_code: int | None


class AccessAuditOut(BaseModel):
    status: Literal["ok"] = "ok"
    events: list[AccessRecordOut]
    next_before: int | None
