"""Drive the authorization-code flow as a browser would: our authorize → the provider → our callback."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx


async def authorization_url(client: httpx.AsyncClient, headers: dict[str, str], provider: str) -> str:
    response = await client.get(
        f"/v1/connect/{provider}/authorize", headers={**headers, "Accept": "application/json"}
    )
    assert response.status_code == 200, response.text
    url: str = response.json()["authorization_url"]
    return url


async def consent(url: str) -> str:
    """Follow the provider's authorize URL (consent given); the callback URL it redirects the browser to."""
    async with httpx.AsyncClient() as browser:
        response = await browser.get(url)
    assert response.status_code == 302, response.text
    location: str = response.headers["location"]
    return location


def callback_path(location: str, **extra: str) -> str:
    """The callback as a path on our app (the provider redirected to public_base_url), plus extra params."""
    parts = urlsplit(location)
    query = parts.query + "".join(f"&{key}={value}" for key, value in extra.items())
    return f"{parts.path}?{query}"


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


async def link(client: httpx.AsyncClient, headers: dict[str, str], provider: str) -> httpx.Response:
    """The whole flow; the callback's response."""
    location = await consent(await authorization_url(client, headers, provider))
    return await client.get(callback_path(location))
