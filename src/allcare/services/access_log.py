"""Records who touched patient data; one row per access, written in the caller's transaction."""

from __future__ import annotations

from sqlalchemy.orm import Session

from allcare.store.models import AccessEvent


def record_access(
    session: Session,
    *,
    action: str,
    resource: str,
    outcome: str,
    actor_id: str | None,
    actor_kind: str,
    owner_id: str | None = None,
    client: str | None = None,
) -> None:
    session.add(
        AccessEvent(
            actor_id=actor_id,
            actor_kind=actor_kind,
            action=action,
            resource=resource[:160],
            owner_id=owner_id,
            client=(client or "")[:64] or None,
            outcome=outcome,
        )
    )
