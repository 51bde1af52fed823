"""Accounts: sign-in, administration from the CLI, and import of the legacy users.json."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import anyio.to_thread
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from allcare.core.fair_limiter import FairLimiter
from allcare.core.passwords import hash_password, is_bcrypt_hash, verify_password
from allcare.services.errors import Conflict, InvalidInput, NotFound
from allcare.services.principal import AuthMethod, Principal, Role, is_valid_user_id
from allcare.store.db import Database, begin_write
from allcare.store.models import Case, Image, User, utcnow

log = logging.getLogger(__name__)


class Authenticator:
    """Checks logins with at most ``parallel`` bcrypt checks at a time (one per core).

    A quarter second of bcrypt per login is the point, but a storm of logins (every phone of a
    clinic in the morning) sharing the cores would make all of them miss the app's 10 s timeout
    together; waiting in turn lets most finish in time. The turns go round the client addresses
    (FairLimiter), so one address's burst of bogus logins never queues ahead of another
    address's login. Waiting holds neither a thread nor a database connection.
    """

    def __init__(self, db: Database, parallel: int) -> None:
        self._db = db
        self._checks = FairLimiter(parallel)

    async def authenticate(
        self, username: str, password: str, address: str | None
    ) -> Account | None:
        """The enabled user with this password, or None; costs one bcrypt check either way."""
        user = await anyio.to_thread.run_sync(self._find, username)
        hashed = user.password_hash if user else None
        truncate = user is not None and user.legacy_password
        async with self._checks.slot(address or ""):
            ok = await anyio.to_thread.run_sync(verify_password, password, hashed, truncate)
        if user is None or not ok or user.disabled:
            return None
        return Account.of(user)

    def _find(self, username: str) -> User | None:
        if not is_valid_user_id(username):
            return None
        with self._db.session() as session:
            return session.get(User, username)


@dataclass(frozen=True)
class Account:
    """An enabled user as sign-in and each request see them: never the password hash."""

    user_id: str
    role: Role
    first_name: str
    last_name: str
    credentials_version: int

    @classmethod
    def of(cls, user: User) -> Account:
        return cls(
            user_id=user.id,
            role=Role(user.role),
            first_name=user.first_name,
            last_name=user.last_name,
            credentials_version=credentials_version(user),
        )

    def principal(self, method: AuthMethod) -> Principal:
        return Principal(self.user_id, self.role, self.first_name, self.last_name, method)


def active_account(session: Session, user_id: str) -> Account | None:
    user = session.get(User, user_id) if is_valid_user_id(user_id) else None
    return None if user is None or user.disabled else Account.of(user)


def credentials_version(user: User) -> int:
    """Changes whenever the password, role or enabled state changes; carried in tokens."""
    return int(user.credentials_changed_at.timestamp() * 1_000_000)


def parse_role(value: str) -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError as exc:
        raise InvalidInput(f"Unknown role {value!r}; use one of gp, doctor, admin") from exc


def create_user(
    session: Session,
    user_id: str,
    password: str,
    role: str,
    first_name: str = "",
    last_name: str = "",
) -> User:
    if not is_valid_user_id(user_id):
        raise InvalidInput("User id must be 1-64 letters, digits, '-' or '_'")
    begin_write(session)
    if session.get(User, user_id) is not None:
        raise Conflict(f"User {user_id} already exists")
    user = User(
        id=user_id,
        password_hash=hash_password(password),
        role=parse_role(role).value,
        first_name=first_name,
        last_name=last_name,
    )
    session.add(user)
    session.commit()
    return user


def has_accounts(session: Session) -> bool:
    return session.scalar(select(User.id).limit(1)) is not None


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)))


def _existing(session: Session, user_id: str) -> User:
    begin_write(session)
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"User {user_id} not found")
    return user


def set_role(session: Session, user_id: str, role: str) -> User:
    user = _existing(session, user_id)
    user.role = parse_role(role).value
    user.credentials_changed_at = utcnow()
    session.commit()
    return user


def reset_password(session: Session, user_id: str, password: str) -> User:
    user = _existing(session, user_id)
    user.password_hash = hash_password(password)
    user.legacy_password = False
    user.credentials_changed_at = utcnow()
    session.commit()
    return user


def set_disabled(session: Session, user_id: str, disabled: bool) -> User:
    user = _existing(session, user_id)
    user.disabled = disabled
    user.credentials_changed_at = utcnow()
    session.commit()
    return user


def delete_user(session: Session, user_id: str) -> None:
    """Only accounts that own no patient data; others are disabled so their cases stay intact."""
    user = _existing(session, user_id)
    owned = session.scalar(select(func.count()).select_from(Case).where(Case.owner_id == user_id))
    images = session.scalar(
        select(func.count()).select_from(Image).where(Image.owner_id == user_id)
    )
    if owned or images:
        raise Conflict(
            f"User {user_id} owns {owned} case ids and {images} images; disable the account instead"
        )
    session.delete(user)
    session.commit()


@dataclass
class UserImportReport:
    added: list[str] = field(default_factory=list)
    kept_existing: list[str] = field(default_factory=list)
    defaulted_role: list[str] = field(default_factory=list)
    invalid: dict[str, str] = field(default_factory=dict)


def import_legacy_users(session: Session, path: Path, *, commit: bool = True) -> UserImportReport:
    """Add the legacy file's accounts that are new here; never overwrite an existing account.
    ``commit=False`` leaves the rows in the caller's transaction (a migration's dry run)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"Cannot read users file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"Users file {path} must hold a JSON object keyed by user id")
    report = UserImportReport()
    begin_write(session)
    for user_id, entry in data.items():
        problem = _legacy_entry_problem(user_id, entry)
        if problem:
            report.invalid[str(user_id)] = problem
            continue
        if session.get(User, user_id) is not None:
            report.kept_existing.append(user_id)
            continue
        role_text = str(entry.get("role") or "").strip().lower()
        if role_text not in {r.value for r in Role}:
            report.defaulted_role.append(user_id)
            role_text = Role.GP.value
        session.add(
            User(
                id=user_id,
                password_hash=entry["password_hash"],
                legacy_password=True,
                role=role_text,
                first_name=str(entry.get("first_name") or ""),
                last_name=str(entry.get("last_name") or ""),
            )
        )
        report.added.append(user_id)
    if commit:
        session.commit()
    else:
        session.flush()
    if report.defaulted_role:
        log.warning(
            "Users without a valid role were imported as 'gp' (least privilege): %s",
            ", ".join(report.defaulted_role),
        )
    for user_id, problem in report.invalid.items():
        log.warning("Skipped user %r from %s: %s", user_id, path, problem)
    return report


def _legacy_entry_problem(user_id: object, entry: object) -> str | None:
    if not isinstance(user_id, str) or not is_valid_user_id(user_id):
        return "user id must be 1-64 letters, digits, '-' or '_'"
    if not isinstance(entry, dict):
        return "entry is not an object"
    password_hash = entry.get("password_hash")
    if not isinstance(password_hash, str) or not is_bcrypt_hash(password_hash):
        return "password_hash is not a bcrypt hash"
    return None
