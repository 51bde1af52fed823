"""/docs and /redoc load every script and style from this server: the API reference works on a
clinic LAN without internet."""

from __future__ import annotations

import re

from tests.conftest import Api


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
