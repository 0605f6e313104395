"""The console in a real browser: Debian's Chromium driven by Playwright against a real uvicorn server on a
free loopback port, on the test session's Postgres database.

Each test saves a full-page screenshot under ``var/console-screenshots/`` and checks accessibility basics:
one ``h1`` and no skipped heading level, a label for every form control, and chart line colours with at least
3:1 contrast against the page background (WCAG 1.4.11). Browser console errors (a script refused by the
Content-Security-Policy, a failed asset) fail the test.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.benchmarks.api import uvicorn_server
from app.benchmarks.console import seed_person_history
from app.core.config import Settings
from app.models import CalendarEvent, FinetuneJob, FinetuneStatus, WebhookEvent
from domain import Action
from tests.console.conftest import bearer_token
from tests.support import REPO_ROOT, CreateUser

playwright_api = pytest.importorskip("playwright.async_api")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = REPO_ROOT / "var" / "console-screenshots"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (.ci/run installs it)",
)


@pytest.fixture(scope="module")
def console_server(
    settings: Settings, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The real app in its own uvicorn process, as `make run` serves it, on the test database."""
    log = tmp_path_factory.mktemp("console-server") / "uvicorn.log"
    env = {
        "RHYTHM_ENV": "test",
        "RHYTHM_ADMIN_TOKEN": settings.admin_token.get_secret_value(),
        "RHYTHM_SECRET_KEY": secrets.token_urlsafe(32),
        # The fallback policy starts at once; the console does not depend on the backend.
        "RHYTHM_POLICY_BACKEND": "fallback",
        "RHYTHM_BROKER_URL": settings.broker_url,
        "RHYTHM_BROKER_KEY_PREFIX": settings.broker_key_prefix,
        "RHYTHM_READINESS_REQUIRES_WORKER": "false",
    }
    with uvicorn_server("local", database_url, log, extra_env=env) as (base, _pid):
        yield base


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def page(browser: Any, console_server: str, clean_database: str) -> AsyncIterator[Any]:
    context = await browser.new_context(base_url=console_server, viewport={"width": 1280, "height": 900})
    tab = await context.new_page()
    errors: list[str] = []
    tab.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    tab.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield tab
    finally:
        await context.close()
    # A 404 page, or the 403 of a refused confirmation, is an expected "error" in the console log; anything
    # else (CSP, scripts, a failed asset) is a failure.
    unexpected = [e for e in errors if not any(f"status of {code}" in e for code in (403, 404))]
    assert not unexpected, unexpected


async def _screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


