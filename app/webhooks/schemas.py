"""What the inbox answers and how an event's state is named."""

from __future__ import annotations

import enum

from pydantic import BaseModel


class WebhookStatus(enum.StrEnum):
    """Derived from the row: ``handled_at`` set → handled; else an ``error`` → failed; else pending."""

    PENDING = "pending"
    HANDLED = "handled"
    FAILED = "failed"


class WebhookReceipt(BaseModel):
    """The answer to the provider: 202 for a new delivery, 200 for one already received."""

    received: bool = True
    duplicate: bool
