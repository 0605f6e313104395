"""Typed dependencies of the recommend and feedback routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.recommend.decider import PolicyService


# async so that FastAPI calls it on the event loop, not in its thread pool (see ``get_settings_dep``).
async def get_policy(request: Request) -> PolicyService:
    policy: PolicyService = request.app.state.policy
    return policy


PolicyDep = Annotated[PolicyService, Depends(get_policy)]
