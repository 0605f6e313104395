"""Typed dependencies of the recommend and feedback routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.recommend.decider import PolicyService


def get_policy(request: Request) -> PolicyService:
    policy: PolicyService = request.app.state.policy
    return policy


PolicyDep = Annotated[PolicyService, Depends(get_policy)]
