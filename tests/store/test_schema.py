"""The Alembic migrations build exactly the schema the ORM models describe, on both databases."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text

from allcare.store.db import Database
from allcare.store.models import Base, User


def test_migrations_match_the_models(database_url: str) -> None:
    db = Database(database_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        db.migrate()
        with db.engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    finally:
        db.dispose()


def test_accounts_made_before_the_legacy_password_flag_keep_the_old_truncation(
    database_url: str,
) -> None:
    """Nothing tells an imported hash from one made here, so existing accounts keep the old
    login behaviour; accounts created afterwards do not get it."""
    db = Database(database_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        db.migrate("0005")
        with db.engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO users (id, password_hash, first_name, last_name, role, "
                    "disabled, created_at, credentials_changed_at) VALUES ('old', 'x', '', '', "
                    "'gp', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
        db.migrate()
        with db.session() as session:
            session.add(User(id="new", password_hash="x", role="gp"))
            session.commit()
            flags = {
                row[0]: row[1] for row in session.execute(select(User.id, User.legacy_password))
            }
        assert flags == {"old": True, "new": False}
    finally:
        db.dispose()
