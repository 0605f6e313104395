"""The provider side of the webhook inbox: what each ``bridges/<provider>/`` implements, and the registry.

The inbox (``app.webhooks``) owns storage, dedupe, queues and retries; a provider owns only its format:

1. :meth:`WebhookProvider.from_settings` — the provider configured from the service's settings, or ``None``
   when its secret is missing (the route then answers 404: an empty secret verifies against an empty key,
   which anyone can forge).
2. :meth:`~WebhookProvider.verify` the exact raw bytes and headers (constant-time, timestamp tolerance where
   the scheme has one) → :class:`SignatureError` (401).
3. :meth:`~WebhookProvider.parse` them into the provider's payload → :class:`MalformedPayload` (400).
4. :meth:`~WebhookProvider.external_id` — the delivery's dedupe key within the provider.
5. Later, in a worker, from the stored bytes: :meth:`~WebhookProvider.user_ref` (who it is about),
   :meth:`~WebhookProvider.connection_change` (lifecycle events) and :meth:`~WebhookProvider.to_readings`.

Readings use the meters' vocabulary (:mod:`bridges.meters.signals`): a provider hands each value over as a
:class:`~bridges.meters.signals.RawReading` in the unit *it* used, and the inbox converts and validates them
with ``Reading.create`` (via ``normalise``), so ``signal_readings`` holds what the meters engine reads.

Everything takes headers as well as the body: some providers (Google Calendar push) send an empty body and put
the whole notification in headers. Headers arrive lower-cased.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from bridges.meters.signals import RawReading

Headers = Mapping[str, str]

# A secret carried in the webhook URL's path (Garmin, which signs nothing) reaches ``verify`` under this
# pseudo-header; the inbox never stores it (``app.webhooks.service``) and the access log shows only the route
# template, so it appears nowhere at rest.
PATH_SECRET_HEADER = ":path-secret"

# Bounds of every timestamped scheme (reliability.md §1: reject both directions at 300 s).
DEFAULT_TOLERANCE_S = 300


class SignatureError(Exception):
    """The delivery is not authentic or not fresh (→ 401). The message is for logs, never for the caller."""


class MalformedPayload(Exception):
    """Authentic but not in the provider's documented format (→ 400, nothing stored)."""


class UnmappableEvent(Exception):
    """Retrying cannot help (e.g. the data names a user we do not have): kept with its error, not retried."""


@dataclass(frozen=True, slots=True)
class UserRef:
    """Who an event is about: the provider's user id and, where our backend set it, our own user id."""

    external_user_id: str | None
    our_user_id: str | None = None


class ConnectionAction(enum.StrEnum):
    LINK = "link"  # the user authorised us: create the connection
    UNLINK = "unlink"  # deauthorised / revoked: mark it revoked
    RELINK = "relink"  # the provider issued a new user id for the same person: swap it


@dataclass(frozen=True, slots=True)
class ConnectionChange:
    action: ConnectionAction
    user: UserRef
    new_external_user_id: str | None = None


P = TypeVar("P")


class WebhookProvider(ABC, Generic[P]):
    """One provider's webhook format; ``P`` is its parsed payload type."""

    source: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: Any) -> Self | None:
        """The provider configured from ``settings``, or ``None`` when it is not configured (→ 404)."""

    @classmethod
    def is_configured(cls, settings: Any) -> bool:
        return cls.from_settings(settings) is not None

    @abstractmethod
    def verify(self, headers: Headers, body: bytes, now: datetime) -> None:
        """Raise :class:`SignatureError` unless the raw delivery is authentic and fresh at ``now``."""

    @abstractmethod
    def parse(self, headers: Headers, body: bytes) -> P:
        """The payload, or :class:`MalformedPayload`. Called after :meth:`verify`, and again by the worker."""

    @abstractmethod
    def external_id(self, headers: Headers, payload: P) -> str:
        """The delivery's dedupe key (at most 255 characters): a redelivery must give the same one."""

    @abstractmethod
    def user_ref(self, payload: P) -> UserRef:
        """Whose event this is."""

    async def authenticate(self, session: AsyncSession, headers: Headers, payload: P, now: datetime) -> None:
        """Raise :class:`SignatureError` unless the delivery matches what we stored. For providers whose
        deliveries are not signed (Google Calendar push: a channel id, resource id and per-channel token that
        must match our channel table); signed providers have nothing to add."""
        return None

    def process(self, session: Session, settings: Any, payload: P, now: datetime) -> uuid.UUID | None:
        """Provider-specific work in the worker's transaction, e.g. a notify-only provider scheduling the
        fetch the notification calls for; returns the user the event is about, if it knows. Idempotent."""
        return None

    def connection_change(self, payload: P) -> ConnectionChange | None:
        """The lifecycle change the event announces, if any (most providers' data events: none)."""
        return None

    @abstractmethod
    def to_readings(self, payload: P) -> list[RawReading]:
        """The readings the event carries, in the provider's own units (none for lifecycle events or
        notify-only providers). Conversion and range checks are the inbox's (``normalise``).
        """

    def readings_by_user(self, payload: P) -> list[tuple[UserRef, list[RawReading]]]:
        """The readings grouped by whom they are about. One user per delivery for most providers; Garmin's
        push batches several users' summaries in one body."""
        return [(self.user_ref(payload), self.to_readings(payload))]

    def answer_challenge(self, query: Mapping[str, str]) -> dict[str, str] | None:
        """The answer to a provider's ``GET`` verification of the callback URL (Oura), or ``None`` when the
        provider has no such handshake (→ 404). Raise :class:`SignatureError` for a wrong token (→ 401)."""
        return None


