"""The console over HTTP against the real app and Postgres: sign-in and its cookie, who sees what, CSRF,
sessions ending with the token, the forms' effects in the database, and the read-only admin tables."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from http.cookies import SimpleCookie

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.benchmarks.console import seed_person_history
from app.core.config import Settings
from app.core.crypto import ACCESS_TOKEN_CONTEXT, TokenCipher
from app.models import (
    Adapter,
    AdapterStatus,
    CalendarEvent,
    DeviceConnection,
    FinetuneJob,
    FinetuneStatus,
    User,
    WebhookEvent,
)
from domain import Action
from tests.console.conftest import bearer_token, csrf_of, page_csrf, sign_in
from tests.support import CreateUser


async def _seeded_user(create_user: CreateUser, db_session: AsyncSession) -> tuple[uuid.UUID, str]:
    user_id, headers = await create_user(timezone="Europe/Berlin")
    await seed_person_history(db_session, user_id, days=30)
    await db_session.commit()
    return user_id, bearer_token(headers)


async def test_sign_in_sets_a_signed_httponly_strict_secure_cookie_scoped_to_the_console(
    browser_client: httpx.AsyncClient, create_user: CreateUser
) -> None:
    user_id, headers = await create_user()
    token = bearer_token(headers)
    response = await sign_in(browser_client, token)
    assert response.status_code == 303
    assert response.headers["location"] == f"/console/users/{user_id}"
    cookies = [value for key, value in response.headers.multi_items() if key == "set-cookie"]
    session_cookie = next(c for c in cookies if c.startswith("rhythm_console="))
    parsed = SimpleCookie(session_cookie)["rhythm_console"]
    assert parsed["httponly"] and parsed["secure"]
    assert parsed["samesite"].lower() == "strict"
    assert parsed["path"] == "/console"
    # The token never travels in the cookie, in any form the API would accept.
    assert token not in parsed.value
    page = await browser_client.get(f"/console/users/{user_id}")
    assert page.status_code == 200
    assert "Your rhythm" in page.text


async def test_sign_in_refuses_a_wrong_token_and_a_form_without_its_csrf_token(
    browser_client: httpx.AsyncClient, create_user: CreateUser
) -> None:
    _user_id, headers = await create_user()
    wrong = await sign_in(browser_client, "rhy_not-a-real-token")
    assert wrong.status_code == 401
    assert "not valid" in wrong.text
    assert "rhythm_console=" not in wrong.headers.get("set-cookie", "")
    # A login form posted from elsewhere (no pre-session cookie, no CSRF token) opens no session.
    forged = await browser_client.post("/console/login", data={"token": bearer_token(headers)})
    assert forged.status_code == 401
    assert "rhythm_console=" not in forged.headers.get("set-cookie", "")
    assert (await browser_client.get("/console/ops")).status_code == 303
    metrics = (await browser_client.get("/metrics")).text
    assert 'rhythm_console_sign_ins_total{kind="none",outcome="invalid_token"} 1.0' in metrics
    assert 'rhythm_console_sign_ins_total{kind="none",outcome="csrf_rejected"} 1.0' in metrics


async def test_a_user_sees_their_seeded_data_and_never_another_users_pages(
    browser_client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_a, token_a = await _seeded_user(create_user, db_session)
    user_b, _token_b = await _seeded_user(create_user, db_session)
    await sign_in(browser_client, token_a)
    page = await browser_client.get(f"/console/users/{user_a}")
    assert page.status_code == 200
    seeded_texts = (
        "Quarterly planning",
        "needs reconsent",
        "-v3",
        "Provenance",
        "bridge",
        "sleep_duration from oura",
    )
    for seeded in seeded_texts:
        assert seeded in page.text, seeded
    event_b = (
        await db_session.execute(select(CalendarEvent.id).where(CalendarEvent.user_id == user_b).limit(1))
    ).scalar_one()
    csrf = csrf_of(page.text)
    for method, path in (
        ("GET", f"/console/users/{user_b}"),
        ("GET", f"/console/users/{user_b}/export"),
        ("GET", f"/console/users/{user_b}/delete"),
        ("GET", f"/console/users/{uuid.uuid4()}"),
        ("GET", "/console/ops"),
    ):
        response = await browser_client.request(method, path)
        assert response.status_code == 404, path
        assert "There is no such page" in response.text
    correction = await browser_client.post(
        f"/console/users/{user_b}/calendar-events/{event_b}/action",
        data={"csrf_token": csrf, "action": "SLEEP"},
    )
    assert correction.status_code == 404
    # The same event id under A's own path is still not A's.
    correction = await browser_client.post(
        f"/console/users/{user_a}/calendar-events/{event_b}/action",
        data={"csrf_token": csrf, "action": "SLEEP"},
    )
    assert correction.status_code == 404
    await db_session.rollback()
    event = await db_session.get(CalendarEvent, event_b)
    assert event is not None and event.action is not Action.SLEEP
    start = await browser_client.post(
        "/console/ops/finetune-jobs", data={"csrf_token": csrf, "user_id": str(user_a)}
    )
    assert start.status_code == 404
    # The read-only tables are for operators: a user is sent to sign in.
    assert (await browser_client.get("/console/admin/")).status_code in {302, 303}


async def test_the_session_cookie_is_not_accepted_by_the_api(
    browser_client: httpx.AsyncClient, create_user: CreateUser
) -> None:
    _user_id, headers = await create_user()
    await sign_in(browser_client, bearer_token(headers))
    cookie = browser_client.cookies.get("rhythm_console")
    assert cookie
    response = await browser_client.get("/v1/users/me", headers={"Cookie": f"rhythm_console={cookie}"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_rotating_the_token_or_deleting_the_user_ends_their_console_sessions(
    browser_client: httpx.AsyncClient,
    client: httpx.AsyncClient,
    create_user: CreateUser,
    admin_headers: dict[str, str],
) -> None:
    user_id, headers = await create_user()
    await sign_in(browser_client, bearer_token(headers))
    assert (await browser_client.get(f"/console/users/{user_id}")).status_code == 200
    rotated = await client.post(f"/v1/users/{user_id}/tokens", headers=headers)
    assert rotated.status_code == 201
    ended = await browser_client.get(f"/console/users/{user_id}")
    assert ended.status_code == 303
    assert ended.headers["location"] == "/console/login?notice=expired"

    new_headers = {"Authorization": f"Bearer {rotated.json()['token']}"}
    await sign_in(browser_client, rotated.json()["token"])
    assert (await browser_client.get(f"/console/users/{user_id}")).status_code == 200
    assert (await client.delete(f"/v1/users/{user_id}", headers=new_headers)).status_code == 204
    assert (await browser_client.get(f"/console/users/{user_id}")).status_code == 303


async def test_an_operator_session_ends_when_the_admin_token_changes(
    settings: Settings, clean_database: str, create_user: CreateUser
) -> None:
    from tests.support import running_app

    first = settings.model_copy(update={"admin_token": settings.admin_token})
    async with running_app(first) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://rhythm.test") as browser:
            await sign_in(browser, settings.admin_token.get_secret_value())
            assert (await browser.get("/console/ops")).status_code == 200
            cookie = browser.cookies.get("rhythm_console")
    changed = settings.model_copy(
        update={"admin_token": type(settings.admin_token)("another-admin-token-" + "x" * 20)}
    )
    async with running_app(changed) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://rhythm.test") as browser:
            browser.cookies.set("rhythm_console", cookie or "", domain="rhythm.test", path="/console")
            assert (await browser.get("/console/ops")).status_code == 303


async def test_state_changing_forms_need_the_sessions_csrf_token(
    browser_client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_id, token = await _seeded_user(create_user, db_session)
    await sign_in(browser_client, token)
    event_id = (
        await db_session.execute(
            select(CalendarEvent.id).where(CalendarEvent.user_id == user_id, CalendarEvent.title == "Dentist")
        )
    ).scalar_one()
    path = f"/console/users/{user_id}/calendar-events/{event_id}/action"
    for data in ({"action": "SLEEP"}, {"action": "SLEEP", "csrf_token": "forged"}):
        refused = await browser_client.post(path, data=data)
        assert refused.status_code == 403
        assert "nothing was changed" in refused.text
    deleted = await browser_client.post(f"/console/users/{user_id}/delete", data={"token": token})
    assert deleted.status_code == 403
    await db_session.rollback()
    assert (await db_session.get(CalendarEvent, event_id)).action is None  # type: ignore[union-attr]
    assert await db_session.get(User, user_id) is not None


async def test_correcting_a_calendar_events_action_is_saved(
    browser_client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_id, token = await _seeded_user(create_user, db_session)
    await sign_in(browser_client, token)
    csrf = await page_csrf(browser_client, user_id)
    event_id = (
        await db_session.execute(
            select(CalendarEvent.id).where(CalendarEvent.user_id == user_id, CalendarEvent.title == "Dentist")
        )
    ).scalar_one()
    path = f"/console/users/{user_id}/calendar-events/{event_id}/action"
    saved = await browser_client.post(path, data={"csrf_token": csrf, "action": "MEDITATE"})
    assert saved.status_code == 303
    assert saved.headers["location"] == f"/console/users/{user_id}?notice=event_saved"
    await db_session.rollback()
    assert (await db_session.get(CalendarEvent, event_id)).action is Action.MEDITATE  # type: ignore[union-attr]
    # Back to "not an action"; an unknown action is refused and changes nothing.
    assert (await browser_client.post(path, data={"csrf_token": csrf, "action": ""})).status_code == 303
    assert (await browser_client.post(path, data={"csrf_token": csrf, "action": "NAP"})).status_code == 404
    await db_session.rollback()
    assert (await db_session.get(CalendarEvent, event_id)).action is None  # type: ignore[union-attr]


async def test_deleting_an_account_asks_for_the_token_again(
    browser_client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_id, token = await _seeded_user(create_user, db_session)
    await sign_in(browser_client, token)
    form = await browser_client.get(f"/console/users/{user_id}/delete")
    assert form.status_code == 200
    assert '<label for="confirm-token">' in form.text
    csrf = csrf_of(form.text)
    refused = await browser_client.post(
        f"/console/users/{user_id}/delete", data={"csrf_token": csrf, "token": "rhy_wrong"}
    )
    assert refused.status_code == 403
    assert await db_session.get(User, user_id) is not None
    done = await browser_client.post(
        f"/console/users/{user_id}/delete", data={"csrf_token": csrf, "token": token}
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/console/login?notice=deleted"
    db_session.expunge_all()
    assert await db_session.get(User, user_id) is None


async def test_export_downloads_the_same_data_as_the_api(
    browser_client: httpx.AsyncClient,
    client: httpx.AsyncClient,
    create_user: CreateUser,
    db_session: AsyncSession,
) -> None:
    user_id, token = await _seeded_user(create_user, db_session)
    await sign_in(browser_client, token)
    download = await browser_client.get(f"/console/users/{user_id}/export")
    assert download.status_code == 200
    assert download.headers["content-disposition"].startswith("attachment;")
    tables = download.json()["tables"]
    api = (await client.get("/v1/users/me/export", headers={"Authorization": f"Bearer {token}"})).json()
    assert {name: len(rows) for name, rows in tables.items()} == {
        name: len(rows) for name, rows in api["tables"].items()
    }
    assert len(tables["recommendations"]) == 120


async def test_an_operator_filters_starts_and_rolls_back(
    browser_client: httpx.AsyncClient, settings: Settings, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_id, _token = await _seeded_user(create_user, db_session)
    response = await sign_in(browser_client, settings.admin_token.get_secret_value())
    assert response.headers["location"] == "/console/ops"
    page = await browser_client.get("/console/ops")
    assert page.status_code == 200
    assert "out of memory on worker-2" in page.text and "Circuit breaker" in page.text
    failed_only = await browser_client.get("/console/ops", params={"status": "failed"})
    assert "out of memory" in failed_only.text and '<span class="status succeeded">' not in failed_only.text
    partial = await browser_client.get(
        "/console/ops", params={"status": "succeeded"}, headers={"HX-Request": "true"}
    )
    assert partial.text.lstrip().startswith('<div id="jobs">') and "out of memory" not in partial.text
    csrf = csrf_of(page.text)

    started = await browser_client.post(
        "/console/ops/finetune-jobs", data={"csrf_token": csrf, "user_id": str(user_id)}
    )
    assert started.headers["location"] == "/console/ops?notice=job_started"
    again = await browser_client.post(
        "/console/ops/finetune-jobs", data={"csrf_token": csrf, "user_id": str(user_id)}
    )
    assert again.headers["location"] == "/console/ops?notice=job_already_open"
    queued = await db_session.scalar(
        select(func.count()).where(
            FinetuneJob.user_id == user_id, FinetuneJob.status == FinetuneStatus.QUEUED
        )
    )
    assert queued == 1

    # The form names the adapter the page showed as active, so sending it twice rolls back once.
    form = re.search(
        rf'action="/console/ops/users/{user_id}/adapters/rollback".*?name="retire" value="([0-9a-f-]+)"',
        page.text,
        re.DOTALL,
    )
    assert form is not None, "no rollback form naming the active adapter"
    shown = {"csrf_token": csrf, "retire": form.group(1)}
    rolled = await browser_client.post(f"/console/ops/users/{user_id}/adapters/rollback", data=shown)
    assert rolled.headers["location"] == "/console/ops?notice=rolled_back"
    twice = await browser_client.post(f"/console/ops/users/{user_id}/adapters/rollback", data=shown)
    assert twice.headers["location"] == "/console/ops?notice=adapter_changed"
    assert "already rolled back" in (await browser_client.get(twice.headers["location"])).text
    versions = {
        a.version: a.status
        for a in (await db_session.execute(select(Adapter).where(Adapter.user_id == user_id))).scalars()
    }
    assert versions == {1: AdapterStatus.RETIRED, 2: AdapterStatus.ACTIVE, 3: AdapterStatus.RETIRED}
    assert (await browser_client.get(f"/console/users/{user_id}")).status_code == 200


async def test_the_inbox_lists_failed_events_and_replays_them(
    browser_client: httpx.AsyncClient, settings: Settings, db_session: AsyncSession
) -> None:
    event = WebhookEvent(
        source="terra",
        external_id="evt-stuck-1",
        raw_body=b'{"secret": "health data"}',
        headers={"terra-signature": "t=1,v1=abc"},
        attempts=3,
        error="mapping failed: unknown user",
    )
    db_session.add(event)
    await db_session.commit()
    await sign_in(browser_client, settings.admin_token.get_secret_value())
    page = await browser_client.get("/console/ops")
    assert "evt-stuck-1" in page.text and "mapping failed" in page.text
    assert "health data" not in page.text and "v1=abc" not in page.text
    csrf = csrf_of(page.text)
    replayed = await browser_client.post(
        f"/console/ops/webhook-events/{event.id}/replay", data={"csrf_token": csrf}
    )
    assert replayed.headers["location"] == "/console/ops?notice=replayed"
    unknown = await browser_client.post(
        f"/console/ops/webhook-events/{uuid.uuid4()}/replay", data={"csrf_token": csrf}
    )
    assert unknown.status_code == 404


async def test_the_admin_tables_are_read_only_and_never_show_secrets(
    browser_client: httpx.AsyncClient, settings: Settings, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_id, token = await _seeded_user(create_user, db_session)
    cipher = TokenCipher(settings.secret_key.get_secret_value())
    ciphertext = cipher.encrypt("oauth-access-secret", context=ACCESS_TOKEN_CONTEXT)
    device = (
        await db_session.execute(select(DeviceConnection).where(DeviceConnection.user_id == user_id).limit(1))
    ).scalar_one()
    device.access_token_encrypted = ciphertext
    event = WebhookEvent(
        source="terra",
        external_id="evt-admin",
        raw_body=b"RAW-BODY-BYTES",
        headers={"x-secret": "HEADER-VALUE"},
    )
    db_session.add(event)
    await db_session.commit()
    await sign_in(browser_client, settings.admin_token.get_secret_value())
    from app.core.security import hash_token

    forbidden = (hash_token(token), ciphertext, "RAW-BODY-BYTES", "HEADER-VALUE", "oauth-access-secret")
    pages = [
        "/console/admin/",
        "/console/admin/api-token/list",
        "/console/admin/device-connection/list",
        f"/console/admin/device-connection/details/{device.id}",
        "/console/admin/webhook-event/list",
        f"/console/admin/webhook-event/details/{event.id}",
        "/console/admin/user/list",
    ]
    for path in pages:
        response = await browser_client.get(path)
        assert response.status_code == 200, path
        for secret in forbidden:
            assert secret not in response.text, (path, secret)
    listing = await browser_client.get("/console/admin/api-token/list")
    assert token[:8] in listing.text  # the display prefix is shown, the hash is not
    # Read-only: no create/edit/delete routes.
    assert (await browser_client.get("/console/admin/user/create")).status_code in {403, 404}
    assert (await browser_client.get(f"/console/admin/user/edit/{user_id}")).status_code in {403, 404}


@pytest.mark.parametrize(
    "path", ["/console", "/console/ops", "/console/users/00000000-0000-0000-0000-000000000000"]
)
async def test_without_a_session_pages_send_the_browser_to_sign_in(
    browser_client: httpx.AsyncClient, path: str
) -> None:
    response = await browser_client.get(path)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login"


async def test_rollback_and_start_refuse_what_cannot_be_done(
    browser_client: httpx.AsyncClient, settings: Settings, create_user: CreateUser, db_session: AsyncSession
) -> None:
    lonely, _headers = await create_user()
    db_session.add(
        Adapter(
            user_id=lonely,
            name=f"only-{lonely}",
            version=1,
            base_model="rhythm-tiny",
            uri="file:///a/only",
            status=AdapterStatus.ACTIVE,
        )
    )
    bare, _headers = await create_user()
    await db_session.commit()
    await sign_in(browser_client, settings.admin_token.get_secret_value())
    csrf = await page_csrf(browser_client)
    only_one = await browser_client.post(
        f"/console/ops/users/{lonely}/adapters/rollback", data={"csrf_token": csrf}
    )
    # A lone adapter rolls back to the base model (the fine-tune service's rule, as in the ops API).
    assert only_one.headers["location"] == "/console/ops?notice=rolled_back_to_base"
    none = await browser_client.post(
        f"/console/ops/users/{bare}/adapters/rollback", data={"csrf_token": csrf}
    )
    assert none.headers["location"] == "/console/ops?notice=no_active_adapter"
    notice = await browser_client.get(none.headers["location"])
    assert "no active adapter to roll back" in notice.text
    await db_session.rollback()
    assert (
        await db_session.scalar(select(Adapter.status).where(Adapter.user_id == lonely))
    ) is AdapterStatus.RETIRED
    for target in (str(uuid.uuid4()), "not-a-uuid"):
        refused = await browser_client.post(
            "/console/ops/finetune-jobs", data={"csrf_token": csrf, "user_id": target}
        )
        assert refused.status_code == 404
    assert await db_session.scalar(select(func.count()).select_from(FinetuneJob)) == 0


async def test_no_admin_table_shows_a_secret_on_any_list_or_detail_page_or_serves_a_file(
    browser_client: httpx.AsyncClient, settings: Settings, create_user: CreateUser, db_session: AsyncSession
) -> None:
    """Every SQLAdmin view, list and detail page, with secrets planted in every secret-bearing column; and
    SQLAdmin's file routes, which would otherwise serve any file under the working directory whose path a
    column happens to hold (a calendar event a person titled ``pyproject.toml``, say)."""
    from app.console.admin import VIEWS
    from app.core.crypto import REFRESH_TOKEN_CONTEXT
    from app.core.security import hash_token

    user_id, token = await _seeded_user(create_user, db_session)
    cipher = TokenCipher(settings.secret_key.get_secret_value())
    access = cipher.encrypt("oauth-access-secret", context=ACCESS_TOKEN_CONTEXT)
    refresh = cipher.encrypt("oauth-refresh-secret", context=REFRESH_TOKEN_CONTEXT)
    for device in (
        await db_session.execute(select(DeviceConnection).where(DeviceConnection.user_id == user_id))
    ).scalars():
        device.access_token_encrypted = access
        device.refresh_token_encrypted = refresh
        device.provider_data = {"webhook_secret": "PROVIDER-DATA-SECRET"}
    db_session.add(
        WebhookEvent(
            source="terra",
            external_id="evt-every-view",
            user_id=user_id,
            raw_body=b"RAW-BODY-BYTES",
            headers={"x-secret": "HEADER-VALUE"},
        )
    )
    titled = (
        await db_session.execute(
            select(CalendarEvent).where(CalendarEvent.user_id == user_id, CalendarEvent.title == "Dentist")
        )
    ).scalar_one()
    titled.title = "pyproject.toml"  # a real file in the server's working directory
    await db_session.commit()
    forbidden = (
        hash_token(token),
        access,
        refresh,
        "oauth-access-secret",
        "PROVIDER-DATA-SECRET",
        "RAW-BODY-BYTES",
        "HEADER-VALUE",
    )
    await sign_in(browser_client, settings.admin_token.get_secret_value())
    for view in VIEWS:
        row_id = await db_session.scalar(select(view.model.id).limit(1))  # type: ignore[attr-defined]
        assert row_id is not None, f"no {view.model.__name__} row seeded"
        for path in (
            f"/console/admin/{view.identity}/list",
            f"/console/admin/{view.identity}/details/{row_id}",
        ):
            response = await browser_client.get(path)
            assert response.status_code == 200, path
            assert response.headers["cache-control"] == "no-store", path
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"], path
            for secret in forbidden:
                assert secret not in response.text, (path, secret)
        export = await browser_client.get(f"/console/admin/{view.identity}/export/csv")
        assert export.status_code in {403, 404}, view.identity
    for route in ("download", "preview"):
        served = await browser_client.get(f"/console/admin/calendar-event/{titled.id}/title/{route}/")
        assert served.status_code == 404, route
        assert "[project]" not in served.text
        secret_column = await browser_client.get(
            f"/console/admin/device-connection/{device.id}/access_token_encrypted/{route}/"
        )
        assert secret_column.status_code == 404 and access not in secret_column.text


def test_every_admin_view_names_its_columns_and_none_of_them_holds_a_secret() -> None:
    """An allow-list per view: a secret column added to a model later cannot slip onto a page by default."""
    from app.console.admin import VIEWS

    secret_columns = {
        "token_hash",
        "access_token_encrypted",
        "refresh_token_encrypted",
        "code_verifier_encrypted",
        "provider_data",
        "raw_body",
        "headers",
        "sync_token",
        "external_user_id",
    }
    for view in VIEWS:
        assert "column_list" in vars(view) and "column_details_list" in vars(view), view.__name__
        instance = view()
        shown = {*instance.get_list_columns(), *instance.get_details_columns()}
        assert not shown & secret_columns, (view.__name__, shown & secret_columns)
        assert not view.column_searchable_list and not view.column_sortable_list, view.__name__
        assert not (view.can_create or view.can_edit or view.can_delete or view.can_export or view.can_import)


def _queued_messages(settings: Settings) -> int:
    """Messages waiting in this test session's broker lists (replays send real Celery messages)."""
    import redis

    client = redis.Redis.from_url(settings.broker_url)
    keys = [k for k in client.scan_iter(match=f"{settings.broker_key_prefix}*") if client.type(k) == b"list"]
    return sum(int(client.llen(k)) for k in keys)


