"""What the inbox answers and how an event's state is named."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from pydantic import BaseModel


class WebhookStatus(enum.StrEnum):
    """Derived from the row: ``handled_at`` set → handled; else an ``error`` → failed; else pending."""

    PENDING = "pending"
    HANDLED = "handled"
    FAILED = "failed"


class WebhookReceiptPublic(BaseModel):
    """The answer to the provider: 202 for a new delivery, 200 for one already received."""

    received: bool = True
    duplicate: bool


class WebhookEventPublic(BaseModel):
    """An inbox event as operators see it: never the raw body or the stored headers (they may carry secrets
    or health data)."""

    id: uuid.UUID
    source: str
    external_id: str
    user_id: uuid.UUID | None
    received_at: datetime
    handled_at: datetime | None
    attempts: int
    error: str | None
    status: WebhookStatus


class WebhookEventPage(BaseModel):
    """One page, newest first; pass ``next_cursor`` as ``cursor`` for the next (``null``: the last page)."""

    items: list[WebhookEventPublic]
    next_cursor: str | None


class WebhookChallengePublic(BaseModel):
    """The echo a provider's callback verification expects."""

    challenge: str
