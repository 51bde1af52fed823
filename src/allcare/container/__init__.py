"""The composition root: everything a running server or CLI command holds, built once from the
settings. Only ``api/`` and ``cli/`` import it; everything below receives what it needs."""

from allcare.container._container import Container
from allcare.container.store import database_of, open_blobs, open_store

__all__ = ["Container", "database_of", "open_blobs", "open_store"]