async def test_every_state_changing_console_route_refuses_a_form_without_the_sessions_csrf_token(
    browser_client: httpx.AsyncClient, settings: Settings, create_user: CreateUser, db_session: AsyncSession
) -> None:
    """Every POST route of the console, enumerated from the router (a new form must come through here), as
    an operator who could otherwise do all of them: without the token, or with a forged one, it is a 403 page
    and nothing changes."""
    from app.console.endpoints import router

    posts = sorted(path for route in router.routes for path in [route.path] if "POST" in route.methods)  # type: ignore[attr-defined]
    assert posts == [
        "/console/login",
        "/console/logout",
        "/console/ops/finetune-jobs",
        "/console/ops/users/{user_id:uuid}/adapters/rollback",
        "/console/ops/webhook-events/{event_id:uuid}/replay",
        "/console/users/{user_id:uuid}/calendar-events/{event_id:uuid}/action",
        "/console/users/{user_id:uuid}/delete",
    ], "a new state-changing route: add it to this test"

    user_id, _token = await _seeded_user(create_user, db_session)
    event = WebhookEvent(source="terra", external_id="evt-csrf", raw_body=b"{}", headers={}, error="stuck")
    db_session.add(event)
    await db_session.commit()
    calendar_event = (
        await db_session.execute(
            select(CalendarEvent).where(CalendarEvent.user_id == user_id, CalendarEvent.title == "Dentist")
        )
    ).scalar_one()

    async def state() -> tuple[object, ...]:
        db_session.expunge_all()
        adapters = (
            await db_session.execute(
                select(Adapter.version, Adapter.status)
                .where(Adapter.user_id == user_id)
                .order_by(Adapter.version)
            )
        ).all()
        return (
            await db_session.scalar(select(func.count()).select_from(User).where(User.id == user_id)),
            await db_session.scalar(
                select(CalendarEvent.action).where(CalendarEvent.id == calendar_event.id)
            ),
            await db_session.scalar(select(func.count()).select_from(FinetuneJob)),
            tuple(adapters),
            _queued_messages(settings),
        )

    admin_token = settings.admin_token.get_secret_value()
    await sign_in(browser_client, admin_token)
    before = await state()
    messages_before = _queued_messages(settings)
    ids = {"user_id": str(user_id)}
    for path in posts[1:]:
        ids["event_id"] = str(event.id if "webhook" in path else calendar_event.id)
        url = path.replace(":uuid", "").format(**ids)
        form = {"action": "SLEEP", "user_id": str(user_id), "token": admin_token}
        for extra in ({}, {"csrf_token": "forged"}):
            refused = await browser_client.post(url, data=form | extra)
            assert refused.status_code == 403, (url, extra)
            assert "nothing was changed" in refused.text
    assert await state() == before
    assert (await browser_client.get("/console/ops")).status_code == 200  # sign-out refused too
    # The same forms with the token do change things (so the checks above can fail).
    csrf = await page_csrf(browser_client)
    replayed = await browser_client.post(
        f"/console/ops/webhook-events/{event.id}/replay", data={"csrf_token": csrf}
    )
    assert replayed.status_code == 303
    assert _queued_messages(settings) == messages_before + 1


