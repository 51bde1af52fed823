"""``/docs`` and ``/redoc`` with their scripts served by this server, not a CDN, so the API
reference works on a clinic LAN without internet. The assets come from the ``fastapi-offline``
wheel (MIT; Swagger UI and ReDoc builds); only its files are used, FastAPI renders the pages."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs/assets"
DESCRIPTION = """The server the AllCare mobile app talks to: sign-in, cases, photo checks and
classification into the 7 HAM10000 classes, expert labels, and the learning loop's
administration.

**Authentication.** `POST /auth/login` answers an `access_token`; send it as
`Authorization: Bearer <token>` (the Authorize button). Roles come from the account: `gp`
(their own cases only), `doctor` and `admin`. Where `API_KEY` is set, the keyed routes also
need `X-API-Key`.

**Errors** are JSON `{"detail": ...}`: a sentence, or for 422 a list of field errors. Each
operation lists the error statuses it can answer; besides those, any operation that reads the
database may answer 503 with `Retry-After` while the database is saturated or down."""


def install_docs(app: FastAPI, openapi_url: str) -> None:
    static = Path(str(files("fastapi_offline") / "static"))
    app.mount(ASSETS, StaticFiles(directory=static), name="docs-assets")
    title = f"{app.title} - API reference"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=title,
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
            swagger_ui_parameters={"persistAuthorization": False},
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=title,
            redoc_js_url=f"{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
