"""Every request schema is strict, checked on the schemas themselves so that a new route cannot slip through
(issue 10): numbers and booleans in bodies are JSON numbers and booleans (``"0.5"`` and ``true`` are not read
as numbers, ``1`` is not read as ``true``), and every moment in time, in a body or a query, is an
:data:`app.core.timebounds.Instant` (an ISO 8601 string with an offset, within the configured bound).

The behaviour behind each rule is tested per endpoint (tests/core/test_timebounds.py,
tests/recommend/…, tests/finetune/test_ops.py, tests/connections/test_link.py); this test makes the rule
general.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from fastapi import FastAPI, params
from fastapi.routing import APIRoute
from pydantic import TypeAdapter

from app.core import timebounds
from app.main import create_app
from tests.support import make_settings

_SCALARS = ("int", "float", "bool", "decimal")
_TIMES = ("datetime", "date", "time", "timedelta")


def _api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        # Included routers (FastAPI >= 0.16x keeps them as a node holding the original router).
        elif (inner := getattr(route, "original_router", None)) is not None:
            yield from _api_routes(inner.routes)
        elif (nested := getattr(route, "routes", None)) is not None:
            yield from _api_routes(nested)


def _functions(node: dict[str, Any]) -> str | None:
    function = node.get("function", {}).get("function")
    return getattr(function, "__name__", None)


def _violations(node: Any, where: str, ancestors: tuple[str, ...], *, body: bool) -> Iterator[str]:
    """Walk a pydantic-core schema; ``ancestors`` are the names of the validator functions around ``node``."""
    if isinstance(node, list):
        for item in node:
            yield from _violations(item, where, ancestors, body=body)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind in ("model", "model-fields", "dataclass", "dataclass-args", "typed-dict"):
        # Validators of a model (say a model_validator) do not check the types of its fields.
        ancestors = ()
    if kind in ("function-before", "function-after", "function-wrap", "function-plain"):
        ancestors = (*ancestors, _functions(node) or "?")
    if body and kind in _SCALARS and node.get("strict") is not True:
        yield f"{where}: a {kind} that is not strict (a string or boolean would be coerced)"
    # A literal True accepts 1 and 1.0 unless a validator looks at the JSON type first.
    numeric_literal = kind == "literal" and any(isinstance(v, bool | int) for v in node["expected"])
    if body and numeric_literal and not ancestors:
        yield f"{where}: a boolean or integer literal without a type check"
    if kind in _TIMES:
        needed = {timebounds._iso_string_only.__name__, timebounds._within_bounds.__name__}
        if kind != "datetime" or not needed <= set(ancestors):
            yield f"{where}: a {kind} that is not app.core.timebounds.Instant"
    for key, value in node.items():
        if key not in ("serialization", "metadata", "function", "ref"):
            yield from _violations(value, where, ancestors, body=body)


def _schema_of(field_info: Any) -> Any:
    annotation = field_info.annotation
    if field_info.metadata:
        annotation = Annotated[(annotation, *field_info.metadata)]
    return TypeAdapter(annotation).core_schema


def _edge_fields(app: FastAPI) -> Iterator[tuple[str, bool, Any]]:
    """(where, is a JSON body, the field's core schema) for every body and query field of every route."""

    def walk(dependant: Any) -> Iterator[Any]:
        yield dependant
        for sub in dependant.dependencies:
            yield from walk(sub)

    for route in _api_routes(app.router.routes):
        for dependant in walk(route.dependant):
            for field in dependant.body_params:
                # HTML forms (the console) send strings only; pydantic reads them as such.
                if isinstance(field.field_info, params.Form):
                    continue
                yield f"{sorted(route.methods or ())} {route.path} body", True, _schema_of(field.field_info)
            for field in dependant.query_params:
                where = f"{sorted(route.methods or ())} {route.path} ?{field.alias}"
                yield where, False, _schema_of(field.field_info)


@pytest.fixture(scope="module")
def edge_fields() -> list[tuple[str, bool, Any]]:
    app = create_app(make_settings("postgresql://unused@127.0.0.1:1/unused"))
    return list(_edge_fields(app))


def test_the_walk_sees_every_kind_of_field(edge_fields: list[tuple[str, bool, Any]]) -> None:
    # The guard is only as good as its reach: bodies, queries and time filters of the routes we know.
    places = {where for where, _, _ in edge_fields}
    for expected in (
        "['POST'] /v1/recommend body",
        "['POST'] /v1/feedback body",
        "['PATCH'] /v1/users/me body",
        "['POST'] /v1/ingest/signals body",
        "['POST'] /v1/ops/finetune-jobs body",
        "['GET'] /v1/users/me/meters ?from",
        "['GET'] /v1/users/me/calendar-events ?to",
    ):
        assert expected in places, sorted(places)


def test_bodies_are_strict_and_times_are_instants(edge_fields: list[tuple[str, bool, Any]]) -> None:
    problems = [
        problem
        for where, body, schema in edge_fields
        for problem in _violations(schema, where, (), body=body)
    ]
    assert problems == []


def test_the_guard_catches_lax_fields() -> None:
    from datetime import datetime
    from typing import Literal

    from pydantic import BaseModel

    class Lax(BaseModel):
        count: int
        flag: Literal[True]
        at: datetime

    problems = list(_violations(TypeAdapter(Lax).core_schema, "Lax", (), body=True))
    assert len(problems) == 3, problems
    assert list(_violations(TypeAdapter(timebounds.Instant).core_schema, "Instant", (), body=True)) == []