async def test_a_user_gets_the_404_page_for_every_ops_route_and_fragment_and_for_another_users_forms(
    browser_client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_a, token_a = await _seeded_user(create_user, db_session)
    user_b, token_b = await _seeded_user(create_user, db_session)
    event = WebhookEvent(source="terra", external_id="evt-not-yours", raw_body=b"{}", headers={}, error="x")
    db_session.add(event)
    await db_session.commit()
    await sign_in(browser_client, token_a)
    csrf = await page_csrf(browser_client, user_a)
    # htmx's request for the jobs fragment is an ops page like the others.
    fragment = await browser_client.get(
        "/console/ops", params={"status": "failed"}, headers={"HX-Request": "true"}
    )
    assert fragment.status_code == 404 and "out of memory" not in fragment.text
    for path, data in (
        (f"/console/ops/users/{user_a}/adapters/rollback", {}),
        (f"/console/ops/users/{user_b}/adapters/rollback", {}),
        (f"/console/ops/webhook-events/{event.id}/replay", {}),
        # B's token typed into A's session still cannot delete B through B's page.
        (f"/console/users/{user_b}/delete", {"token": token_b}),
    ):
        response = await browser_client.post(path, data={"csrf_token": csrf, **data})
        assert response.status_code == 404, path
        assert "There is no such page" in response.text
    db_session.expunge_all()
    assert await db_session.get(User, user_b) is not None
    statuses = (await db_session.execute(select(Adapter.status).where(Adapter.user_id == user_a))).scalars()
    assert sorted(s.value for s in statuses) == ["active", "retired", "retired"]


async def test_a_new_person_and_an_empty_ops_page_say_what_to_do_next(
    browser_client: httpx.AsyncClient, settings: Settings, create_user: CreateUser
) -> None:
    user_id, headers = await create_user()
    await sign_in(browser_client, bearer_token(headers))
    page = await browser_client.get(f"/console/users/{user_id}")
    assert page.status_code == 200
    for hint in (
        "No meter data yet. Connect a wearable",
        "No recommendations in the last 7 days. Ask for one",
        "No responses yet. Answer a recommendation",
        "Nothing learned yet",
        "No calendar events. Connect a calendar",
        "No device connected yet. Connect a wearable",
        "No personal adapter is active",
    ):
        assert hint in page.text, hint
    assert "<canvas" not in page.text  # no empty charts
    await browser_client.post("/console/logout", data={"csrf_token": csrf_of(page.text)})
    await sign_in(browser_client, settings.admin_token.get_secret_value())
    ops = await browser_client.get("/console/ops")
    for hint in (
        "No fine-tune jobs. Start one for a user with the form above.",
        "No adapters yet. Start a fine-tune job above",
        "No failed events.",
        "No pending events.",
        "no recommendation served yet",
    ):
        assert hint in ops.text, hint


async def test_a_snapshot_with_missing_meters_is_drawn_with_gaps_not_a_server_error(
    browser_client: httpx.AsyncClient, create_user: CreateUser, db_session: AsyncSession
) -> None:
    """The bridge stores NULL for a meter it had no fresh input for (not 0.5): shown as missing."""
    import json
    import re

    from app.models import MeterSnapshot
    from app.models.base import utcnow

    user_id, headers = await create_user()
    now = utcnow()
    db_session.add_all(
        [
            MeterSnapshot(
                user_id=user_id,
                taken_at=now - timedelta(hours=6),
                source="bridge",
                vitality=0.4,
                cognition=0.5,
                progress=0.6,
                serenity=0.7,
                connection=0.8,
            ),
            MeterSnapshot(
                user_id=user_id,
                taken_at=now - timedelta(hours=1),
                source="bridge",
                vitality=0.41,
                cognition=None,
                progress=0.62,
                serenity=None,
                connection=0.81,
                vitality_confidence=0.83,
                cognition_confidence=0.0,
                engine_version="meters/1",
                # The engine's shape for one meter, something else for another: neither breaks the page.
                provenance={
                    "meters": {
                        "vitality": {
                            "inputs": [{"kind": "sleep_duration", "source": "oura", "age_s": 18000}]
                        },
                        "progress": "not a mapping",
                    }
                },
            ),
        ]
    )
    await db_session.commit()
    await sign_in(browser_client, bearer_token(headers))
    page = await browser_client.get(f"/console/users/{user_id}")
    assert page.status_code == 200
    match = re.search(r'<script type="application/json" id="meter-data">(.*?)</script>', page.text, re.S)
    assert match is not None
    series = {d["label"]: d["data"] for d in json.loads(match.group(1))["datasets"]}
    assert series["Cognition"] == [0.5, None] and series["Vitality"] == [0.4, 0.41]
    assert "Cognition missing" in page.text and "Vitality 0.41" in page.text
    # The latest snapshot's provenance: value, confidence and inputs per meter.
    assert "engine meters/1" in page.text
    rows = dict(re.findall(r'<th scope="row">(\w+)</th>\s*(.*?)</tr>', page.text, re.S))
    assert "0.41" in rows["Vitality"] and "0.83" in rows["Vitality"]
    assert "sleep_duration from oura, 5 h old" in rows["Vitality"]
    assert "missing" in rows["Cognition"] and "none recorded" in rows["Progress"]


async def test_the_belief_section_says_how_much_the_persons_answers_weighed(
    browser_client: httpx.AsyncClient, client: httpx.AsyncClient, create_user: CreateUser
) -> None:
    """The served distributions include the person's answers (policy.evidence): the page says so, with the
    count and the weight the newest recommendation used (3 accepted of 3: 12 × (1 − 4/5) = 2.4)."""
    user_id, headers = await create_user()
    for _ in range(3):
        served = await client.post("/v1/recommend", headers=headers)
        assert served.status_code == 200, served.text
        answer = {"recommendation_id": served.json()["recommendation_id"], "response": "accepted"}
        assert (await client.post("/v1/feedback", json=answer, headers=headers)).status_code in (200, 201)
    assert (await client.post("/v1/recommend", headers=headers)).status_code == 200
    await sign_in(browser_client, bearer_token(headers))
    page = await browser_client.get(f"/console/users/{user_id}")
    assert page.status_code == 200
    note = re.search(r'<p id="evidence-note">(.*?)</p>', page.text, re.S)
    assert note is not None, page.text[:2000]
    text = " ".join(note.group(1).split())
    assert "3 answers counted" in text and "weight 2.4" in text, text
