"""All tables. Importing this package registers every model on ``Base.metadata`` (Alembic needs that)."""

from app.models.adapter import Adapter, AdapterStatus, FinetuneJob, FinetuneStatus
from app.models.base import Base
from app.models.calendar import CalendarCorrection, GoogleCalendar, GoogleChannel, GoogleTask
from app.models.connect import OAuthState, PendingRevocation
from app.models.device import DeviceConnection, WebhookEvent
from app.models.heartbeat import ProcessHeartbeat, ProcessKind
from app.models.idempotency import IdempotencyKey, IdempotencyStatus
from app.models.recommendation import Feedback, Recommendation
from app.models.signals import CalendarEvent, MeterRecompute, MeterSnapshot, SignalReading
from app.models.user import ApiToken, User

# Tables holding a user's personal data, in an order safe for export and deletion (children after parents).
USER_OWNED_MODELS: tuple[type[Base], ...] = (
    ApiToken,
    DeviceConnection,
    OAuthState,
    WebhookEvent,
    SignalReading,
    MeterSnapshot,
    MeterRecompute,
    GoogleCalendar,
    GoogleChannel,
    CalendarEvent,
    CalendarCorrection,
    GoogleTask,
    Adapter,
    FinetuneJob,
    Recommendation,
    Feedback,
    IdempotencyKey,
)

__all__ = [
    "USER_OWNED_MODELS",
    "Adapter",
    "AdapterStatus",
    "ApiToken",
    "Base",
    "CalendarCorrection",
    "CalendarEvent",
    "DeviceConnection",
    "Feedback",
    "FinetuneJob",
    "FinetuneStatus",
    "GoogleCalendar",
    "GoogleChannel",
    "GoogleTask",
    "IdempotencyKey",
    "IdempotencyStatus",
    "MeterRecompute",
    "MeterSnapshot",
    "OAuthState",
    "PendingRevocation",
    "ProcessHeartbeat",
    "ProcessKind",
    "Recommendation",
    "SignalReading",
    "User",
    "WebhookEvent",
]
