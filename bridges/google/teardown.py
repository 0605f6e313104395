"""Teardown of a ``google`` connection: stop its Calendar push channels at Google.

``collect`` runs while the rows exist (the connection's deletion cascades to its calendars and channels) and
keeps only channel ids and resource ids; ``run`` stops them later in a worker, before the tokens are revoked.
Stopping a channel Google no longer knows is a success (404), so a retry that repeats calls is harmless.
Without tokens the channels cannot be stopped; they expire on their own (at most the channel TTL) and every
notification on them is refused meanwhile (their rows are gone).
"""

from __future__ import annotations

from typing import Any

import httplib2
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.models import GoogleCalendar, GoogleChannel
from app.models.device import DeviceConnection
from bridges.connections import TokenSet
from bridges.google.client import GoogleClients, credentials_for, stop_channel
from bridges.oauth.teardown import register_teardown


class GoogleChannels:
    def __init__(self, http: httplib2.Http | None = None) -> None:
        self.http = http  # tests inject an HttpMockSequence

    def collect(self, session: Session, connection: DeviceConnection) -> dict[str, Any]:
        rows = session.execute(
            select(GoogleChannel.channel_id, GoogleChannel.resource_id)
            .join(GoogleCalendar, GoogleChannel.calendar_row_id == GoogleCalendar.id)
            .where(
                GoogleCalendar.user_id == connection.user_id,
                GoogleCalendar.connection_id == connection.id,
                GoogleChannel.stopped_at.is_(None),
            )
        ).all()
        channels = [{"id": channel_id, "resourceId": resource_id} for channel_id, resource_id in rows]
        return {"channels": channels}

    def run(self, payload: dict[str, Any], tokens: TokenSet | None, settings: Settings) -> None:
        channels = payload.get("channels") or []
        if not channels or tokens is None:
            return
        clients = GoogleClients.create(credentials_for(tokens, settings), settings, self.http)
        for channel in channels:
            stop_channel(clients, channel_id=str(channel["id"]), resource_id=str(channel["resourceId"]))


register_teardown("google", GoogleChannels())
