from __future__ import annotations

import hmac

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from allcare.api.deps import ContainerDep

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, container: ContainerDep) -> Response:
    """Prometheus text format, for a scraper holding METRICS_TOKEN as its bearer token.
    Without METRICS_TOKEN the endpoint does not exist (404)."""
    expected = container.settings.metrics_token
    if expected is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Not Found")
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "Invalid metrics token", {"WWW-Authenticate": "Bearer"}
        )
    body = generate_latest(request.app.state.metrics.collectors)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
