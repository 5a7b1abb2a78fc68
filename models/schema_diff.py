"""What changed between two versions of a Cassandra table's schema, and what the mirror does about it (pure).

- a column added: ``ADD COLUMN`` (online, under a short ``lock_timeout``);
- a column dropped: kept in the mirror and no longer written (policy ``keep``, the default), or dropped
  (policy ``drop``);
- a type changed (a UDT field added, a table recreated with another type): followed where PostgreSQL can
  follow losslessly (the same PostgreSQL type, e.g. a UDT's jsonb; or a widening such as ``integer`` to
  ``bigint``); otherwise, and for a changed primary key, the table is **quarantined**: its events wait in
  Kafka until an operator resolves it (``cdc schema resolve``);
- the table dropped: recorded; the mirror is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from models.cql_types import CqlType, pg_type
from models.table_schema import Column, TableSchema
from models.transforms import TransformPlan

ChangeKind = Literal[
    "table_added", "column_added", "column_dropped", "type_changed", "key_changed", "table_dropped"
]
DropPolicy = Literal["keep", "drop"]

WIDENINGS: frozenset[tuple[str, str]] = frozenset(
    {
        ("smallint", "integer"),
        ("smallint", "bigint"),
        ("smallint", "numeric"),
        ("integer", "bigint"),
        ("integer", "numeric"),
        ("bigint", "numeric"),
        ("real", "double precision"),
    }
)
"""(from, to) PostgreSQL column types that ``ALTER COLUMN ... TYPE`` converts without loss."""


def type_text(t: CqlType) -> str:
    """The CQL spelling of a type (for metadata and messages)."""
    if t.name == "udt":
        inner = ", ".join(f"{n} {type_text(f)}" for n, f in t.udt_fields)
        text = f"{t.udt_name}{{{inner}}}"
    elif t.name == "vector":
        text = f"vector<{type_text(t.params[0])}, {t.dimension}>"
    elif t.params:
        text = f"{t.name}<{', '.join(type_text(p) for p in t.params)}>"
    else:
        text = t.name
    return f"frozen<{text}>" if t.frozen and t.name != "tuple" else text


@dataclass(frozen=True)
class SchemaChange:
    kind: ChangeKind
    column: str | None = None
    before: str | None = None
    """CQL type before (column changes) or the old key (key changes)."""
    after: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"kind": self.kind, "column": self.column, "before": self.before, "after": self.after}


def describe(schema: TableSchema, table_id: str | None = None) -> dict[str, object]:
    """A JSON-able description of a table's schema (for ``_cdc_schema_metadata``); ``table_id`` is Cassandra's
    id of the table (a new one when it is dropped and created again)."""

    def cols(columns: tuple[Column, ...]) -> list[list[str]]:
        return [[c.name, type_text(c.type)] for c in columns]

    return {
        "keyspace": schema.keyspace,
        "table": schema.table,
        "partition_key": cols(schema.partition_key),
        "clustering": cols(schema.clustering),
        "descending": list(schema.descending),
        "columns": cols(schema.columns),
        "static": sorted(schema.static),
        "id": table_id,
    }


def recreated(previous: Described | None, current: Described) -> bool:
    """Was the table dropped and created again since ``previous`` (both ids known and different)?"""
    return (
        previous is not None
        and None not in (previous.get("id"), current.get("id"))
        and (previous.get("id") != current.get("id"))
    )


Described = dict[str, object]
"""What :func:`describe` returns (and ``_cdc_schema_metadata.cql_schema`` holds)."""


def _key(d: Described) -> str:
    return f"partition key {d['partition_key']}, clustering {d['clustering']} {d['descending']}"


def _columns_of(d: Described) -> dict[str, str]:
    columns = d["columns"]
    assert isinstance(columns, list)
    return {str(name): str(t) for name, t in columns}


def diff(old: Described | None, new: Described | None) -> list[SchemaChange]:
    """The changes from ``old`` to ``new`` (:func:`describe` of each; None: the table does not exist)."""
    if old is None:
        return [] if new is None else [SchemaChange("table_added")]
    if new is None:
        return [SchemaChange("table_dropped")]
    changes: list[SchemaChange] = []
    if _key(old) != _key(new):
        changes.append(SchemaChange("key_changed", before=_key(old), after=_key(new)))
    before, after = _columns_of(old), _columns_of(new)
    for name, t in after.items():
        if name not in before:
            changes.append(SchemaChange("column_added", name, after=t))
        elif before[name] != t:
            changes.append(SchemaChange("type_changed", name, before[name], t))
    changes.extend(
        SchemaChange("column_dropped", name, before=t) for name, t in before.items() if name not in after
    )
    return changes


@dataclass(frozen=True)
class ColumnAction:
    """One statement for the mirror: ``add``/``drop`` a column, ``retype`` it to ``pg_type``, or ``keep`` a
    column Cassandra no longer has (left in place, no longer written, marked by a comment)."""

    action: Literal["add", "drop", "retype", "keep"]
    column: str
    pg_type: str | None = None


@dataclass(frozen=True)
class MirrorPlan:
    actions: tuple[ColumnAction, ...]
    quarantine: str | None
    """Why the table cannot follow (nothing is applied then), or None."""


@dataclass(frozen=True)
class ActualMirror:
    """The mirror as PostgreSQL has it: regular columns (``_cdc_`` bookkeeping excluded) -> type, and the
    primary key's columns in order."""

    columns: dict[str, str]
    primary_key: tuple[str, ...]


