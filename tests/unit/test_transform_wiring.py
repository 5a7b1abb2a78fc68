"""Transforms in the sink (with in-memory fakes): decoded events carry transformed values, dropped and
null-masked columns keep their cells as UNKNOWN, equal-timestamp ties between transformed values are read
back, start-up checks against the schema, the mirror's columns, the settings' checks, dead-letter sealing."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from app.dlq.sealing import PREFIX, Sealer, SealError, opened
from app.settings import ConfigError, load_settings
from app.sink.applier import Applier
from app.sink.registry import TableEntry
from app.testing import cql_table, debezium_cell, debezium_source
from models.batch import Record
from models.convergence import UNKNOWN, Cell, ReadBack, RowState
from models.merge_plan import needs, plan
from models.mirror_spec import spec_for
from models.mutations import CellWrite, RowDelete, RowWrite
from models.schema_diff import ActualMirror, ColumnAction, plan_mirror
from models.transforms import TransformConfigError, check_rules, compile_plan, hash_value, parse_rules
from tests.unit.fakes import MemoryLedger, MemoryPool, MemoryReader, MemoryRegistry, MemoryStore

KEY = b"k" * 32
TOPIC = "cdc.shop.people"
TS = 1_700_000_000_000_000
PEOPLE = cql_table(
    "shop",
    "people",
    {"id": "int"},
    columns={"email": "text", "ssn": "text", "secret": "text", "note": "text", "age": "int"},
)
RULES = parse_rules(
    {
        "shop.people": {
            "email": {"mask": "email"},
            "ssn": {"mask": "hash"},
            "secret": {"drop": True},
            "note": {"mask": "null"},
        }
    }
)
PLAN = compile_plan(PEOPLE, RULES, KEY)


def event(offset: int, key: int, ts: int, **values: Any) -> Record:
    after = {"id": debezium_cell(key), **{name: debezium_cell(v) for name, v in values.items()}}
    body = {"ts_ms": ts // 1000, "op": "u", "source": debezium_source("shop", "people", ts), "after": after}
    return Record(TOPIC, 0, offset, orjson.dumps({"id": key}), orjson.dumps(body))


class World:
    def __init__(self, sealer: Sealer | None = None) -> None:
        self.store = MemoryStore()
        self.ledger = MemoryLedger()
        self.reader = MemoryReader()
        entry = TableEntry(PEOPLE, self.store, PLAN)
        self.applier = Applier(
            MemoryPool([self.store, self.ledger]),
            MemoryRegistry({("shop", "people"): entry}),
            self.reader,
            group_id="g",
            ledger=self.ledger,
            sealer=sealer,
        )
        self.applier.claim([(TOPIC, 0)])

    def cells(self, key: int) -> dict[str, Cell]:
        return dict(self.store.rows[(key,)].cells)


# -- the plan on mutations ------------------------------------------------------------------------------------
def test_a_mutation_gets_transformed_values_and_keeps_its_key_timestamps_and_tombstones() -> None:
    write = RowWrite(
        (7,),
        TS,
        {
            "email": CellWrite("alice@example.org", 99),
            "ssn": CellWrite("123-45-6789"),
            "secret": CellWrite("s3cr3t"),
            "note": CellWrite("call me"),
            "age": CellWrite(41),
        },
    )
    out = PLAN.mutation(write)
    assert isinstance(out, RowWrite)
    assert (out.key, out.ts) == ((7,), TS)
    assert out.cells == {
        "email": CellWrite("***@example.org", 99),
        "ssn": CellWrite(hash_value(KEY, "123-45-6789")),
        "secret": CellWrite(UNKNOWN),
        "note": CellWrite(UNKNOWN),
        "age": CellWrite(41),
    }
    tombstones = RowWrite((7,), TS, {"email": CellWrite(None), "secret": CellWrite(None)})
    assert PLAN.mutation(tombstones) == tombstones
    assert PLAN.mutation(RowDelete((7,), TS)) == RowDelete((7,), TS)
    assert PLAN.opaque == {"email", "ssn"}


def test_a_row_kept_alive_only_by_a_dropped_column_is_visible_with_nulls() -> None:
    write = PLAN.mutation(RowWrite((1,), TS, {"secret": CellWrite("only this")}))
    row = plan(PEOPLE, [write], {}, {}).rows[(1,)]
    assert row.is_visible(TS)
    assert row.visible_values(["email", "note"], TS) == {"email": None, "note": None}
    assert row.cells["secret"] == Cell(TS, UNKNOWN)


# -- ties -----------------------------------------------------------------------------------------------------
def test_an_equal_timestamp_tie_between_different_transformed_values_is_recorded() -> None:
    first = PLAN.mutation(RowWrite((1,), TS, {"email": CellWrite("zed@a.org"), "age": CellWrite(1)}))
    second = PLAN.mutation(RowWrite((1,), TS, {"email": CellWrite("amy@b.org"), "age": CellWrite(2)}))
    result = plan(PEOPLE, [first, second], {}, {}, PLAN.opaque)
    assert result.ties == {(1,): {"email"}}  # age is not transformed: Cassandra's rule decides it (2 > 1)
    assert result.rows[(1,)].cells["age"].value == 2
    same = PLAN.mutation(RowWrite((1,), TS, {"email": CellWrite("bob@a.org")}))
    assert plan(PEOPLE, [first, same], {}, {}, PLAN.opaque).ties == {}  # both ***@a.org: nothing to decide


def test_a_tie_is_settled_by_the_value_cassandra_holds() -> None:
    w = World()
    w.reader.values[(1,)] = {"email": ReadBack("zed@a.org", TS)}
    w.applier.apply([event(0, 1, TS, email="amy@b.org"), event(1, 1, TS, email="zed@a.org")])
    assert w.cells(1)["email"] == Cell(TS, "***@a.org")
    assert w.reader.calls == [[(1,)]]
    w.reader.values[(2,)] = {"email": ReadBack("amy@b.org", TS)}
    w.applier.apply([event(2, 2, TS, email="zed@a.org")])
    w.applier.apply([event(3, 2, TS, email="amy@b.org")])  # the tie against the stored value
    assert w.cells(2)["email"] == Cell(TS, "***@b.org")


def test_without_a_tie_nothing_is_read_back() -> None:
    w = World()
    w.applier.apply([event(0, 1, TS, email="amy@b.org"), event(1, 1, TS + 1, email="zed@a.org")])
    assert w.cells(1)["email"] == Cell(TS + 1, "***@a.org")
    assert w.reader.calls == []


# -- start-up checks ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (
            {"shop.nobody": {"email": {"mask": "email"}}},
            'transforms."shop.nobody": no such table in Cassandra',
        ),
        (
            {"shop.people": {"mail": {"mask": "email"}}},
            'transforms."shop.people".mail: no such column in shop.people',
        ),
        (
            {"shop.*": {"mail": {"mask": "email"}}},
            'transforms."shop.*".mail: no such column in any table matching shop.*',
        ),
        (
            {"shop.*": {"*": {"mask": "email"}}},
            'transforms."shop.*"."*": mask = "email" needs a text or ascii column; age is int',
        ),
    ],
)
def test_rules_are_checked_against_the_tables_that_exist(raw: dict[str, Any], error: str) -> None:
    schemas = {"shop.people": PEOPLE, "shop.orders": cql_table("shop", "orders", {"id": "int"})}
    with pytest.raises(TransformConfigError) as caught:
        check_rules(parse_rules(raw), schemas, KEY)
    assert str(caught.value) == error


def test_wildcards_that_match_nothing_are_allowed_and_plans_come_back_per_table() -> None:
    schemas = {"shop.people": PEOPLE}
    plans = check_rules({**parse_rules({"other.*": {"x": {"drop": True}}}), **RULES}, schemas, KEY)
    assert list(plans) == ["shop.people"]
    assert plans["shop.people"].fingerprint == PLAN.fingerprint


# -- the mirror -----------------------------------------------------------------------------------------------
def test_the_mirror_leaves_dropped_columns_out_and_types_masked_ones_as_text() -> None:
    stamps = cql_table("shop", "s", {"id": "int"}, columns={"seen_ms": "bigint", "at": "timestamp"})
    stamp_plan = compile_plan(
        stamps,
        parse_rules(
            {
                "shop.s": {
                    "seen_ms": {"timestamp": {"from": "epoch_ms"}},
                    "at": {"timestamp": {"as": "timestamp"}},
                }
            }
        ),
        KEY,
    )
    assert [(c.name, c.pg_type) for c in spec_for(stamps, None, stamp_plan).columns] == [
        ("seen_ms", "timestamptz"),
        ("at", "timestamp"),
    ]
    spec = spec_for(PEOPLE, None, PLAN)
    assert [(c.name, c.pg_type) for c in spec.columns] == [
        ("email", "text"),
        ("ssn", "text"),
        ("note", "text"),
        ("age", "integer"),
    ]
    actual = ActualMirror(
        {"id": "integer", "email": "text", "ssn": "text", "note": "text", "age": "integer"}, ("id",)
    )
    assert plan_mirror(actual, PEOPLE, transforms=PLAN).actions == ()  # the secret column is not wanted
    before = ActualMirror({**actual.columns, "secret": "text"}, ("id",))  # written before the drop rule
    assert plan_mirror(before, PEOPLE, "keep", transforms=PLAN).actions == (ColumnAction("drop", "secret"),)
    hashed_age = compile_plan(PEOPLE, parse_rules({"shop.people": {"age": {"mask": "hash"}}}), KEY)
    retyped = plan_mirror(actual, PEOPLE, transforms=hashed_age)  # an int column under a new hash rule
    assert retyped.quarantine == "column age changed type: integer -> text, not lossless"


# -- settings -------------------------------------------------------------------------------------------------
def test_transforms_need_a_hash_key_and_a_bad_rule_names_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CDC_CONFIG_FILE", raising=False)
    with pytest.raises(ConfigError) as caught:
        load_settings(transforms={"shop.people": {"ssn": {"mask": "hash"}}})
    assert str(caught.value) == (
        'invalid configuration: transforms."shop.people".ssn: transforms need transform_hash_key '
        '(env CDC_TRANSFORM_HASH_KEY): it keys mask = "hash" and seals the original values kept in dead letters'
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(transforms={"shop.people": {"ssn": {"mask": "sha1"}}}, transform_hash_key="x" * 16)
    assert str(caught.value) == (
        "invalid configuration transforms (env CDC_TRANSFORMS): Value error, "
        "transforms.\"shop.people\".ssn.mask: 'sha1' is not one of 'hash', 'redact', 'email', 'partial', 'null'"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(transform_hash_key="short")
    assert "transform_hash_key" in str(caught.value)
    assert "at least 16 characters" in str(caught.value)
    ok = load_settings(transforms={"shop.people": {"ssn": {"mask": "hash"}}}, transform_hash_key="y" * 16)
    assert ok.hash_key == b"y" * 16
    assert "ssn" in ok.transform_rules["shop.people"]


# -- dead letters ---------------------------------------------------------------------------------------------
def test_a_dead_letter_is_sealed_and_opens_only_with_its_key() -> None:
    sealer = Sealer(KEY)
    w = World(sealer)
    bad = event(0, 1, TS, age="not a number")  # an int column given text: dead-lettered
    w.applier.apply([bad])
    (letter,) = w.ledger.dead_letters
    assert letter.record.value is not None
    assert letter.record.value.startswith(PREFIX)
    assert b"not a number" not in letter.record.value
    assert "not a number" not in letter.message
    assert sealer.open(letter.record.value) == bad.value
    assert "not a number" in (sealer.open_text(letter.message) or "")
    row = opened({"value": letter.record.value, "error_message": letter.message, "last_error": None}, sealer)
    assert row["value"] == bad.value
    with pytest.raises(SealError):
        Sealer(b"another key, not the one").open(letter.record.value)
    assert sealer.open(b"plain") == b"plain"  # what was never sealed opens as it is


def test_a_sealed_dead_letter_replays() -> None:
    sealer = Sealer(KEY)
    w = World(sealer)
    good = event(0, 5, TS, email="amy@b.org")
    sealed = Record(good.topic, good.partition, good.offset, good.key, sealer.seal(good.value))
    with w.applier.pool.connection() as conn:
        dead = w.applier.replay(conn, [sealed])
    assert dead == [], [sealer.open_text(d.message) for d in dead]
    assert w.cells(5)["email"] == Cell(TS, "***@b.org")


def test_the_fingerprint_of_a_table_without_rules_is_empty() -> None:
    assert compile_plan(PEOPLE, parse_rules({"shop.other": {"x": {"drop": True}}}), KEY).fingerprint == ""
    assert needs(PEOPLE, [RowDelete((1,), TS)]).row_keys == {(1,)}
    assert RowState().visible_values(["email"], TS) == {"email": None}


def test_a_sealed_dead_letter_is_not_replayed_without_the_key() -> None:
    good = event(0, 5, TS, email="amy@b.example")
    sealed = Record(good.topic, good.partition, good.offset, good.key, Sealer(KEY).seal(good.value))
    w = World()
    with w.applier.pool.connection() as conn, pytest.raises(SealError, match="needs transform_hash_key"):
        w.applier.replay(conn, [sealed])
    assert w.store.rows == {}
