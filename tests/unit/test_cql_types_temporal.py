"""Unit tests for models.cql_types.temporal: date, time, timestamp and duration through both paths."""

from __future__ import annotations

import datetime as dt

import pytest
from cassandra.util import Date, Duration, Time
from hypothesis import given
from hypothesis import strategies as st

from models.cql_types import (
    from_debezium,
    from_driver,
    parse_cql_type,
    to_json_compatible,
)
from models.errors import ValueMappingError
from tests.cql_values import UTC, both


def test_date() -> None:
    assert both("date", -1, Date(dt.date(1969, 12, 31))) == dt.date(1969, 12, 31)
    assert both("date", -719162, Date(dt.date(1, 1, 1))) == dt.date(1, 1, 1)
    assert both("date", 19723, Date(19723)) == dt.date(2024, 1, 1)
    with pytest.raises(ValueMappingError, match=r"1\.\.9999"):
        from_debezium(parse_cql_type("date"), -800000)


def test_time_truncates_nanoseconds() -> None:
    result = both("time", 86399123456789, Time(86399123456789))
    assert result == dt.time(23, 59, 59, 123456)
    assert both("time", 999, Time(999)) == dt.time(0, 0, 0, 0)
    for bad in (-1, 86400 * 10**9):
        with pytest.raises(ValueMappingError, match="time"):
            from_debezium(parse_cql_type("time"), bad)


def test_timestamp_utc_and_before_1970() -> None:
    result = both("timestamp", -1, dt.datetime(1969, 12, 31, 23, 59, 59, 999000))
    assert result == dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
    assert isinstance(result, dt.datetime)
    assert result.tzinfo is not None
    far = both("timestamp", 9223372036854, dt.datetime(2262, 4, 11, 23, 47, 16, 854000))
    assert far == dt.datetime(2262, 4, 11, 23, 47, 16, 854000, tzinfo=UTC)
    t = parse_cql_type("timestamp")
    aware = dt.datetime(2024, 1, 1, 1, 0, 0, 123999, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert from_driver(t, aware) == dt.datetime(2024, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)
    with pytest.raises(ValueMappingError, match=r"1\.\.9999"):
        from_debezium(t, 2**62)


def test_duration_months_days_nanos() -> None:
    # live event: Duration(14 months, 3 days, 4000001234 ns) -> 36547204000001234 (a month is 30 days)
    result = both("duration", 36547204000001234, Duration(14, 3, 4000001234))
    assert result == dt.timedelta(days=423, seconds=4, microseconds=1)
    negative = both("duration", -2764800000000003, Duration(-1, -2, -3))
    assert negative == dt.timedelta(days=-32)
    assert both("duration", -1999, Duration(0, 0, -1999)) == dt.timedelta(microseconds=-1)
    assert to_json_compatible(parse_cql_type("duration"), result) == "P423DT4.000001S"
    assert to_json_compatible(parse_cql_type("duration"), negative) == "-P32DT0.000000S"


@given(st.integers(min_value=0, max_value=86400 * 10**9 - 1))
def test_time_paths_agree(nanos: int) -> None:
    t = parse_cql_type("time")
    assert from_debezium(t, nanos) == from_driver(t, Time(nanos))
