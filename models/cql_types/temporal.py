"""date, time, timestamp and duration: Debezium's epoch numbers and the driver's objects, to the same values.

Debezium sends a duration as ``io.debezium.time.NanoDuration`` (a month is 30 days), so the driver's
``Duration`` is collapsed the same way; times lose their sub-microsecond digits, timestamps are UTC.
"""

from __future__ import annotations

import datetime as dt
from typing import Final, TypeVar

from cassandra.util import Duration as DriverDuration

from models.cql_types.parsing import CqlType
from models.cql_types.scalars import integer_value
from models.cql_types.value_errors import bad_value

_UTC: Final = dt.UTC
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=_UTC)
_EPOCH_DATE: Final = dt.date(1970, 1, 1)
_NANOS_PER_DAY: Final = 86_400 * 10**9
_MICROS_PER_DAY: Final = 86_400 * 10**6
_DURATION_PARTS: Final = (("int", "months"), ("int", "days"), ("bigint", "nanoseconds"))

_Day = TypeVar("_Day", bound=dt.date)


def _after(t: CqlType, start: _Day, amount: int, unit: str) -> _Day:
    try:
        return start + dt.timedelta(**{unit: amount})
    except OverflowError:
        raise bad_value(t, amount, f"{t.name} outside years 1..9999 (not representable in Python)") from None


def date_from_days(t: CqlType, days: object) -> dt.date:
    return _after(t, _EPOCH_DATE, integer_value(CqlType("int"), days), "days")


def time_from_nanos(t: CqlType, nanos: object) -> dt.time:
    """Nanoseconds since midnight -> time; the sub-microsecond digits are truncated."""
    nanos = integer_value(CqlType("bigint"), nanos)
    if not 0 <= nanos < _NANOS_PER_DAY:
        raise bad_value(t, nanos, "time must be in [0, 86400 s)")
    micros = nanos // 1000
    seconds, micro = divmod(micros, 1_000_000)
    minutes, second = divmod(seconds, 60)
    return dt.time(minutes // 60, minutes % 60, second, micro)


def timestamp_from_millis(t: CqlType, millis: object) -> dt.datetime:
    return _after(t, _EPOCH, integer_value(CqlType("bigint"), millis), "milliseconds")


def duration_from_nanos(t: CqlType, nanos: object) -> dt.timedelta:
    """Debezium NanoDuration nanoseconds -> timedelta, truncated toward zero to microseconds."""
    nanos = integer_value(CqlType("bigint"), nanos)
    micros = abs(nanos) // 1000
    return dt.timedelta(microseconds=-micros if nanos < 0 else micros)


def _wrap_int64(value: int) -> int:
    return (value + 2**63) % 2**64 - 2**63


def debezium_duration_nanos(months: int, days: int, nanos: int) -> int:
    """What io.debezium.time.NanoDuration.durationNanos(0, months, days, 0, 0, 0, nanos) yields (Java longs,
    ``ChronoUnit.MONTHS.getDuration().toDays()`` = 30)."""
    return _wrap_int64((months * 30 + days) * 86_400 * 10**9 + nanos)


def date_from_driver(t: CqlType, value: object) -> dt.date:
    days = getattr(value, "days_from_epoch", None)
    if days is not None:
        return date_from_days(t, days)
    if isinstance(value, dt.datetime):
        raise bad_value(t, value, "expected a date, got a datetime")
    if isinstance(value, dt.date):
        return value
    return date_from_days(t, value)


def time_from_driver(t: CqlType, value: object) -> dt.time:
    nanos = getattr(value, "nanosecond_time", None)
    if nanos is not None:
        return time_from_nanos(t, nanos)
    if isinstance(value, dt.time):
        return value.replace(tzinfo=None)
    return time_from_nanos(t, value)


def timestamp_from_driver(t: CqlType, value: object) -> dt.datetime:
    """Naive datetimes are UTC (the driver's convention); floored to milliseconds like Cassandra."""
    if isinstance(value, dt.datetime):
        aware = value.replace(tzinfo=_UTC) if value.tzinfo is None else value.astimezone(_UTC)
        return aware - dt.timedelta(microseconds=aware.microsecond % 1000)
    return timestamp_from_millis(t, value)


def duration_from_driver(t: CqlType, value: object) -> dt.timedelta:
    """cassandra.util.Duration -> the same timedelta as the Debezium event (months = 30 days)."""
    if isinstance(value, DriverDuration):
        months, days, nanos = (integer_value(CqlType(n), getattr(value, a)) for n, a in _DURATION_PARTS)
        return duration_from_nanos(t, debezium_duration_nanos(months, days, nanos))
    if isinstance(value, dt.timedelta):
        return value
    return duration_from_nanos(t, value)


def driver_duration(value: dt.timedelta) -> DriverDuration:
    """A canonical duration as the driver's ``Duration(0 months, days, nanos)`` (days of 24 h)."""
    micros = value // dt.timedelta(microseconds=1)
    days = abs(micros) // _MICROS_PER_DAY * (1 if micros >= 0 else -1)
    return DriverDuration(0, days, (micros - days * _MICROS_PER_DAY) * 1000)


def utc_millis_iso(value: dt.datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.fffZ``: a timestamp's jsonb text."""
    return value.astimezone(_UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def duration_iso(value: dt.timedelta) -> str:
    """``[-]P<days>DT<seconds>.<micros:06>S``: a duration's jsonb text (days of 24 h, seconds < 86400)."""
    micros = abs(value // dt.timedelta(microseconds=1))
    days, rest = divmod(micros, _MICROS_PER_DAY)
    seconds, micro = divmod(rest, 10**6)
    sign = "-" if value < dt.timedelta(0) else ""
    return f"{sign}P{days}DT{seconds}.{micro:06d}S"
