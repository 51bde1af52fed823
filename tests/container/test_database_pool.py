"""The database pool is the operator's to size (DATABASE_POOL_SIZE, DATABASE_MAX_OVERFLOW), and
`serve --workers N` says at start when N full pools do not fit PostgreSQL's max_connections."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from allcare.container import database_of
from allcare.container.store import warn_if_pools_exceed_server
from allcare.core.config import Settings
from tests.conftest import empty_postgres_database


def test_the_pool_has_the_configured_size(tmp_path: Path) -> None:
    settings = Settings(storage_root=tmp_path, database_pool_size=3, database_max_overflow=2)
    db = database_of(settings)
    try:
        assert db.engine.pool.size() == 3  # type: ignore[attr-defined]
        assert db.max_connections == 5
    finally:
        db.dispose()
    defaults = database_of(Settings(storage_root=tmp_path))
    assert defaults.max_connections == 40
    defaults.dispose()


@pytest.mark.parametrize(
    ("field", "value"),
    [("database_pool_size", 0), ("database_pool_size", 1001), ("database_max_overflow", -1)],
)
def test_a_pool_size_out_of_range_is_refused(tmp_path: Path, field: str, value: int) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings.model_validate({"storage_root": tmp_path, field: value})


@pytest.mark.postgres
def test_processes_whose_pools_exceed_max_connections_are_warned_about(
    postgres_server: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with empty_postgres_database(postgres_server) as url:
        db = database_of(Settings(storage_root=tmp_path, database_url=url))
        try:
            limit = db.server_max_connections()
            assert limit is not None
            assert limit > 0
            fitting = limit // db.max_connections
            with caplog.at_level(logging.WARNING, logger="allcare.container.store"):
                warn_if_pools_exceed_server(db, fitting)
                assert not caplog.records
                warn_if_pools_exceed_server(db, fitting + 1)
            [record] = caplog.records
            message = record.getMessage()
            assert f"{(fitting + 1) * 40} in all" in message
            assert f"max_connections={limit}" in message
            assert "DATABASE_MAX_OVERFLOW" in message
        finally:
            db.dispose()


def test_sqlite_has_no_server_limit(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = database_of(Settings(storage_root=tmp_path))
    try:
        assert db.server_max_connections() is None
        with caplog.at_level(logging.WARNING):
            warn_if_pools_exceed_server(db, 64)
        assert not caplog.records
    finally:
        db.dispose()
