"""What a provider must undo when a connection goes away, beyond revoking its tokens.

Two halves, because the rows are gone by the time the provider is called: :meth:`Teardown.collect` runs in the
request (or task) that deletes the connection, while the rows still exist, and gathers what the provider needs
(e.g. Google push channel ids and resource ids); it is stored with the pending revocation and
:meth:`Teardown.run` makes the provider calls later in a worker, retried until they succeed. ``run`` must be
idempotent (a retry may repeat calls that already succeeded) and raise to ask for a retry.

The API calls ``collect`` through ``AsyncSession.run_sync``, so it receives a synchronous ``Session``.
The calendar bridge registers one for ``google``.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy.orm import Session

from app.core.config import Settings
from app.models.device import DeviceConnection
from bridges.connections import TokenSet


class Teardown(Protocol):
    def collect(self, session: Session, connection: DeviceConnection) -> dict[str, Any]: ...

    def run(self, payload: dict[str, Any], tokens: TokenSet | None, settings: Settings) -> None: ...


_TEARDOWNS: dict[str, Teardown] = {}


def register_teardown(provider: str, teardown: Teardown) -> None:
    """Make ``teardown`` run whenever a ``provider`` connection is deleted (the last one registered wins)."""
    _TEARDOWNS[provider] = teardown


def teardown_for(provider: str) -> Teardown | None:
    return _TEARDOWNS.get(provider)
