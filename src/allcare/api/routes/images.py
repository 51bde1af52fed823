from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response, status

from allcare.api.audit import note
from allcare.api.deps import ContainerDep, ImagesDep
from allcare.services.cases.images import url_resource
from allcare.services.errors import NotFound

router = APIRouter(tags=["images"])


@router.get(
    "/images/{user_id}/{file_name}",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}}},
        404: {"description": "Unknown image"},
        429: {"description": "Too many unknown image addresses from this client"},
    },
)
def image_by_url(
    user_id: str, file_name: str, request: Request, images: ImagesDep, container: ContainerDep
) -> Response:
    """No credentials (the app's image widget sends none): the random UUID is the protection,
    so a client address that keeps naming photos that do not exist is slowed down (past
    IMAGE_URL_MISSES_PER_MINUTE, 429 for every lookup from there)."""
    client = request.client.host if request.client else "-"
    request.state.audit_actor_kind = "anonymous_url"
    note(request, resource=url_resource(file_name))
    refusal = container.url_misses.refusal(client)
    if refusal is not None:
        wait, record = refusal
        request.state.audit_skip = not record
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"Too many unknown image addresses; retry in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    try:
        image = images.open_for_url(user_id, file_name, client)
    except NotFound:
        container.url_misses.missed(client)
        raise
    request.state.audit_skip = True  # recorded in the transaction that served it
    return Response(
        image.data,
        media_type=image.content_type,
        headers={
            "Cache-Control": "private, max-age=3600",
            "ETag": f'"{image.sha256}"',
            "X-Content-Type-Options": "nosniff",
        },
    )
