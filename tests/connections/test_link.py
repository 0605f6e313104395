"""Linking accounts: authorize → local authorization server → callback, and tokens the app obtained itself."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.crypto import ACCESS_TOKEN_CONTEXT, REFRESH_TOKEN_CONTEXT, TokenCipher
from app.core.tasks import BACKFILL_CONNECTION, CALENDAR_SETUP_CONNECTION
from app.models import DeviceConnection, OAuthState
from app.models.base import utcnow
from tests.connections.flow import authorization_url, callback_path, consent, link, query_of
from tests.connections.provider_server import CLIENT_ID, ProviderServer
from tests.support import CreateUser
from tests.webhooks.terra import queued


async def _connections(db_session: AsyncSession) -> list[DeviceConnection]:
    db_session.expire_all()
    return list((await db_session.scalars(select(DeviceConnection))).all())


async def test_authorize_redirects_to_the_provider_with_state_and_pkce(
    connect_client: httpx.AsyncClient, connect_user: CreateUser, provider: ProviderServer
) -> None:
    _, headers = await connect_user()
    response = await connect_client.get("/v1/connect/google/authorize", headers=headers)
    assert response.status_code == 302
    assert response.headers["cache-control"] == "no-store"
    location = response.headers["location"]
    assert location.startswith(f"{provider.base_url}/authorize?")
    params = query_of(location)
    assert params["client_id"] == CLIENT_ID
    assert params["redirect_uri"] == "http://rhythm.test/v1/connect/google/callback"
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
    assert params["access_type"] == "offline"
    assert "https://www.googleapis.com/auth/calendar.readonly" in params["scope"].split()
    assert len(params["state"]) >= 32
    # Oura does not do PKCE: no challenge is sent.
    oura = query_of(await authorization_url(connect_client, headers, "oura"))
    assert "code_challenge" not in oura and oura["state"] != params["state"]


async def test_unconfigured_or_unknown_provider_is_404(
    connect_client: httpx.AsyncClient,
    connect_user: CreateUser,
    connect_settings: Settings,
    client: httpx.AsyncClient,
    create_user: CreateUser,
) -> None:
    _, headers = await connect_user()
    response = await connect_client.get("/v1/connect/fitbit/authorize", headers=headers)
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    # The default test app has no client ids configured: every OAuth provider is closed.
    _, plain_headers = await create_user()
    response = await client.get("/v1/connect/oura/authorize", headers=plain_headers)
    assert response.status_code == 404
    assert (await client.get("/v1/connect/oura/callback?code=x&state=y")).status_code == 404


async def test_authorize_needs_a_user(connect_client: httpx.AsyncClient) -> None:
    response = await connect_client.get("/v1/connect/oura/authorize")
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("name", "account", "task"),
    [
        ("oura", "oura-8f3a", BACKFILL_CONNECTION),
        ("whoop", "10129", BACKFILL_CONNECTION),
        ("google-health", "hu-5512", BACKFILL_CONNECTION),
        ("google", "108877665544", CALENDAR_SETUP_CONNECTION),
    ],
)
async def test_callback_links_the_account_the_provider_names(
    connect_client: httpx.AsyncClient,
    connect_user: CreateUser,
    connect_settings: Settings,
    provider: ProviderServer,
    db_session: AsyncSession,
    name: str,
    account: str,
    task: str,
) -> None:
    user_id, headers = await connect_user()
    provider.state.account = account
    location = await consent(await authorization_url(connect_client, headers, name))
    # A client-supplied provider user id is ignored: the account comes from the provider's profile endpoint.
    response = await connect_client.get(
        callback_path(location, user_id="victim-account", external_user_id="x")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["provider"] == name and body["external_user_id"] == account and body["status"] == "active"
    assert "access_token" not in response.text and "rt-" not in response.text

    (connection,) = await _connections(db_session)
    assert connection.user_id == user_id and connection.external_user_id == account
    grant = provider.state.grants[-1]
    # Encrypted at rest: the columns hold ciphertext that decrypts (bound to its column) to the issued tokens.
    assert connection.access_token_encrypted is not None and connection.refresh_token_encrypted is not None
    assert grant.access_token not in connection.access_token_encrypted
    cipher = TokenCipher(connect_settings.secret_key.get_secret_value())
    assert (
        cipher.decrypt(connection.access_token_encrypted, context=ACCESS_TOKEN_CONTEXT) == grant.access_token
    )
    assert (
        cipher.decrypt(connection.refresh_token_encrypted, context=REFRESH_TOKEN_CONTEXT)
        == grant.refresh_token
    )
    assert connection.token_expires_at is not None
    assert timedelta(minutes=55) < connection.token_expires_at - utcnow() <= timedelta(hours=1)
    if name in ("google", "google-health"):
        assert provider.state.pkce_verified == 1
    # The on-link job went to the broker after the commit, with the connection id.
    queue = "calendar" if task == CALENDAR_SETUP_CONNECTION else "ingest"
    messages = queued(connect_settings, queue)
    assert [(m["task"], m["argsrepr"]) for m in messages] == [(task, repr([str(connection.id)]))]


async def test_pkce_verifier_is_checked_by_the_provider(
    connect_client: httpx.AsyncClient,
    connect_user: CreateUser,
    provider: ProviderServer,
    db_session: AsyncSession,
) -> None:
    _, headers = await connect_user()
    location = await consent(await authorization_url(connect_client, headers, "google"))
    await authorization_url(connect_client, headers, "google")
    # Swap the verifiers of the two pending authorizations: the code now comes back with a verifier that does
    # not match the challenge the provider saw, as when a code is intercepted and replayed elsewhere.
    first, second = (await db_session.scalars(select(OAuthState))).all()
    first.code_verifier_encrypted, second.code_verifier_encrypted = (
        second.code_verifier_encrypted,
        first.code_verifier_encrypted,
    )
    await db_session.commit()
    response = await connect_client.get(callback_path(location))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "authorization_failed"
    assert response.json()["error"]["details"]["error"] == "invalid_grant"
    assert provider.state.pkce_verified == 0
    assert await _connections(db_session) == []


async def test_forged_state_is_refused(
    connect_client: httpx.AsyncClient, connect_user: CreateUser, db_session: AsyncSession
) -> None:
    _, headers = await connect_user()
    location = await consent(await authorization_url(connect_client, headers, "oura"))
    code = query_of(location)["code"]
    for query in (f"code={code}&state=forged-{'x' * 40}", f"code={code}"):
        response = await connect_client.get(f"/v1/connect/oura/callback?{query}")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_state"
    # A state issued for one provider does not complete another's flow.
    state = query_of(location)["state"]
    response = await connect_client.get(f"/v1/connect/whoop/callback?code={code}&state={state}")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_state"
    assert await _connections(db_session) == []


async def test_state_is_single_use(
    connect_client: httpx.AsyncClient, connect_user: CreateUser, provider: ProviderServer
) -> None:
    _, headers = await connect_user()
    location = await consent(await authorization_url(connect_client, headers, "oura"))
    assert (await connect_client.get(callback_path(location))).status_code == 200
    replay = await connect_client.get(callback_path(location))
    assert replay.status_code == 400 and replay.json()["error"]["code"] == "invalid_state"
    # The replay never reached the provider's token endpoint.
    assert len(provider.requests_to("/token")) == 1


async def test_expired_state_is_refused_and_used_up(
    connect_client: httpx.AsyncClient, connect_user: CreateUser, db_session: AsyncSession
) -> None:
    _, headers = await connect_user()
    location = await consent(await authorization_url(connect_client, headers, "oura"))
    await db_session.execute(update(OAuthState).values(expires_at=utcnow() - timedelta(seconds=1)))
    await db_session.commit()
    response = await connect_client.get(callback_path(location))
    assert response.status_code == 400 and response.json()["error"]["code"] == "state_expired"
    again = await connect_client.get(callback_path(location))
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_state"
    assert await _connections(db_session) == []


async def test_declined_consent_is_a_clear_error(
    connect_client: httpx.AsyncClient,
    connect_user: CreateUser,
    provider: ProviderServer,
    db_session: AsyncSession,
) -> None:
    _, headers = await connect_user()
    provider.state.deny = True
    location = await consent(await authorization_url(connect_client, headers, "whoop"))
    assert query_of(location)["error"] == "access_denied"
    response = await connect_client.get(callback_path(location))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "authorization_denied"
    assert await _connections(db_session) == []


async def test_token_endpoint_outage_is_not_a_server_error(
    connect_client: httpx.AsyncClient,
    connect_user: CreateUser,
    provider: ProviderServer,
    db_session: AsyncSession,
) -> None:
    _, headers = await connect_user()
    location = await consent(await authorization_url(connect_client, headers, "oura"))
    provider.state.down = True
    response = await connect_client.get(callback_path(location))
    assert response.status_code == 424
    assert response.json()["error"]["code"] == "provider_unavailable"
    assert response.json()["error"]["details"]["step"] == "token"
    assert await _connections(db_session) == []


async def test_an_account_linked_to_another_user_is_refused(
    connect_client: httpx.AsyncClient,
    connect_user: CreateUser,
    provider: ProviderServer,
    db_session: AsyncSession,
) -> None:
    owner_id, owner = await connect_user()
    _, intruder = await connect_user()
    provider.state.account = "shared-oura-account"
    assert (await link(connect_client, owner, "oura")).status_code == 200
    response = await link(connect_client, intruder, "oura")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "account_already_linked"
    (connection,) = await _connections(db_session)
    assert connection.user_id == owner_id
    # The owner linking again just refreshes the tokens of the same connection.
    again = await link(connect_client, owner, "oura")
    assert again.status_code == 200
    (relinked,) = await _connections(db_session)
    assert relinked.id == connection.id


async def test_app_obtained_tokens_are_linked_to_the_profile_account(
    connect_client: httpx.AsyncClient,
    connect_user: CreateUser,
    provider: ProviderServer,
    db_session: AsyncSession,
) -> None:
    user_id, headers = await connect_user()
    grant = provider.state.issue("whoop-777")
    url = "/v1/users/me/connections/whoop"
    # The body cannot name the account: unknown fields are refused, nothing is stored.
    refused = await connect_client.post(
        url, json={"access_token": grant.access_token, "external_user_id": "someone-else"}, headers=headers
    )
    assert refused.status_code == 422
    # expires_in is a JSON integer: a string, a boolean or a fraction is refused, not coerced (issue 10).
    for lax in ("3600", True, 3600.5):
        body = {"access_token": grant.access_token, "expires_in": lax}
        lax_refused = await connect_client.post(url, json=body, headers=headers)
        assert lax_refused.status_code == 422, (lax, lax_refused.text)
        assert lax_refused.json()["error"]["details"][0]["loc"] == ["body", "expires_in"]
    assert await _connections(db_session) == []
    response = await connect_client.post(
        url,
        json={"access_token": grant.access_token, "refresh_token": grant.refresh_token, "expires_in": 3600},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["external_user_id"] == "whoop-777"
    (connection,) = await _connections(db_session)
    assert connection.user_id == user_id
    # A token the provider does not accept links nothing.
    bad = await connect_client.post(url, json={"access_token": "at-made-up"}, headers=headers)
    assert bad.status_code == 400 and bad.json()["error"]["details"]["step"] == "profile"


async def test_listing_shows_status_and_never_tokens(
    connect_client: httpx.AsyncClient, connect_user: CreateUser, provider: ProviderServer
) -> None:
    _, headers = await connect_user()
    _, other = await connect_user()
    provider.state.account = "a-1"
    await link(connect_client, headers, "oura")
    provider.state.account = "g-1"
    await link(connect_client, headers, "google")
    response = await connect_client.get("/v1/users/me/connections", headers=headers)
    assert response.status_code == 200
    listed = response.json()
    assert sorted((c["provider"], c["external_user_id"], c["status"]) for c in listed) == [
        ("google", "g-1", "active"),
        ("oura", "a-1", "active"),
    ]
    assert "openid" in next(c for c in listed if c["provider"] == "google")["scopes"]
    for grant in provider.state.grants:
        assert grant.access_token not in response.text and grant.refresh_token not in response.text
    assert (await connect_client.get("/v1/users/me/connections", headers=other)).json() == []
    # Another user's connection is not theirs to delete.
    assert (await connect_client.delete("/v1/users/me/connections/oura", headers=other)).status_code == 404


async def test_terra_session_is_opened_with_our_user_id(
    connect_client: httpx.AsyncClient,
    connect_user: CreateUser,
    provider: ProviderServer,
    client: httpx.AsyncClient,
    create_user: CreateUser,
) -> None:
    user_id, headers = await connect_user()
    response = await connect_client.post(
        "/v1/users/me/connections/terra/session", json={"providers": ["GARMIN", "OURA"]}, headers=headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["url"].startswith("https://widget.tryterra.co/session/")
    (sent,) = provider.state.terra_sessions
    assert sent["reference_id"] == str(user_id) and sent["providers"] == ["GARMIN", "OURA"]
    # A client cannot choose the reference id.
    forged = await connect_client.post(
        "/v1/users/me/connections/terra/session", json={"reference_id": "someone"}, headers=headers
    )
    assert forged.status_code == 422
    provider.state.down = True
    down = await connect_client.post("/v1/users/me/connections/terra/session", headers=headers)
    assert down.status_code == 424 and down.json()["error"]["code"] == "provider_unavailable"
    # Without Terra credentials the route does not exist.
    _, plain = await create_user()
    assert (await client.post("/v1/users/me/connections/terra/session", headers=plain)).status_code == 404


async def test_two_users_racing_for_one_account_get_one_link(
    connect_client: httpx.AsyncClient,
    connect_user: CreateUser,
    provider: ProviderServer,
    db_session: AsyncSession,
) -> None:
    _, first = await connect_user()
    _, second = await connect_user()
    provider.state.account = "contested"
    locations = [
        await consent(await authorization_url(connect_client, headers, "google"))
        for headers in (first, second)
    ]
    responses = await asyncio.gather(*(connect_client.get(callback_path(loc)) for loc in locations))
    assert sorted(r.status_code for r in responses) == [200, 409]
    assert len(await _connections(db_session)) == 1
