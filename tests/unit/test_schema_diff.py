"""models.schema_diff: what changed between schema versions and what the mirror does about it (pure)."""

from __future__ import annotations

import time
import uuid

from app.testing import cql_table
from models.schema_diff import (
    ActualMirror,
    ColumnAction,
    SchemaChange,
    created_ms,
    describe,
    diff,
    plan_mirror,
    recreated,
)

BASE = cql_table("ks", "t", {"id": "int"}, columns={"v": "int", "name": "text"})


def mirror(**columns: str) -> ActualMirror:
    return ActualMirror({"id": "integer", **columns}, ("id",))


def test_added_dropped_and_retyped_columns_are_named() -> None:
    new = cql_table("ks", "t", {"id": "int"}, columns={"v": "bigint", "email": "text"})
    assert diff(describe(BASE), describe(new)) == [
        SchemaChange("type_changed", "v", "int", "bigint"),
        SchemaChange("column_added", "email", after="text"),
        SchemaChange("column_dropped", "name", before="text"),
    ]
    assert diff(None, describe(BASE)) == [SchemaChange("table_added")]
    assert diff(describe(BASE), None) == [SchemaChange("table_dropped")]
    assert diff(describe(BASE), describe(BASE)) == []


def test_a_changed_key_is_a_change() -> None:
    new = cql_table("ks", "t", {"id": "int"}, {"seq": "int"}, columns={"v": "int", "name": "text"})
    assert [c.kind for c in diff(describe(BASE), describe(new))] == ["key_changed"]


def test_the_mirror_adds_new_columns_and_keeps_dropped_ones_by_default() -> None:
    new = cql_table("ks", "t", {"id": "int"}, columns={"v": "int", "email": "text"})
    plan = plan_mirror(mirror(v="integer", name="text"), new)
    assert plan.quarantine is None
    assert plan.actions == (ColumnAction("add", "email", "text"), ColumnAction("keep", "name"))
    dropped = plan_mirror(mirror(v="integer", name="text"), new, drop_policy="drop")
    assert ColumnAction("drop", "name") in dropped.actions


def test_a_lossless_widening_is_followed_and_anything_else_quarantines() -> None:
    wider = cql_table("ks", "t", {"id": "int"}, columns={"v": "bigint", "name": "text"})
    assert plan_mirror(mirror(v="integer", name="text"), wider).actions == (
        ColumnAction("retype", "v", "bigint"),
    )
    narrower = cql_table("ks", "t", {"id": "int"}, columns={"v": "text", "name": "text"})
    plan = plan_mirror(mirror(v="integer", name="text"), narrower)
    assert plan.actions == ()
    assert plan.quarantine == "column v changed type: integer -> text, not lossless"


def test_a_udt_field_added_keeps_the_same_jsonb_column() -> None:
    before = cql_table("ks", "t", {"id": "int"}, columns={"info": "frozen<tuple<int, text>>"})
    after = cql_table("ks", "t", {"id": "int"}, columns={"info": "frozen<tuple<int, text, int>>"})
    assert [c.kind for c in diff(describe(before), describe(after))] == ["type_changed"]
    assert plan_mirror(mirror(info="jsonb"), after) == plan_mirror(mirror(info="jsonb"), before)
    assert plan_mirror(mirror(info="jsonb"), after).actions == ()


def test_a_changed_primary_key_quarantines() -> None:
    plan = plan_mirror(ActualMirror({"id": "integer", "v": "integer", "name": "text"}, ("id", "v")), BASE)
    assert plan.quarantine is not None
    assert "primary key" in plan.quarantine


def test_types_are_compared_in_postgres_spelling() -> None:
    table = cql_table("ks", "t", {"id": "int"}, columns={"at": "timestamp"})
    spelled = {"timestamptz": "timestamp with time zone", "integer": "integer"}
    actual = mirror(at="timestamp with time zone")
    assert plan_mirror(actual, table, canonical=lambda t: spelled.get(t, t)).actions == ()


def test_a_new_table_id_means_recreated_and_ids_are_timeuuids() -> None:
    one, two = str(uuid.uuid1()), str(uuid.uuid1())
    assert recreated(describe(BASE, one), describe(BASE, two))
    assert not recreated(describe(BASE, one), describe(BASE, one))
    assert not recreated(describe(BASE), describe(BASE, two))  # an old record without an id
    before = int(time.time() * 1000)
    made = created_ms(str(uuid.uuid1()))
    assert before - 1 <= made <= int(time.time() * 1000) + 1
