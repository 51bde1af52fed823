"""Engine, sessions and migrations. SQLite (WAL) by default, PostgreSQL through DATABASE_URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from allcare.store.models import Counter

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
CASE_COUNTER = "case_id"


_WRITE_OPTION = "allcare_write"


def _configure_sqlite(engine: Engine) -> None:
    """WAL so readers never block; write transactions (see ``begin_write``) lock up front."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        writes = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")


def begin_write(session: Session) -> None:
    """Start a transaction that will write; any open read-only transaction is ended first.

    On SQLite a deferred transaction that reads and then writes fails at once (SQLITE_BUSY) if
    another writer committed in between; BEGIN IMMEDIATE waits for the lock (busy_timeout) instead.
    On PostgreSQL this is a plain BEGIN; row locks (FOR UPDATE) do the rest.
    """
    if session.in_transaction():
        session.commit()
    session.connection(execution_options={_WRITE_OPTION: True})


class Database:
    def __init__(
        self, url: str, *, echo: bool = False, pool_size: int = 10, max_overflow: int = 30
    ) -> None:
        """``pool_size`` connections stay open, up to ``max_overflow`` more under load
        (DATABASE_POOL_SIZE, DATABASE_MAX_OVERFLOW)."""
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.max_connections = pool_size + max_overflow
        kwargs: dict[str, Any] = {
            "echo": echo,
            "pool_pre_ping": not self.is_sqlite,
            "pool_size": pool_size,
            "max_overflow": max_overflow,
        }
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            _ensure_sqlite_dir(url)
        self.engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def server_max_connections(self) -> int | None:
        """PostgreSQL's ``max_connections``; None on SQLite."""
        if self.is_sqlite:
            return None
        with self.engine.connect() as connection:
            return int(connection.exec_driver_sql("SHOW max_connections").scalar_one())

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema to an Alembic revision, the newest by default (idempotent)."""
        with self.engine.begin() as connection:
            config = migration_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    def unmigrate(self) -> None:
        """Drop every table of the schema: only for an empty database about to be restored."""
        with self.engine.begin() as connection:
            config = migration_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "base")

    def revision(self) -> str | None:
        """The schema's Alembic revision; None for a database never migrated."""
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def ensure_case_counter(self, start: int) -> None:
        """The next case id is at least ``start`` (CASE_ID_START), never lower than one issued."""
        with self.session() as session:
            begin_write(session)
            if session.get(Counter, CASE_COUNTER) is None:
                session.add(Counter(name=CASE_COUNTER, value=start - 1))
                try:
                    session.commit()
                except IntegrityError:
                    session.rollback()
                begin_write(session)
            session.execute(
                update(Counter)
                .where(Counter.name == CASE_COUNTER, Counter.value < start - 1)
                .values(value=start - 1)
            )
            session.commit()

    def ping(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def migration_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def next_value(session: Session, counter: str) -> int:
    """Atomically take the next value of a named counter (row lock / SQLite write lock)."""
    return session.execute(
        update(Counter)
        .where(Counter.name == counter)
        .values(value=Counter.value + 1)
        .returning(Counter.value)
    ).scalar_one()


def _ensure_sqlite_dir(url: str) -> None:
    path = url.split("///", 1)[-1] if "///" in url else ""
    if path and path != ":memory:" and not path.startswith("file:"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def hold_lock(session: Session, name: str) -> None:
    """A named lock held until the caller's write transaction ends (a row lock on PostgreSQL;
    on SQLite the write transaction itself already excludes every other writer)."""
    if session.get(Counter, name, with_for_update=True) is not None:
        return
    try:
        with session.begin_nested():
            session.add(Counter(name=name, value=0))
    except IntegrityError:
        pass
    session.get(Counter, name, with_for_update=True, populate_existing=True)


def fetch_rows(session: Session, statement: Any) -> list[tuple[Any, ...]]:
    """Plain DBAPI tuples for a scan of 100,000+ rows, skipping SQLAlchemy's Row objects (which
    cost a microsecond and more per row). Only for columns that need no type conversion."""
    connection = session.connection()
    compiled = statement.compile(
        dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
    )
    params: Any = compiled.construct_params()
    if compiled.positional:
        params = tuple(params[name] for name in compiled.positiontup or ())
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(str(compiled), params)
        return list(cursor.fetchall())
    finally:
        cursor.close()
