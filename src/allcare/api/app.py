"""The FastAPI application: routes, error handlers, limits and CORS around one Container."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.formparsers import MultiPartParser
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from allcare import __version__
from allcare.api.audit import AuditMiddleware
from allcare.api.body_limit import BodyLimitMiddleware
from allcare.api.deps import require_api_key
from allcare.api.docs_pages import DESCRIPTION, install_docs
from allcare.api.errors import install_error_handlers
from allcare.api.json_text import JsonTextMiddleware
from allcare.api.metrics import AppMetrics
from allcare.api.observe import ObserveMiddleware
from allcare.api.routes import (
    active_learning,
    admin_audit,
    admin_learning,
    admin_models,
    auth,
    cases,
    check_image,
    health,
    images,
    labels,
    metrics,
)
from allcare.api.security_headers import SecurityHeadersMiddleware
from allcare.container import Container
from allcare.core.config import Settings, load_settings

MULTIPART_OVERHEAD_BYTES = 64 * 1024


def create_app(settings: Settings | None = None, container: Container | None = None) -> FastAPI:
    """``container`` lets ``allcare serve`` report configuration errors before uvicorn starts."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.container = container or Container.start(settings)
        try:
            yield
        finally:
            app.state.container.close()

    docs = settings.enable_docs
    app = FastAPI(
        title="AllCare Server",
        description=DESCRIPTION,
        version=__version__,
        lifespan=lifespan,
        docs_url=None,  # served below with local assets
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    install_error_handlers(app)
    if docs:
        install_docs(app, "/openapi.json")
    app.state.metrics = AppMetrics(lambda: app.state.container)
    keyed = [Depends(require_api_key)]
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(auth.router)
    app.include_router(images.router)
    app.include_router(cases.router, dependencies=keyed)
    app.include_router(check_image.router, dependencies=keyed)
    app.include_router(labels.router, dependencies=keyed)
    app.include_router(active_learning.router, dependencies=keyed)
    app.include_router(admin_models.router, dependencies=keyed)
    app.include_router(admin_learning.router, dependencies=keyed)
    app.include_router(admin_audit.router, dependencies=keyed)
    app.add_middleware(AuditMiddleware)
    app.add_middleware(JsonTextMiddleware)  # inside the body limit: it reads capped bodies
    upload_limit = settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES
    app.add_middleware(
        BodyLimitMiddleware,
        json_limit=settings.max_json_body_bytes,
        upload_limit=upload_limit,
        upload_paths=frozenset({"/check-image"}),
    )
    # The photo is read into memory whole anyway, and the body is capped above. Past Starlette's
    # 1 MB default, a phone photo's part was spooled to a temp file with one worker-thread hop
    # per chunk (2 ms of a 3 MB upload, measured). Process-wide setting, so it only ever grows.
    MultiPartParser.spool_max_size = max(MultiPartParser.spool_max_size, upload_limit)
    app.add_middleware(SecurityHeadersMiddleware, https=settings.tls_enabled)
    app.add_middleware(ObserveMiddleware, latency=app.state.metrics.latency)
    origins = settings.cors_origins
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_credentials=origins != ["*"],
        allow_methods=["*"],
        allow_headers=["*"],
    )
    if settings.forwarded_allow_ips:
        # Outermost, so throttles, the audit and the logs all see the client behind the proxy.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.forwarded_allow_ips)
    return app