class ProviderApi(Protocol):
    """A provider's REST API as the fetch-after-notify mappings see it: authenticated, retried JSON reads.
    ``None`` means the object is gone (404): there is nothing to fetch, which retrying cannot change."""

    def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any: ...

    def send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """One authenticated, retried request; the provider's answer as it came (an ``httpx.Response``), for
        clients that build their own requests (google-api-python-client)."""


class FetchingProvider(ABC, Generic[P]):
    """A notify-only provider (WHOOP, Oura, Google Health): its deliveries name what changed, and the worker
    fetches it with the user's token. Mixed into a :class:`WebhookProvider`."""

    @abstractmethod
    def fetch_readings(self, payload: P, api: ProviderApi) -> list[RawReading]:
        """What the notification announces, fetched through ``api`` and mapped to readings."""

    @abstractmethod
    def fetch_window(self, api: ProviderApi, start: datetime, end: datetime) -> list[RawReading]:
        """Every reading of ``[start, end)``, listed through ``api`` (backfill on link and the daily
        reconcile, which recovers what a lost push would have delivered)."""


def hmac_sha256(key: str, message: bytes) -> bytes:
    return hmac.new(key.encode(), message, hashlib.sha256).digest()


# 13 digits of milliseconds already reach the year 2286: a longer signature timestamp is no clock's reading,
# and a few hundred digits overflowed the float arithmetic of the freshness check (a 500, issue 10).
MAX_TIMESTAMP_DIGITS = 16


def timestamp_digits(value: str) -> int:
    """The integer of a signature timestamp header: ASCII digits only (``str.isdigit`` also takes ``²``,
    which ``int`` refuses), at most :data:`MAX_TIMESTAMP_DIGITS` of them; else :class:`SignatureError`."""
    if not (value.isascii() and value.isdigit()) or len(value) > MAX_TIMESTAMP_DIGITS:
        raise SignatureError(f"timestamp is not an integer of at most {MAX_TIMESTAMP_DIGITS} digits")
    return int(value)


def check_fresh(timestamp_s: float, now: datetime, tolerance_s: int = DEFAULT_TOLERANCE_S) -> None:
    """Refuse a delivery signed more than ``tolerance_s`` before or after ``now`` (both directions)."""
    try:
        skew = abs(now.timestamp() - timestamp_s)
    except OverflowError:
        raise SignatureError("timestamp outside the tolerance") from None
    if skew > tolerance_s:
        raise SignatureError("timestamp outside the tolerance")


def same_secret(expected: str, given: str) -> bool:
    """Constant-time equality of two secrets (UTF-8 bytes, so any characters compare safely)."""
    return hmac.compare_digest(expected.encode(), given.encode())


def body_digest(body: bytes) -> str:
    """A dedupe key for providers without a delivery id: the same bytes are the same delivery."""
    return "sha256:" + hashlib.sha256(body).hexdigest()


_REGISTRY: dict[str, type[WebhookProvider[Any]]] = {}


ProviderClass = TypeVar("ProviderClass", bound=type[WebhookProvider[Any]])


def register_provider(provider: ProviderClass) -> ProviderClass:
    """Class decorator: make ``provider`` reachable at ``POST /v1/webhooks/{provider.source}``."""
    existing = _REGISTRY.get(provider.source)
    if existing is not None and existing is not provider:
        raise ValueError(f"webhook provider {provider.source!r} is registered twice")
    _REGISTRY[provider.source] = provider
    return provider


def get_provider(source: str, settings: Any) -> WebhookProvider[Any] | None:
    """The configured provider registered as ``source``, or ``None`` (unknown or not configured alike)."""
    provider = _REGISTRY.get(source)
    return None if provider is None else provider.from_settings(settings)


def registered_sources() -> list[str]:
    return sorted(_REGISTRY)


M = TypeVar("M", bound="BaseModel")


def parse_model(body: bytes, model: type[M], what: str) -> M:
    """``body`` as a JSON object validated by ``model``, or :class:`MalformedPayload` naming bad fields."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedPayload("the body is not JSON") from exc
    if not isinstance(document, dict):
        raise MalformedPayload("the body is not a JSON object")
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in error["loc"]) for error in exc.errors()})
        raise MalformedPayload(f"not a {what} event: " + ", ".join(fields[:10])) from exc
