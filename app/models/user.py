"""Users and their API tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAtMixin, IdMixin, UserOwnedMixin


class User(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "users"

    # IANA zone name ("Europe/Berlin"): slots (Morning…Night) are local time of the person, not of the server.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")


class ApiToken(IdMixin, UserOwnedMixin, CreatedAtMixin, Base):
    """A bearer token of a user. Only its SHA-256 is stored; the plaintext is shown once at creation."""

    __tablename__ = "api_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the token, to tell tokens apart in listings and logs without revealing them.
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
