"""Shared declarative base: naming convention, UUID keys, UTC timestamps, JSON that is JSONB on Postgres."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Double,
    Enum,
    ForeignKey,
    MetaData,
    TypeDecorator,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from domain import METER_NAMES, Meters

# Named constraints make migrations reversible on SQLite (batch mode recreates tables by constraint name).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware timestamps on every backend.

    Postgres stores ``timestamptz``; SQLite has no time zones and returns naive values, read back as UTC.
    Naive values on the way in are rejected: they are always a bug.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a timezone-aware column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        uuid.UUID: Uuid(),
        dict[str, Any]: JSONType,
    }


class IdMixin:
    """Random UUID primary keys: unguessable, and they never leak how many objects exist (OWASP API1)."""

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4, sort_order=-10)


class CreatedAtMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=func.now(), sort_order=-1)


class UserOwnedMixin:
    """Rows that belong to one user: deleted with the user, always queried by ``user_id``."""

    @declared_attr
    def user_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True, sort_order=-5)


def str_enum(enum_cls: type[enum.StrEnum], name: str) -> Enum:
    """A portable enum column: VARCHAR plus a named CHECK, storing the enum *values* (what the API speaks)."""
    return Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


def unit_interval_checks(*columns: str) -> tuple[CheckConstraint, ...]:
    """CHECK 0 <= column <= 1 for each meter column: the database refuses impossible meter values."""
    return tuple(
        CheckConstraint(f"{column} >= 0 AND {column} <= 1", name=f"{column}_unit") for column in columns
    )


# The meter columns carry the meters' own names (domain.METER_NAMES) in every table that stores a state.
METER_COLUMNS: tuple[str, ...] = METER_NAMES


class MeterColumnsMixin:
    """One nullable double column per meter, named after it, each CHECKed to [0, 1] by the table's
    ``unit_interval_checks(*METER_COLUMNS)``. NULL is a *missing* meter: the bridge had no fresh input for
    it (confidence 0), which is not the same as 0.5. Build rows with ``**meter_row(values)``; read them
    back with :func:`meter_values_of` (values or ``None``), or :func:`meters_of` when every meter is known."""

    @property
    def meters(self) -> Meters:
        return meters_of(self)


def _meter_column(_cls: type) -> Mapped[float | None]:
    return mapped_column(Double, nullable=True)


for _name in METER_COLUMNS:
    setattr(MeterColumnsMixin, _name, declared_attr(_meter_column))


def meter_columns(model: type[Base]) -> list[Any]:
    """The model's meter columns in ``METERS`` order, for ``select(...)``."""
    return [getattr(model, name) for name in METER_COLUMNS]


def meter_values_of(row: Any) -> tuple[float | None, ...]:
    """The meter values stored in a row, in ``METERS`` order; ``None`` where the meter is missing."""
    return tuple(getattr(row, name) for name in METER_COLUMNS)


def meter_row(values: Sequence[float | None]) -> dict[str, float | None]:
    """``{column: value or None}`` for an insert, from values in ``METERS`` order."""
    if len(values) != len(METER_COLUMNS):
        raise ValueError(f"expected {len(METER_COLUMNS)} meter values, got {len(values)}")
    return dict(zip(METER_COLUMNS, values, strict=True))


def meters_of(row: Any) -> Meters:
    """The :class:`~domain.Meters` stored in a row with every meter known (``ValueError`` if one is NULL)."""
    values = meter_values_of(row)
    if any(value is None for value in values):
        raise ValueError("the row has missing meters; read it with meter_values_of")
    return Meters(*(value for value in values if value is not None))
