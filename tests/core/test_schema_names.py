"""The API's schema names follow one rule (STYLE: ``XCreate`` for request bodies, ``XPublic`` for answers).

* ``XCreate`` — a request body that creates (POST); ``XUpdate`` — one that changes (PATCH, PUT);
* ``XPublic`` — an answer, or a part of one; ``XPage`` — a page of ``XPublic`` items with ``next_cursor``.

Checked on the OpenAPI document the service serves, for every object schema defined in ``app/``. Left out on
purpose: the one error shape (``ErrorResponse`` / ``ErrorBody``); ``MeterValues``, the five meters, one value
object inside a request body and inside its answer; FastAPI's own validation schemas (never served: 422s use
the error shape); provider formats defined in ``bridges/`` (Health Auto Export's JSON keeps its own names);
enums, which are vocabulary, not bodies.
"""

from __future__ import annotations

from pydantic import BaseModel

from app.core.config import Settings
from app.main import create_app

SUFFIXES = ("Create", "Update", "Public", "Page")
NAMED_FOR_WHAT_THEY_ARE = {"ErrorResponse", "ErrorBody", "MeterValues"}


def _models() -> dict[str, type[BaseModel]]:
    found: dict[str, type[BaseModel]] = {}
    stack: list[type[BaseModel]] = [BaseModel]
    while stack:
        for sub in stack.pop().__subclasses__():
            found.setdefault(sub.__name__, sub)
            stack.append(sub)
    return found


def misnamed(schemas: dict[str, dict[str, object]], models: dict[str, type[BaseModel]]) -> list[str]:
    """Object schemas of ``app/`` whose name ends in none of :data:`SUFFIXES` (name: module)."""
    bad = []
    for name, schema in sorted(schemas.items()):
        model = models.get(name)
        if "enum" in schema or name in NAMED_FOR_WHAT_THEY_ARE or model is None:
            continue
        if model.__module__.split(".")[0] == "app" and not name.endswith(SUFFIXES):
            bad.append(f"{name} ({model.__module__})")
    return bad


def test_every_api_schema_is_named_create_update_public_or_page(settings: Settings) -> None:
    schemas = create_app(settings).openapi()["components"]["schemas"]
    # The rule reaches the answers that grew after it (ops, webhooks, fine-tunes, calendar corrections).
    assert {"RecommendationCreate", "FeedbackPublic", "ReadinessPublic", "ActionCorrectionUpdate"} <= set(
        schemas
    )
    assert misnamed(schemas, _models()) == []


def test_the_name_check_finds_a_stray_name() -> None:
    class WebhookEventView(BaseModel):
        pass

    WebhookEventView.__module__ = "app.webhooks.schemas"
    schemas: dict[str, dict[str, object]] = {
        "WebhookEventView": {"type": "object"},
        "Status": {"enum": ["a"]},
        "ErrorBody": {},
    }
    assert misnamed(schemas, {"WebhookEventView": WebhookEventView}) == [
        "WebhookEventView (app.webhooks.schemas)"
    ]
