"""/docs and /redoc load every script and style from this server: the API reference works on a
clinic LAN without internet."""

from __future__ import annotations

import html
import re

from tests.browser import rendered
from tests.conftest import Api, live_server


def test_the_reference_pages_need_nothing_from_the_internet(api: Api) -> None:
    for page in ("/docs", "/redoc"):
        html = api.client.get(page)
        assert html.status_code == 200
        linked = re.findall(r'(?:src|href)="([^"]+)"', html.text)
        assert linked, page
        assert all(url.startswith("/docs/assets/") for url in linked), (page, linked)
        assert "http://" not in html.text
        assert "https://" not in html.text
        for url in linked:
            asset = api.client.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 1000, url
    assert "swagger-ui" in api.client.get("/docs/assets/swagger-ui-bundle.js").text[:5000].lower()
    assert api.client.get("/openapi.json").json()["info"]["title"] == "AllCare Server"


def test_a_browser_offline_renders_every_operation_and_the_authorize_button(api: Api) -> None:
    operations = [
        (path, operation["summary"])
        for path, methods in api.client.get("/openapi.json").json()["paths"].items()
        for operation in methods.values()
    ]
    with live_server(api.client.app) as url:
        swagger = rendered(f"{url}/docs")
        redoc = rendered(f"{url}/redoc")
    assert 'class="btn authorize' in swagger
    assert set(re.findall(r'class="opblock-summary-path" data-path="([^"]+)"', swagger)) == {
        path for path, _ in operations
    }
    assert "AllCare Server" in redoc
    for _, summary in operations:
        assert html.escape(summary, quote=False) in redoc, summary
