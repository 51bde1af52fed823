"""Who is calling: the user as the database knows them, and how they proved it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

USER_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Role(StrEnum):
    GP = "gp"
    DOCTOR = "doctor"
    ADMIN = "admin"


class AuthMethod(StrEnum):
    TOKEN = "token"  # noqa: S105 - an enum label
    LEGACY_HEADERS = "legacy"


@dataclass(frozen=True)
class Principal:
    user_id: str
    role: Role
    first_name: str
    last_name: str
    method: AuthMethod = AuthMethod.TOKEN

    @property
    def sees_all_cases(self) -> bool:
        """Doctors and admins review every GP's cases; a GP only ever sees their own, and the
        camera's header identity (no credentials) only ever reaches its own cases."""
        return self.method == AuthMethod.TOKEN and self.role in (Role.DOCTOR, Role.ADMIN)

    def may_change(self, owner_id: str) -> bool:
        """Contract 1.3: a case is changed by its owner, or by a signed-in admin; reviewers act
        through labels and annotations, never by replacing the GP's decision."""
        return owner_id == self.user_id or (
            self.method == AuthMethod.TOKEN and self.role == Role.ADMIN
        )


def is_valid_user_id(value: str) -> bool:
    return bool(USER_ID_PATTERN.fullmatch(value))
