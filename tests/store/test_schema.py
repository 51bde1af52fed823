"""The Alembic migrations build exactly the schema the ORM models describe, on both databases."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from allcare.store.db import Database
from allcare.store.models import Base


def test_migrations_match_the_models(database_url: str) -> None:
    db = Database(database_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        db.migrate()
        with db.engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    finally:
        db.dispose()
