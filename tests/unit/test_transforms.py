"""models.transforms: rule parsing and its error texts, matching, compiling against a schema, each function."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest

from app.testing import cql_table
from models.errors import ValueMappingError
from models.mutations import CellWrite, RowWrite
from models.transforms import (
    Drop,
    Mask,
    MaskKind,
    TimeSource,
    Timestamp,
    TransformConfigError,
    Truncate,
    compile_plan,
    hash_value,
    mask_email,
    mask_function,
    mask_partial,
    parse_rules,
    rule_for,
    timestamp_function,
)

KEY = b"k" * 32
CUSTOMERS = cql_table(
    "shop",
    "customers",
    {"id": "uuid"},
    {"region": "text"},
    columns={
        "email": "text",
        "phone": "text",
        "ssn": "text",
        "notes": "text",
        "secret": "blob",
        "created": "timestamp",
        "seen_ms": "bigint",
        "updated_at": "timestamp",
        "age": "int",
        "tags": "set<text>",
    },
)
PARIS = "Europe/Paris"
UTC = dt.UTC


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


# -- parsing ------------------------------------------------------------------------------------------------
def test_every_rule_kind_parses_from_configuration() -> None:
    rules = parse_rules(
        {
            "shop.customers": {
                "email": {"mask": "email"},
                "phone": {"mask": "partial", "keep_last": 2},
                "notes": {"mask": "redact", "replacement": "[gone]"},
                "secret": {"drop": True},
                "created": {"timestamp": {"zone": PARIS, "as": "timestamp"}},
                "seen_ms": {"timestamp": {"from": "epoch_ms"}},
            },
            "shop.*": {"*_at": {"timestamp": {"truncate": "second"}}},
        }
    )
    table = rules["shop.customers"]
    assert table["email"] == Mask(MaskKind.EMAIL)
    assert table["phone"] == Mask(MaskKind.PARTIAL, keep_last=2)
    assert table["notes"] == Mask(MaskKind.REDACT, replacement="[gone]")
    assert table["secret"] == Drop()
    assert table["created"] == Timestamp(zone=PARIS, as_="timestamp")
    assert table["seen_ms"] == Timestamp(source=TimeSource.EPOCH_MS)
    assert rules["shop.*"]["*_at"] == Timestamp(truncate=Truncate.SECOND)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ({"shop": {}}, 'transforms."shop": a table is named keyspace.table (wildcards: ks.*)'),
        (
            {"shop.t": {"c": {"mask": "scramble"}}},
            "transforms.\"shop.t\".c.mask: 'scramble' is not one of "
            "'hash', 'redact', 'email', 'partial', 'null'",
        ),
        (
            {"shop.t": {"c": {"mask": "hash", "drop": True}}},
            "transforms.\"shop.t\".c: give exactly one of mask, drop, timestamp (got ['drop', 'mask'])",
        ),
        ({"shop.t": {"c": {"drop": False}}}, 'transforms."shop.t".c.drop: must be true'),
        (
            {"shop.t": {"c": {"mask": "hash", "keep_last": 2}}},
            "transforms.\"shop.t\".c: unknown option 'keep_last' (allowed: mask)",
        ),
        (
            {"shop.t": {"c": {"mask": "partial", "keep_last": -1}}},
            'transforms."shop.t".c.keep_last: expected a whole number >= 0, got -1',
        ),
        (
            {"shop.t": {"c": {"timestamp": {"zone": "Mars/Olympus"}}}},
            "transforms.\"shop.t\".c.timestamp.zone: unknown time zone 'Mars/Olympus'",
        ),
        (
            {"shop.t": {"c": {"timestamp": {"as": "date"}}}},
            "transforms.\"shop.t\".c.timestamp.as: 'date' is not one of 'timestamptz', 'timestamp'",
        ),
        (
            {"shop.t": {"c": {"timestamp": {"truncate": "week"}}}},
            "transforms.\"shop.t\".c.timestamp.truncate: 'week' is not one of 'millisecond', 'second', 'minute', "
            "'hour', 'day'",
        ),
        (
            {"shop.t": {"c": {"timestamp": {"from": "epoch_ns"}}}},
            "transforms.\"shop.t\".c.timestamp.from: 'epoch_ns' is not one of 'native', 'epoch_s', 'epoch_ms', "
            "'epoch_us', 'iso'",
        ),
        (
            {"shop.t": {"*_at": "hash"}},
            'transforms."shop.t"."*_at": expected a rule such as { mask = "hash" }',
        ),
    ],
)
def test_a_malformed_rule_is_rejected_naming_its_key(raw: dict[str, Any], error: str) -> None:
    with pytest.raises(TransformConfigError) as caught:
        parse_rules(raw)
    assert str(caught.value) == error


# -- matching -----------------------------------------------------------------------------------------------
def test_the_most_specific_rule_wins() -> None:
    rules = parse_rules(
        {
            "shop.*": {"*": {"mask": "redact"}, "email": {"mask": "hash"}},
            "shop.customers": {"*_at": {"mask": "null"}, "email": {"mask": "email"}},
            "*.*": {"updated_at": {"drop": True}},
        }
    )
    assert rule_for(rules, "shop.customers", "email") == (
        'transforms."shop.customers".email',
        Mask(MaskKind.EMAIL),
    )
    assert rule_for(rules, "shop.orders", "email") == ('transforms."shop.*".email', Mask(MaskKind.HASH))
    assert rule_for(rules, "shop.customers", "updated_at") == (
        'transforms."shop.customers"."*_at"',
        Mask(MaskKind.NULL),
    )  # an exact table beats a wildcard one, whatever the column pattern
    assert rule_for(rules, "shop.orders", "notes") == ('transforms."shop.*"."*"', Mask(MaskKind.REDACT))
    assert rule_for(rules, "other.t", "notes") is None


# -- compiling ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rules", "error"),
    [
        (
            {"shop.customers": {"region": {"mask": "redact"}}},
            'transforms."shop.customers".region: region is a primary-key column: key columns are mirrored '
            "unchanged (the sink reads rows back, deletes ranges and reconciles by them)",
        ),
        (
            {"shop.customers": {"id": {"mask": "hash"}}},
            'transforms."shop.customers".id: id is a primary-key column: key columns are mirrored '
            "unchanged (the sink reads rows back, deletes ranges and reconciles by them)",
        ),
        (
            {"shop.customers": {"id": {"drop": True}}},
            'transforms."shop.customers".id: id is a primary-key column: key columns are mirrored '
            "unchanged (the sink reads rows back, deletes ranges and reconciles by them)",
        ),
        (
            {"shop.customers": {"age": {"mask": "email"}}},
            'transforms."shop.customers".age: mask = "email" needs a text or ascii column; age is int',
        ),
        (
            {"shop.customers": {"tags": {"mask": "hash"}}},
            'transforms."shop.customers".tags: mask = "hash" needs a scalar column; tags is set',
        ),
        (
            {"shop.customers": {"email": {"timestamp": {"from": "epoch_ms"}}}},
            'transforms."shop.customers".email: timestamp from = "epoch_ms" needs a '
            "bigint/int/smallint/tinyint/varint column; email is text",
        ),
        (
            {"shop.customers": {"seen_ms": {"timestamp": {}}}},
            'transforms."shop.customers".seen_ms: timestamp from = "native" needs a timestamp column; seen_ms is '
            "bigint",
        ),
    ],
)
def test_a_rule_that_does_not_fit_the_table_is_rejected_naming_its_key(
    rules: dict[str, Any], error: str
) -> None:
    with pytest.raises(TransformConfigError) as caught:
        compile_plan(CUSTOMERS, parse_rules(rules), KEY)
    assert str(caught.value) == error


def test_hashing_needs_a_key() -> None:
    with pytest.raises(TransformConfigError) as caught:
        compile_plan(CUSTOMERS, parse_rules({"shop.customers": {"ssn": {"mask": "hash"}}}))
    assert (
        str(caught.value)
        == 'transforms."shop.customers".ssn: mask = "hash" needs a hash key (transform_hash_key)'
    )


def test_a_plan_applies_each_rule_drops_columns_and_names_the_new_types() -> None:
    rules = parse_rules(
        {
            "shop.customers": {
                "ssn": {"mask": "hash"},
                "email": {"mask": "email"},
                "phone": {"mask": "partial"},
                "secret": {"drop": True},
                "seen_ms": {"timestamp": {"from": "epoch_ms"}},
            },
        }
    )
    plan = compile_plan(CUSTOMERS, rules, KEY)
    row = plan.row(
        {"ssn": "7", "email": "a@b.c", "phone": "0612345678", "secret": b"x", "seen_ms": 1_000, "age": 3}
    )
    assert row == {
        "ssn": hash_value(KEY, "7"),
        "email": "***@b.c",
        "phone": "******5678",
        "seen_ms": utc(1970, 1, 1, 0, 0, 1),
        "age": 3,
    }
    assert plan.dropped == {"secret"}
    assert {c.name: c.pg_type for c in plan.columns} == {
        "ssn": "text",
        "email": "text",
        "phone": "text",
        "seen_ms": "timestamptz",
    }
    assert compile_plan(CUSTOMERS, {}, KEY).empty


def test_the_fingerprint_follows_the_rules_and_the_key() -> None:
    rules = parse_rules({"shop.customers": {"ssn": {"mask": "hash"}}})
    same = compile_plan(CUSTOMERS, rules, KEY).fingerprint
    assert compile_plan(CUSTOMERS, rules, KEY).fingerprint == same
    assert compile_plan(CUSTOMERS, rules, b"other key").fingerprint != same
    changed = parse_rules({"shop.customers": {"ssn": {"mask": "redact"}}})
    assert compile_plan(CUSTOMERS, changed, KEY).fingerprint != same


# -- the functions ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("alice@example.org", "***@example.org"),
        ("jürgen.müller@bücher.de", "***@bücher.de"),
        ("名前@例え.jp", "***@例え.jp"),
        ("a@b@c.org", "***@c.org"),
        ("no-at-sign", "***"),
        ("@example.org", "***"),
    ],
)
def test_email_masking_keeps_the_domain(value: str, masked: str) -> None:
    assert mask_email(value) == masked


def test_partial_masking_keeps_the_last_characters_and_hides_short_values_whole() -> None:
    assert mask_partial("+33612345678", 4) == "********5678"
    assert mask_partial("1234", 4) == "****"
    assert mask_partial("été", 1) == "**é"
    assert mask_partial("secret", 0) == "******"


def test_hashing_is_keyed_and_deterministic() -> None:
    assert hash_value(KEY, "123-45-6789") == hash_value(KEY, "123-45-6789")
    assert hash_value(KEY, "123-45-6789") != hash_value(b"another key", "123-45-6789")
    assert hash_value(KEY, "123-45-6789") != hash_value(KEY, "123-45-6780")
    assert len(hash_value(KEY, b"\x00")) == 64
    assert "6789" not in hash_value(KEY, "123-45-6789")


@pytest.mark.parametrize("kind", list(MaskKind))
def test_every_mask_keeps_null_as_null(kind: MaskKind) -> None:
    assert mask_function(Mask(kind), KEY)(None) is None


def test_redact_and_null_masks() -> None:
    assert mask_function(Mask(MaskKind.REDACT))("anything") == "***"
    assert mask_function(Mask(MaskKind.REDACT, replacement="[x]"))("anything") == "[x]"
    assert mask_function(Mask(MaskKind.NULL))("anything") is None


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        (Timestamp(source=TimeSource.EPOCH_S), 1_700_000_000, utc(2023, 11, 14, 22, 13, 20)),
        (Timestamp(source=TimeSource.EPOCH_MS), 1_700_000_000_123, utc(2023, 11, 14, 22, 13, 20, 123_000)),
        (
            Timestamp(source=TimeSource.EPOCH_US),
            1_700_000_000_123_456,
            utc(2023, 11, 14, 22, 13, 20, 123_456),
        ),
        (Timestamp(source=TimeSource.ISO), "2023-11-14T23:13:20+01:00", utc(2023, 11, 14, 22, 13, 20)),
        (Timestamp(source=TimeSource.ISO), "2023-11-14T22:13:20Z", utc(2023, 11, 14, 22, 13, 20)),
        (Timestamp(source=TimeSource.ISO), "2023-11-14T22:13:20", utc(2023, 11, 14, 22, 13, 20)),
        (
            Timestamp(truncate=Truncate.SECOND),
            utc(2023, 11, 14, 22, 13, 20, 999_999),
            utc(2023, 11, 14, 22, 13, 20),
        ),
        (
            Timestamp(truncate=Truncate.MILLISECOND),
            utc(2023, 1, 1, 0, 0, 0, 123_456),
            utc(2023, 1, 1, 0, 0, 0, 123_000),
        ),
        (Timestamp(zone=PARIS, as_="timestamp"), utc(2023, 7, 1, 12), dt.datetime(2023, 7, 1, 14)),
        (Timestamp(zone=PARIS, as_="timestamp"), utc(2023, 1, 1, 12), dt.datetime(2023, 1, 1, 13)),
    ],
)
def test_timestamps_are_normalised(rule: Timestamp, value: Any, expected: dt.datetime) -> None:
    assert timestamp_function(rule)(value) == expected
    assert timestamp_function(rule)(None) is None


def test_a_day_cut_in_a_zone_across_the_spring_dst_change_takes_that_midnights_offset() -> None:
    """Paris moves from UTC+1 to UTC+2 at 01:00 UTC on 2026-03-29: 12:00 UTC is 14:00 local, and that day's
    midnight was still at UTC+1."""
    day = timestamp_function(Timestamp(zone=PARIS, truncate=Truncate.DAY))
    assert day(utc(2026, 3, 29, 12)) == utc(2026, 3, 28, 23)
    assert day(utc(2026, 3, 30, 12)) == utc(2026, 3, 29, 22)
    wall = timestamp_function(Timestamp(zone=PARIS, truncate=Truncate.DAY, as_="timestamp"))
    assert wall(utc(2026, 3, 29, 12)) == dt.datetime(2026, 3, 29)


def test_an_hour_cut_inside_the_repeated_autumn_hour_keeps_which_of_the_two_it_was() -> None:
    """Paris repeats 02:00-03:00 on 2026-10-25: 00:30 UTC is the first 02:30 (UTC+2), 01:30 UTC the second
    (UTC+1); each cuts to its own 02:00."""
    hour = timestamp_function(Timestamp(zone=PARIS, truncate=Truncate.HOUR))
    assert hour(utc(2026, 10, 25, 0, 30)) == utc(2026, 10, 25, 0)
    assert hour(utc(2026, 10, 25, 1, 30)) == utc(2026, 10, 25, 1)


# -- each rule against each CQL type ---------------------------------------------------------------------------
SAMPLES: dict[str, Any] = {
    "text": "jürgen@bücher.de",
    "ascii": "a@b.c",
    "int": 7,
    "bigint": 1_700_000_000_123,
    "smallint": 3,
    "tinyint": 1,
    "varint": 10**30,
    "decimal": Decimal("1.10"),
    "double": 0.1,
    "float": 1.5,
    "boolean": True,
    "uuid": uuid.UUID(int=1),
    "timeuuid": uuid.UUID("a4a70900-24e1-11df-8924-001ff3591711"),
    "inet": "10.0.0.1",
    "blob": b"\x00\x01",
    "date": dt.date(2026, 3, 29),
    "time": dt.time(1, 2, 3),
    "timestamp": utc(2026, 3, 29, 0, 30),
    "duration": dt.timedelta(seconds=3),
    "list<int>": [1, 2],
    "set<text>": ["a"],
    "map<text, int>": {"a": 1},
    "frozen<tuple<int, text>>": [1, "a"],
}
TYPED = cql_table("shop", "typed", {"id": "int"}, columns={f"c{i}": t for i, t in enumerate(SAMPLES)})
ACCEPTS = {
    "hash": {
        t
        for t in SAMPLES
        if t not in {"duration", "list<int>", "set<text>", "map<text, int>", "frozen<tuple<int, text>>"}
    },
    "email": {"text", "ascii"},
    "partial": {"text", "ascii"},
    "redact": {"text", "ascii"},
    "null": set(SAMPLES),
    "native": {"timestamp"},
    "epoch_ms": {"int", "bigint", "smallint", "tinyint", "varint"},
    "iso": {"text", "ascii"},
}


def rule_of(kind: str) -> dict[str, Any]:
    if kind in ("native", "epoch_ms", "iso"):
        return {"timestamp": {"from": kind}}
    return {"mask": kind}


def fitting(kind: str) -> dict[str, Any]:
    """The CQL types a rule of ``kind`` compiles for (-> its column plan); the others' errors name the key."""
    found: dict[str, Any] = {}
    for i, cql in enumerate(SAMPLES):
        try:
            plan = compile_plan(TYPED, parse_rules({"shop.typed": {f"c{i}": rule_of(kind)}}), KEY)
        except TransformConfigError as error:
            if not str(error).startswith(f'transforms."shop.typed".c{i}: '):
                raise
            continue
        (found[cql],) = plan.columns
    return found


