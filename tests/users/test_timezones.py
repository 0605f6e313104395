"""A user's time zone is an IANA name: pseudo zones and paths of the zoneinfo tree are refused (issue 10)."""

from __future__ import annotations

import httpx
import pytest

from tests.core.test_errors import assert_error


@pytest.mark.parametrize(
    "zone",
    [
        "localtime",
        "Factory",
        "posixrules",
        "posix/Europe/Berlin",
        "right/UTC",
        "../zoneinfo/UTC",
        "",
        1,
        True,
    ],
)
async def test_pseudo_zones_and_non_names_are_refused(
    client: httpx.AsyncClient, admin_headers: dict[str, str], zone: object
) -> None:
    response = await client.post("/v1/users", json={"timezone": zone}, headers=admin_headers)
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["loc"] == ["body", "timezone"]  # type: ignore[index]


@pytest.mark.parametrize("zone", ["Europe/Berlin", "UTC", "America/Argentina/Buenos_Aires", "Asia/Kolkata"])
async def test_iana_names_are_accepted(
    client: httpx.AsyncClient, admin_headers: dict[str, str], zone: str
) -> None:
    response = await client.post("/v1/users", json={"timezone": zone}, headers=admin_headers)
    assert response.status_code == 201, response.text


async def test_schema_lists_the_accepted_names(client: httpx.AsyncClient) -> None:
    field = (await client.get("/openapi.json")).json()["components"]["schemas"]["UserCreate"]["properties"][
        "timezone"
    ]
    assert "Europe/Berlin" in field["enum"] and "UTC" in field["enum"]
    assert "localtime" not in field["enum"] and "Factory" not in field["enum"]
