"""The ``google-calendar`` provider of the webhook inbox: Calendar push notifications (``events.watch``).

A notification has an empty body; everything is in headers (bridges.md §1.1): ``X-Goog-Channel-ID``,
``X-Goog-Message-Number``, ``X-Goog-Resource-ID``, ``X-Goog-Resource-State`` (``sync`` | ``exists`` |
``not_exists``) and, because we set one, ``X-Goog-Channel-Token``. Nothing is signed, so a delivery is
authentic only if channel id, resource id and token all match a live channel in ``google_channels`` (the token
compared in constant time against its stored SHA-256). Forged, stopped or expired channels → 401, nothing
stored; the same notification again has the same ``(channel, message number)`` and is a duplicate.

Processing: ``sync`` (sent once when a channel opens) needs nothing; ``exists`` requests one coalesced
incremental sync of the calendar (:mod:`bridges.google.coalesce`).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Self

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from app.models import GoogleChannel
from bridges.google import coalesce
from bridges.meters.signals import RawReading
from bridges.webhooks import (
    Headers,
    MalformedPayload,
    SignatureError,
    UserRef,
    WebhookProvider,
    register_provider,
)

SOURCE = "google-calendar"
WEBHOOK_PATH = "/v1/webhooks/google-calendar"
STATES = frozenset({"sync", "exists", "not_exists"})
# Google stops delivering at the expiration; allow for clock differences, not for replays days later.
EXPIRY_GRACE = timedelta(minutes=5)
_DUMMY_HASH = hashlib.sha256(b"no such channel").hexdigest()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ChannelNotification:
    channel_id: str
    resource_id: str
    state: str
    message_number: int
    token: str | None


def _header(headers: Headers, name: str, limit: int = 255) -> str:
    value = headers.get(name, "").strip()
    if not value or len(value) > limit:
        raise MalformedPayload(f"missing or oversized {name}")
    return value


@register_provider
class GoogleCalendarPush(WebhookProvider[ChannelNotification]):
    source = SOURCE

    @classmethod
    def from_settings(cls, settings: Any) -> Self | None:
        # Without a public base URL no channel can exist, so there is nothing to receive.
        return cls() if getattr(settings, "public_base_url", "") else None

    def verify(self, headers: Headers, body: bytes, now: datetime) -> None:
        # The real check needs the channel table: authenticate(). Here only what needs no lookup.
        if "x-goog-channel-id" not in headers or "x-goog-channel-token" not in headers:
            raise SignatureError("no channel id or token")

    def parse(self, headers: Headers, body: bytes) -> ChannelNotification:
        if body.strip():
            raise MalformedPayload("Calendar push notifications have an empty body")
        state = _header(headers, "x-goog-resource-state", 32)
        if state not in STATES:
            raise MalformedPayload(f"unknown resource state {state!r}")
        number = _header(headers, "x-goog-message-number", 20)
        # isascii too: str.isdigit takes "²" (a latin-1 header byte), which int() refuses.
        if not (number.isascii() and number.isdigit()):
            raise MalformedPayload("message number is not a number")
        return ChannelNotification(
            channel_id=_header(headers, "x-goog-channel-id", 64),
            resource_id=_header(headers, "x-goog-resource-id"),
            state=state,
            message_number=int(number),
            # Absent when the worker re-parses the stored headers (the token is never stored).
            token=headers.get("x-goog-channel-token"),
        )

    def external_id(self, headers: Headers, payload: ChannelNotification) -> str:
        # Message numbers increase per channel (not necessarily by one): a dedupe key, never a gap detector.
        return f"{payload.channel_id}:{payload.message_number}"

    def user_ref(self, payload: ChannelNotification) -> UserRef:
        return UserRef(external_user_id=None)

    def to_readings(self, payload: ChannelNotification) -> list[RawReading]:
        return []

    async def authenticate(
        self, session: AsyncSession, headers: Headers, payload: ChannelNotification, now: datetime
    ) -> None:
        statement = select(GoogleChannel).where(GoogleChannel.channel_id == payload.channel_id)
        channel = (await session.execute(statement)).scalar_one_or_none()
        given = token_hash(payload.token or "")
        # Compare even when the channel is unknown, so timing does not tell which channel ids exist.
        token_ok = hmac.compare_digest(given, channel.token_hash if channel is not None else _DUMMY_HASH)
        if channel is None:
            raise SignatureError("unknown channel")
        resource_ok = hmac.compare_digest(payload.resource_id.encode(), channel.resource_id.encode())
        if not (token_ok and resource_ok):
            raise SignatureError("channel token or resource id does not match")
        if channel.stopped_at is not None or channel.expiration + EXPIRY_GRACE < now:
            raise SignatureError("channel stopped or expired")

    def process(
        self, session: Session, settings: Any, payload: ChannelNotification, now: datetime
    ) -> uuid.UUID | None:
        statement = select(GoogleChannel).where(GoogleChannel.channel_id == payload.channel_id)
        channel = session.execute(statement).scalar_one_or_none()
        if channel is None:
            # Deleted since it was accepted (user gone, channel torn down): nothing left to sync.
            return None
        if payload.state == "exists" and channel.stopped_at is None:
            coalesce.request_sync(session, settings, channel.calendar_row_id, now)
        return channel.user_id
