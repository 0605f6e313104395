"""/docs, /redoc and / work offline: every asset is served by the app itself (issue 10)."""

from __future__ import annotations

import re

import httpx
import pytest

_URL_ATTRIBUTE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
_JS_STRING_URL = re.compile(r"""url\s*:\s*['"]([^'"]+)['"]""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_reference_only_local_assets_that_answer(client: httpx.AsyncClient, page: str) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    html = response.text
    urls = _URL_ATTRIBUTE.findall(html) + _JS_STRING_URL.findall(html)
    assert urls, html
    assert "//" not in html.replace("://rhythm.test", ""), "absolute or protocol-relative URL in the page"
    for url in urls:
        assert url.startswith("/"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
    assert any(url.endswith(".js") for url in urls)


async def test_swagger_ui_does_not_call_the_public_validator(client: httpx.AsyncClient) -> None:
    html = (await client.get("/docs")).text
    assert '"validatorUrl": null' in html


async def test_root_points_to_the_docs(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    body = response.json()
    assert body["docs"] == "/docs"
    assert (await client.get(body["docs"])).status_code == 200
    assert (await client.get(body["openapi"])).json()["info"]["title"] == "Rhythm"