def mapped(kind: str, cql: str, out: Any) -> bool:
    """Is ``out`` what a rule of ``kind`` makes of the sample value of ``cql``?"""
    if kind == "hash":
        return isinstance(out, str) and out == hash_value(KEY, SAMPLES[cql]) and len(out) == 64
    if kind == "null":
        return out is None
    if kind in ("native", "epoch_ms", "iso"):
        return isinstance(out, dt.datetime) and out.tzinfo is UTC
    return isinstance(out, str) and out != SAMPLES[cql]


@pytest.mark.parametrize("kind", sorted(ACCEPTS))
def test_each_rule_fits_exactly_the_cql_types_it_accepts_and_maps_their_values(kind: str) -> None:
    columns = fitting(kind)
    for cql, column in columns.items():
        value = {"iso": "2026-03-29T00:30:00Z", "epoch_ms": 1_700_000_000_123}.get(kind, SAMPLES[cql])
        assert mapped(kind, cql, column.apply(value)), (cql, column.apply(value))
        assert column.apply(None) is None
    accepted = set(columns)
    assert accepted == ACCEPTS[kind]


@pytest.mark.parametrize(
    ("rule", "value"),
    [({"timestamp": {"from": "epoch_ms"}}, 10**30), ({"timestamp": {"from": "iso"}}, "29/03/2026")],
)
def test_a_value_a_rule_cannot_transform_is_a_typed_error_without_the_value(
    rule: dict[str, Any], value: Any
) -> None:
    column = "seen_ms" if isinstance(value, int) else "email"
    plan = compile_plan(CUSTOMERS, parse_rules({"shop.customers": {column: rule}}), KEY)
    with pytest.raises(ValueMappingError) as caught:
        plan.mutation(RowWrite((uuid.UUID(int=1), "eu"), 1, {column: CellWrite(value)}))
    assert str(caught.value).startswith(
        f'transforms."shop.customers".{column}: the value cannot be transformed ('
    )
    assert str(value) not in str(caught.value)
