from __future__ import annotations

from fastapi import APIRouter, Request, Response

from allcare.api.deps import ImagesDep

router = APIRouter(tags=["images"])


@router.get(
    "/images/{user_id}/{file_name}",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "Unknown image"}},
)
def image_by_url(user_id: str, file_name: str, request: Request, images: ImagesDep) -> Response:
    """No credentials (the app's image widget sends none): the random UUID is the protection."""
    client = request.client.host if request.client else None
    image = images.open_for_url(user_id, file_name, client)
    return Response(
        image.data,
        media_type=image.content_type,
        headers={
            "Cache-Control": "private, max-age=3600",
            "ETag": f'"{image.sha256}"',
            "X-Content-Type-Options": "nosniff",
        },
    )