async def _sign_in(page: Any, token: str) -> None:
    await page.goto("/console")
    await page.get_by_label("Token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_load_state("networkidle")


async def _check_accessibility(page: Any) -> None:
    report = await page.evaluate(
        """() => {
          const levels = [...document.querySelectorAll('h1,h2,h3,h4,h5,h6')].map(h => Number(h.tagName[1]));
          const unlabeled = [...document.querySelectorAll('input,select,textarea')]
            .filter(el => el.type !== 'hidden')
            .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
            .map(el => el.outerHTML.slice(0, 80));
          const unnamedButtons = [...document.querySelectorAll('button')]
            .filter(b => !(b.innerText.trim() || b.getAttribute('aria-label'))).length;
          const charts = [...document.querySelectorAll('canvas[data-chart]')].map(c => ({
            label: c.getAttribute('aria-label'), drawn: c.dataset.drawn,
            colours: JSON.parse(document.getElementById(c.dataset.chart).textContent)
              .datasets.map(d => d.color),
          }));
          return {levels, unlabeled, unnamedButtons, charts, lang: document.documentElement.lang,
                  background: getComputedStyle(document.body).backgroundColor};
        }"""
    )
    assert report["lang"] == "en"
    assert report["levels"].count(1) == 1, report["levels"]
    assert all(b - a <= 1 for a, b in zip(report["levels"], report["levels"][1:], strict=False)), report[
        "levels"
    ]
    assert report["unlabeled"] == []
    assert report["unnamedButtons"] == 0
    background = _parse_css_colour(report["background"])
    for chart in report["charts"]:
        assert chart["label"], "a chart needs a text alternative"
        assert chart["drawn"] == str(len(chart["colours"])), "Chart.js did not draw every series"
        for colour in chart["colours"]:
            assert contrast(_hex(colour), background) >= 3.0, colour


def _hex(colour: str) -> tuple[int, int, int]:
    value = colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def _parse_css_colour(css: str) -> tuple[int, int, int]:
    parts = css[css.index("(") + 1 : css.index(")")].split(",")
    return int(parts[0]), int(parts[1]), int(parts[2])


def _luminance(rgb: tuple[int, int, int]) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """WCAG 2 contrast ratio."""
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_contrast_formula_matches_wcag_reference_values() -> None:
    assert round(contrast((0, 0, 0), (255, 255, 255)), 1) == 21.0
    assert round(contrast((0x77, 0x77, 0x77), (255, 255, 255)), 2) == 4.48
    assert contrast((0xFF, 0xFF, 0x00), (255, 255, 255)) < 3.0


async def _seeded(create_user: CreateUser, db_session: AsyncSession) -> tuple[uuid.UUID, str]:
    user_id, headers = await create_user(timezone="Europe/Berlin")
    await seed_person_history(db_session, user_id, days=30)
    await db_session.commit()
    return user_id, bearer_token(headers)


async def test_a_user_signs_in_and_sees_their_seeded_month(
    page: Any, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_id, token = await _seeded(create_user, db_session)
    await _sign_in(page, token)
    assert page.url.endswith(f"/console/users/{user_id}")
    await page.get_by_role("heading", name="Your rhythm", level=1).wait_for()
    sections = (
        "Meters over time",
        "This week's recommendations",
        "Acceptance over time",
        "What the model believes",
        "Calendar",
        "Connected devices",
        "Your personal model",
    )
    for section in sections:
        await page.get_by_role("heading", name=section, level=2).wait_for()
    await page.locator("canvas#meter-chart[data-drawn='5']").wait_for()
    grid = page.locator("table.grid")
    assert await grid.locator("td.accepted").count() > 0
    assert "Quarterly planning" in await page.inner_text("main")
    assert "needs reconsent" in await page.inner_text("main")
    # The latest snapshot's provenance: which inputs each meter was computed from.
    assert "sleep_duration from oura" in await page.inner_text("main")
    await _check_accessibility(page)
    # The session cookie is HttpOnly: scripts in the page cannot read it.
    assert "rhythm_console" not in await page.evaluate("document.cookie")
    await _screenshot(page, "person")


async def test_a_new_user_sees_what_to_do_next_and_deleting_asks_for_the_token(
    page: Any, create_user: CreateUser
) -> None:
    user_id, headers = await create_user()
    await page.goto("/console")
    await page.get_by_role("heading", name="Sign in", level=1).wait_for()
    await _check_accessibility(page)
    await _screenshot(page, "login")
    await page.get_by_label("Token").fill(bearer_token(headers))
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("heading", name="Your rhythm", level=1).wait_for()
    main = await page.inner_text("main")
    for hint in ("No meter data yet", "No device connected yet", "Nothing learned yet", "No calendar events"):
        assert hint in main, hint
    assert await page.locator("canvas").count() == 0
    await _check_accessibility(page)
    await _screenshot(page, "person-empty")
    await page.get_by_role("link", name="Delete account…").click()
    await page.get_by_role("heading", name="Delete account", level=1).wait_for()
    await page.get_by_label("Your token, to confirm").fill("rhy_not-my-token")
    await page.get_by_role("button", name="Delete everything").click()
    await page.get_by_role("alert").filter(has_text="nothing was deleted").wait_for()
    await _check_accessibility(page)
    await _screenshot(page, "delete-refused")
    assert page.url.endswith(f"/console/users/{user_id}/delete")


async def test_a_user_corrects_a_calendar_events_action(
    page: Any, create_user: CreateUser, db_session: AsyncSession
) -> None:
    user_id, token = await _seeded(create_user, db_session)
    await _sign_in(page, token)
    await page.get_by_label("Action of Dentist").select_option(Action.MEDITATE.value)
    row = page.locator("tr", has=page.get_by_label("Action of Dentist"))
    await row.get_by_role("button", name="Save").click()
    await page.get_by_role("status").filter(has_text="The event's action was saved.").wait_for()
    assert await page.get_by_label("Action of Dentist").input_value() == Action.MEDITATE.value
    await _check_accessibility(page)
    await _screenshot(page, "person-corrected")
    event = (
        await db_session.execute(
            select(CalendarEvent).where(CalendarEvent.user_id == user_id, CalendarEvent.title == "Dentist")
        )
    ).scalar_one()
    assert event.action is Action.MEDITATE


async def test_user_a_cannot_open_user_bs_pages(
    page: Any, create_user: CreateUser, db_session: AsyncSession
) -> None:
    _user_a, token_a = await _seeded(create_user, db_session)
    user_b, _token_b = await _seeded(create_user, db_session)
    await _sign_in(page, token_a)
    for path in (f"/console/users/{user_b}", f"/console/users/{user_b}/delete", "/console/ops"):
        response = await page.goto(path)
        assert response is not None and response.status == 404, path
        await page.get_by_role("heading", name="Not found", level=1).wait_for()
    await _check_accessibility(page)
    await _screenshot(page, "not-found")


async def test_an_operator_starts_a_finetune_job_and_filters_the_jobs(
    page: Any, settings: Settings, create_user: CreateUser, db_session: AsyncSession
) -> None:
    seeded_id, _token = await _seeded(create_user, db_session)
    # The job is started for a second person, so the seeded person's failed job of this week stays failed
    # (starting theirs would re-queue it) and the page shows jobs in three states.
    user_id, _headers = await create_user()
    stuck = WebhookEvent(
        source="terra",
        external_id="evt-2026-11-30-sleep",
        raw_body=b"{}",
        headers={},
        attempts=8,
        error="no connection for terra user 4f1c",
    )
    db_session.add_all(
        [stuck, WebhookEvent(source="terra", external_id="evt-pending-1", raw_body=b"{}", headers={})]
    )
    await db_session.commit()
    await _sign_in(page, settings.admin_token.get_secret_value())
    assert page.url.endswith("/console/ops")
    await page.get_by_role("button", name="Replay event evt-2026-11-30-sleep").click()
    await page.get_by_role("status").filter(has_text="queued for processing again").wait_for()
    await page.get_by_role("heading", name="Operations", level=1).wait_for()
    assert "out of memory on worker-2" in await page.inner_text("#jobs")
    await page.get_by_label("User", exact=True).select_option(str(user_id))
    await page.get_by_role("button", name="Start fine-tune").click()
    await page.get_by_role("status").filter(has_text="Fine-tune job queued.").wait_for()
    # htmx swaps the jobs table in place when the filter changes, and the URL follows.
    await page.get_by_label("Status").select_option("queued")
    await page.wait_for_url("**/console/ops?status=queued")
    jobs = page.locator("#jobs")
    await jobs.get_by_text("queued", exact=True).first.wait_for()
    assert "out of memory" not in await jobs.inner_text()
    await page.get_by_label("Status").select_option("")
    await page.wait_for_url("**/console/ops?status=")
    await page.locator("#jobs").get_by_text("out of memory on worker-2").wait_for()
    # The seeded person's row has an enabled rollback; the new person, with no adapter, has none.
    rollback = "Roll back the adapter of user {}"
    assert await page.get_by_role("button", name=rollback.format(seeded_id)).count() == 1
    assert await page.get_by_role("button", name=rollback.format(user_id)).count() == 0
    await _check_accessibility(page)
    await _screenshot(page, "ops")
    jobs_in_db = (
        (await db_session.execute(select(FinetuneJob).where(FinetuneJob.user_id == user_id))).scalars().all()
    )
    assert [j.status for j in jobs_in_db].count(FinetuneStatus.QUEUED) == 1
