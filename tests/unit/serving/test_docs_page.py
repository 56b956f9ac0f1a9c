"""/docs and /redoc load nothing from a CDN: every asset is served by the app itself."""

from __future__ import annotations

import re

import pytest

from slipway.serving.app import DOCS_ASSETS

URL_ATTRIBUTES = re.compile(r"""(?:src|href|url)\s*[:=]\s*['"]([^'"]+)['"]""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_reference_only_local_urls_that_answer(page: str, served) -> None:
    client, _ = served
    response = client.get(page)
    assert response.status_code == 200
    html = response.text
    assert "cdn" not in html.lower()
    assert "//" not in "".join(re.findall(r"""(?:src|href)=['"][^'"]*['"]""", html))
    urls = set(URL_ATTRIBUTES.findall(html))
    assert f"{DOCS_ASSETS}/favicon.png" in urls
    expected = (
        {f"{DOCS_ASSETS}/swagger-ui-bundle.js", f"{DOCS_ASSETS}/swagger-ui.css", "/openapi.json"}
        if page == "/docs"
        else {f"{DOCS_ASSETS}/redoc.standalone.js"}
    )
    assert expected <= urls, urls
    if page == "/docs":  # else Swagger UI loads a badge from validator.swagger.io
        assert '"validatorUrl": null' in html
    for url in urls:
        assert url.startswith("/"), url
        assert client.get(url).status_code == 200, url