def plan_mirror(
    actual: ActualMirror,
    wanted: TableSchema,
    drop_policy: DropPolicy = "keep",
    canonical: Callable[[str], str] = str,
    transforms: TransformPlan | None = None,
) -> MirrorPlan:
    """What makes the existing mirror ``actual`` hold ``wanted``'s columns, or why it cannot. ``canonical``
    spells a type the way ``actual`` does (PostgreSQL's ``format_type``: ``timestamptz`` is
    ``timestamp with time zone``). With ``transforms``, a dropped column is not wanted and a transformed one
    has its transformed type; a column the plan drops is dropped from an existing mirror, whatever the
    dropped-column policy."""
    key = tuple(c.name for c in (*wanted.partition_key, *wanted.clustering))
    if actual.primary_key != key:
        return MirrorPlan((), f"the primary key changed: {list(actual.primary_key)} -> {list(key)}")
    dropped = transforms.dropped if transforms is not None else frozenset()
    types = transforms.pg_types if transforms is not None else {}
    desired = {
        c.name: canonical(types.get(c.name) or pg_type(c.type))
        for c in (*wanted.partition_key, *wanted.clustering, *wanted.columns)
        if c.name not in dropped
    }
    actions: list[ColumnAction] = []
    for name, becomes in desired.items():
        was = actual.columns.get(name)
        if was is None:
            actions.append(ColumnAction("add", name, becomes))
        elif was != becomes:
            if (was, becomes) not in WIDENINGS:
                return MirrorPlan((), f"column {name} changed type: {was} -> {becomes}, not lossless")
            actions.append(ColumnAction("retype", name, becomes))
    for name in actual.columns:
        if name in dropped:  # a transform drops it: its values (maybe originals) must not stay
            actions.append(ColumnAction("drop", name))
        elif name not in desired:
            actions.append(ColumnAction("drop" if drop_policy == "drop" else "keep", name))
    return MirrorPlan(tuple(actions), None)


_UUID_EPOCH = 0x01B21DD213814000
"""100 ns intervals between the timeuuid epoch (1582-10-15) and the Unix epoch."""


def created_ms(table_id: str) -> int:
    """When a table was created: its id is a timeuuid (Unix milliseconds)."""
    import uuid

    return (uuid.UUID(table_id).time - _UUID_EPOCH) // 10_000
