"""SMT-style column transforms: masking and timestamp normalization, as rules and compiled plans (pure).

Rules are configured per table and column, like Kafka Connect's MaskField / ReplaceField / TimestampConverter::

    [transforms."shop.customers"]
    email   = { mask = "email" }                   # alice@example.org -> ***@example.org
    phone   = { mask = "partial", keep_last = 4 }  # +33612345678 -> ********5678
    ssn     = { mask = "hash" }                    # HMAC-SHA256 hex, keyed, deterministic
    notes   = { mask = "redact" }                  # a fixed replacement
    secret  = { drop = true }                      # not mirrored at all
    created = { timestamp = { zone = "Europe/Paris", as = "timestamp" } }
    seen_ms = { timestamp = { from = "epoch_ms" } }

Table and column names may hold ``*`` wildcards (``"shop.*"``, ``"*_at"``); the most specific match wins
(an exact table over a wildcard one, then an exact column over a wildcard one, then the longer pattern).
:func:`parse_rules` checks the rules' shape and :func:`compile_plan` checks them against one table's
schema; both raise :class:`TransformConfigError` naming the offending key. A compiled
:class:`TransformPlan` is a tuple of per-column functions on the values *after* the type mapping
(:mod:`models.cql_types`): the hot path only calls them.

Key columns are mirrored as they are: a rule on a primary-key column is rejected (the sink addresses rows by
their key: Cassandra reads them back by it, range deletions compare it, reconciliation scans by its token).

How the sink applies a plan: :meth:`TransformPlan.mutation` transforms each cell value of a decoded mutation,
so the merge, the mirror and its bookkeeping never hold an original value. A dropped column, and one masked to
null, keep their cells' write times (a row that only they keep alive is still a row) with the value
:data:`~models.convergence.UNKNOWN`, which the mirror shows as null. Last-write-wins compares write times,
never values; an equal-timestamp tie between two different transformed values (:attr:`TransformPlan.opaque`
columns) cannot be decided from them, so the sink reads that cell back from Cassandra, whose current value is
its own choice (:mod:`models.merge_plan`'s ``ties``).
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cached_property
from typing import Any, Literal, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from models.convergence import UNKNOWN
from models.cql_types.value_errors import CONVERSION_ERRORS
from models.errors import ValueMappingError
from models.mutations import CellWrite, Mutation, RowWrite
from models.table_schema import Column, TableSchema

TEXT_TYPES = frozenset({"text", "ascii"})
"""CQL types (``varchar`` is parsed as ``text``) a text mask fits."""
INTEGER_TYPES = frozenset({"bigint", "int", "smallint", "tinyint", "varint"})
HASHABLE = frozenset(
    {
        *TEXT_TYPES,
        *INTEGER_TYPES,
        "uuid",
        "timeuuid",
        "inet",
        "blob",
        "date",
        "timestamp",
        "boolean",
        "decimal",
        "double",
        "float",
        "time",
    }
)
REDACTED = "***"
"""The default replacement of ``mask = "redact"``."""


class TransformConfigError(ValueError):
    """A transform rule that cannot apply; the message names its key (``transforms."ks.t".col``)."""


class MaskKind(StrEnum):
    HASH = "hash"
    REDACT = "redact"
    EMAIL = "email"
    PARTIAL = "partial"
    NULL = "null"


class Truncate(StrEnum):
    MILLISECOND = "millisecond"
    SECOND = "second"
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"


class TimeSource(StrEnum):
    NATIVE = "native"
    """A CQL ``timestamp`` column."""
    EPOCH_S = "epoch_s"
    EPOCH_MS = "epoch_ms"
    EPOCH_US = "epoch_us"
    ISO = "iso"
    """ISO-8601 text; without an offset it is read as UTC."""


@dataclass(frozen=True)
class Mask:
    kind: MaskKind
    keep_last: int = 4
    """``partial``: how many trailing characters stay visible."""
    replacement: str = REDACTED
    """``redact``: the fixed text every value becomes."""


@dataclass(frozen=True)
class Drop:
    """The column is not mirrored."""


@dataclass(frozen=True)
class Timestamp:
    source: TimeSource = TimeSource.NATIVE
    zone: str | None = None
    """With ``as_ = "timestamp"``: the zone whose wall-clock time is stored; with truncation: the zone the
    units (hour, day) are cut in. Default UTC."""
    as_: Literal["timestamptz", "timestamp"] = "timestamptz"
    truncate: Truncate | None = None


Rule: TypeAlias = Mask | Drop | Timestamp
Rules: TypeAlias = Mapping[str, Mapping[str, Rule]]
"""Table pattern (``ks.t``, ``ks.*``) -> column pattern -> rule."""
Transform: TypeAlias = Callable[[Any], Any]


def _key(table: str, column: str | None = None) -> str:
    """``transforms."ks.t"`` or ``transforms."ks.t".col`` (a column name that is not a plain word quoted)."""
    name = f'transforms."{table}"'
    if column is None:
        return name
    return f"{name}.{column}" if column.isidentifier() else f'{name}."{column}"'


# -- parsing --------------------------------------------------------------------------------------------------
def parse_rules(raw: Mapping[str, Any]) -> dict[str, dict[str, Rule]]:
    """``{table pattern: {column pattern: rule}}`` from configuration (TOML or JSON), shape-checked."""
    rules: dict[str, dict[str, Rule]] = {}
    for table, columns in raw.items():
        if table.count(".") != 1 or not all(table.split(".")):
            raise TransformConfigError(f"{_key(table)}: a table is named keyspace.table (wildcards: ks.*)")
        if not isinstance(columns, Mapping):
            raise TransformConfigError(f"{_key(table)}: expected a table of column rules")
        rules[table] = {column: parse_rule(_key(table, column), spec) for column, spec in columns.items()}
    return rules


def parse_rule(key: str, spec: Any) -> Rule:
    """One column's rule: exactly one of ``mask``, ``drop``, ``timestamp``."""
    if not isinstance(spec, Mapping):
        raise TransformConfigError(f'{key}: expected a rule such as {{ mask = "hash" }}')
    kinds = [k for k in ("mask", "drop", "timestamp") if k in spec]
    if len(kinds) != 1:
        raise TransformConfigError(f"{key}: give exactly one of mask, drop, timestamp (got {sorted(spec)})")
    if kinds[0] == "drop":
        _only(key, spec, {"drop"})
        if spec["drop"] is not True:
            raise TransformConfigError(f"{key}.drop: must be true")
        return Drop()
    if kinds[0] == "mask":
        return _mask(key, spec)
    _only(key, spec, {"timestamp"})
    return _timestamp(f"{key}.timestamp", spec["timestamp"])


def _only(key: str, spec: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise TransformConfigError(
            f"{key}: unknown option {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})"
        )


def _choice(key: str, value: Any, kind: type[StrEnum]) -> Any:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(repr(str(m)) for m in kind)
        raise TransformConfigError(f"{key}: {value!r} is not one of {allowed}") from None


def _mask(key: str, spec: Mapping[str, Any]) -> Mask:
    kind = _choice(f"{key}.mask", spec["mask"], MaskKind)
    allowed = {"mask"} | ({"keep_last"} if kind is MaskKind.PARTIAL else set())
    allowed |= {"replacement"} if kind is MaskKind.REDACT else set()
    _only(key, spec, allowed)
    keep_last = spec.get("keep_last", 4)
    if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 0:
        raise TransformConfigError(f"{key}.keep_last: expected a whole number >= 0, got {keep_last!r}")
    replacement = spec.get("replacement", REDACTED)
    if not isinstance(replacement, str):
        raise TransformConfigError(f"{key}.replacement: expected text, got {replacement!r}")
    return Mask(kind, keep_last, replacement)


def _timestamp(key: str, spec: Any) -> Timestamp:
    if not isinstance(spec, Mapping):
        raise TransformConfigError(f'{key}: expected options such as {{ zone = "Europe/Paris" }}')
    _only(key, spec, {"from", "zone", "as", "truncate"})
    zone = spec.get("zone")
    if zone is not None:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise TransformConfigError(f"{key}.zone: unknown time zone {zone!r}") from None
    as_ = spec.get("as", "timestamptz")
    if as_ not in ("timestamptz", "timestamp"):
        raise TransformConfigError(f"{key}.as: {as_!r} is not one of 'timestamptz', 'timestamp'")
    truncate = spec.get("truncate")
    return Timestamp(
        source=_choice(f"{key}.from", spec.get("from", "native"), TimeSource),
        zone=zone,
        as_=as_,
        truncate=None if truncate is None else _choice(f"{key}.truncate", truncate, Truncate),
    )


def hashing_rules(rules: Rules) -> list[str]:
    """The keys of every ``mask = "hash"`` rule (they need a hash key)."""
    return [
        _key(table, column)
        for table, columns in rules.items()
        for column, rule in columns.items()
        if isinstance(rule, Mask) and rule.kind is MaskKind.HASH
    ]


# -- matching -------------------------------------------------------------------------------------------------
def _specificity(pattern: str) -> tuple[bool, int]:
    return ("*" not in pattern and "?" not in pattern, len(pattern.replace("*", "")))


def rule_for(rules: Rules, table: str, column: str) -> tuple[str, Rule] | None:
    """The rule for ``column`` of ``table`` (``ks.t``) and its key, the most specific match, or None."""
    best: tuple[tuple[bool, int], tuple[bool, int], str, Rule] | None = None
    for table_pattern, columns in rules.items():
        if not fnmatch.fnmatchcase(table, table_pattern):
            continue
        for column_pattern, rule in columns.items():
            if not fnmatch.fnmatchcase(column, column_pattern):
                continue
            rank = (_specificity(table_pattern), _specificity(column_pattern))
            if best is None or rank > (best[0], best[1]):
                best = (*rank, _key(table_pattern, column_pattern), rule)
    return None if best is None else (best[2], best[3])


# -- compiling ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ColumnPlan:
    name: str
    key: str
    """The configuration key of the rule (for messages and ``GET /config``)."""
    rule: Rule
    fn: Transform
    """Value after the type mapping (never None: the hot path skips nulls) -> the mirrored value."""
    pg_type: str | None
    """The mirror column's PostgreSQL type when the rule changes it (None: unchanged)."""

    @cached_property
    def apply(self) -> Transform:
        """:attr:`fn`, None staying None."""
        return _none_safe(self.fn)


@dataclass(frozen=True)
class TransformPlan:
    table: str
    columns: tuple[ColumnPlan, ...] = ()
    dropped: frozenset[str] = frozenset()
    fingerprint: str = field(default="")
    """Changes when a rule or the hash key changes (stored per mirror: a changed plan is detected)."""

    @property
    def empty(self) -> bool:
        return not self.columns and not self.dropped

    @cached_property
    def cell_values(self) -> dict[str, Transform]:
        """Per transformed column, mapped value -> the value its cell holds in the sink's state: the
        masked/normalised value, or :data:`UNKNOWN` (live, shown as null) for a null mask and a dropped
        column. None (a tombstone) stays None."""
        functions: dict[str, Transform] = dict.fromkeys(self.dropped, _unknown)
        for column in self.columns:
            masked_to_null = isinstance(column.rule, Mask) and column.rule.kind is MaskKind.NULL
            functions[column.name] = _unknown if masked_to_null else column.fn
        return functions

    @cached_property
    def opaque(self) -> frozenset[str]:
        """Columns whose transformed values do not order like the originals (Cassandra's equal-timestamp
        rule compares the original bytes): a tie between two different values there is read back."""
        return frozenset(name for name, fn in self.cell_values.items() if fn is not _unknown)

    @cached_property
    def pg_types(self) -> dict[str, str]:
        """The mirror column types the plan changes."""
        return {c.name: c.pg_type for c in self.columns if c.pg_type is not None}

    @cached_property
    def _applied(self) -> tuple[tuple[str, Transform], ...]:
        return tuple(self.cell_values.items())

    def mutation(self, mutation: Mutation) -> Mutation:
        """``mutation`` with every cell value transformed (keys are never transformed). The hot path: one
        dict copy and a lookup per transformed column."""
        if not isinstance(mutation, RowWrite) or self.empty:
            return mutation
        cells = mutation.cells
        out: dict[str, CellWrite] | None = None
        name = ""
        try:
            for name, fn in self._applied:
                cell = cells.get(name)
                if cell is None or cell.value is None:
                    continue
                if out is None:
                    out = dict(cells)
                out[name] = CellWrite(fn(cell.value), cell.expires_at)
        except CONVERSION_ERRORS as error:  # e.g. an epoch beyond year 9999, text that is not ISO-8601
            raise ValueMappingError(
                f"{_key(self.table, name)}: the value cannot be transformed ({type(error).__name__})"
            ) from None
        if out is None:
            return mutation
        return RowWrite(
            mutation.key, mutation.ts, out, mutation.marker, mutation.marker_expires_at, mutation.hint_columns
        )

    def value(self, column: str, value: Any) -> Any:
        """One cell value as the sink's state holds it (read-backs from Cassandra)."""
        fn = self.cell_values.get(column)
        return value if fn is None or value is None else fn(value)

    def mirrored(self, schema: TableSchema) -> TableSchema:
        """``schema`` as its mirror holds it: without the columns the plan drops (what comparisons and
        reconciliation read on both sides)."""
        if not self.dropped:
            return schema
        return replace(schema, columns=tuple(c for c in schema.columns if c.name not in self.dropped))

    def describe(self) -> dict[str, Any]:
        """The effective rules, by column (``GET /config``, ``/health``): no key material."""
        described: dict[str, Any] = {c.name: {"key": c.key, **_describe(c.rule)} for c in self.columns}
        described.update({name: {"drop": True} for name in sorted(self.dropped)})
        return described

    def row(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` (column -> mapped value) with every rule applied and dropped columns left out."""
        out = {name: value for name, value in values.items() if name not in self.dropped}
        for column in self.columns:
            if column.name in out:
                out[column.name] = column.apply(out[column.name])
        return out


NO_TRANSFORMS = TransformPlan("")
"""The plan of a table without rules: an exact copy."""


def compile_plan(schema: TableSchema, rules: Rules, hash_key: bytes = b"") -> TransformPlan:
    """The table's plan: each column's rule checked against its CQL type, compiled to a function."""
    table = f"{schema.keyspace}.{schema.table}"
    keys = {c.name for c in (*schema.partition_key, *schema.clustering)}
    columns: list[ColumnPlan] = []
    dropped: set[str] = set()
    described: dict[str, Any] = {}
    exact = {t: {c: r for c, r in cs.items() if not _is_pattern(c)} for t, cs in rules.items()}
    for column in (*schema.partition_key, *schema.clustering, *schema.columns):
        # A wildcard column pattern never matches a key column; a key column named exactly is an error.
        found = rule_for(exact if column.name in keys else rules, table, column.name)
        if found is None:
            continue
        key, rule = found
        _check(key, column, rule, column.name in keys, hash_key)
        described[column.name] = _describe(rule)
        if isinstance(rule, Drop):
            dropped.add(column.name)
            continue
        columns.append(ColumnPlan(column.name, key, rule, _function(rule, hash_key), _pg_type(rule)))
    return TransformPlan(table, tuple(columns), frozenset(dropped), _fingerprint(described, hash_key))


def check_rules(
    rules: Rules, schemas: Mapping[str, TableSchema], hash_key: bytes = b""
) -> dict[str, TransformPlan]:
    """Every rule against the tables that exist (``ks.t`` -> schema): a table named without a wildcard must
    exist, a column named without one must exist in a table its rule matches, and every matched table's plan
    must compile. Returns the plans of the tables with rules; raises :class:`TransformConfigError`."""
    for table_pattern, columns in rules.items():
        matched = [schemas[name] for name in sorted(schemas) if fnmatch.fnmatchcase(name, table_pattern)]
        if not _is_pattern(table_pattern) and not matched:
            raise TransformConfigError(f"{_key(table_pattern)}: no such table in Cassandra")
        for column_pattern in columns:
            if _is_pattern(column_pattern) or not matched:
                continue
            if not any(column_pattern in schema.by_name for schema in matched):
                where = table_pattern if len(matched) == 1 else f"any table matching {table_pattern}"
                raise TransformConfigError(
                    f"{_key(table_pattern, column_pattern)}: no such column in {where}"
                )
    plans = {name: compile_plan(schema, rules, hash_key) for name, schema in sorted(schemas.items())}
    return {name: plan for name, plan in plans.items() if not plan.empty}


def _is_pattern(name: str) -> bool:
    return any(c in name for c in "*?[")


def _check(key: str, column: Column, rule: Rule, is_key: bool, hash_key: bytes) -> None:
    type_name = column.type.name
    if is_key:
        raise TransformConfigError(
            f"{key}: {column.name} is a primary-key column: key columns are mirrored unchanged "
            "(the sink reads rows back, deletes ranges and reconciles by them)"
        )
    if isinstance(rule, Mask):
        if rule.kind is MaskKind.HASH and not hash_key:
            raise TransformConfigError(f'{key}: mask = "hash" needs a hash key (transform_hash_key)')
        fits = HASHABLE if rule.kind is MaskKind.HASH else TEXT_TYPES
        if rule.kind is MaskKind.NULL or type_name in fits:
            return
        wanted = "a scalar" if rule.kind is MaskKind.HASH else "a text or ascii"
        raise TransformConfigError(
            f'{key}: mask = "{rule.kind}" needs {wanted} column; {column.name} is {type_name}'
        )
    if isinstance(rule, Timestamp):
        wanted_types = {
            TimeSource.NATIVE: {"timestamp"},
            TimeSource.ISO: TEXT_TYPES,
        }.get(rule.source, INTEGER_TYPES)
        if type_name not in wanted_types:
            raise TransformConfigError(
                f'{key}: timestamp from = "{rule.source}" needs a {"/".join(sorted(wanted_types))} column; '
                f"{column.name} is {type_name}"
            )


def _pg_type(rule: Rule) -> str | None:
    if isinstance(rule, Mask):
        return None if rule.kind is MaskKind.NULL else "text"
    if isinstance(rule, Timestamp):
        return "timestamp" if rule.as_ == "timestamp" else "timestamptz"
    return None


def _describe(rule: Rule) -> Any:
    """A rule in its configuration form, every option spelled out (fingerprints, ``GET /config``)."""
    if isinstance(rule, Mask):
        return {"mask": str(rule.kind), "keep_last": rule.keep_last, "replacement": rule.replacement}
    if isinstance(rule, Drop):
        return {"drop": True}
    return {
        "timestamp": {
            "from": str(rule.source),
            "zone": rule.zone,
            "as": rule.as_,
            "truncate": None if rule.truncate is None else str(rule.truncate),
        }
    }


def _fingerprint(described: Mapping[str, Any], hash_key: bytes) -> str:
    """Empty for a table without rules (whatever the key), else a digest of its rules and the key's id."""
    if not described:
        return ""
    text = json.dumps(described, sort_keys=True, separators=(",", ":")).encode()
    key_id = (
        hmac.new(hash_key, b"cass-cdc-pg transform key", hashlib.sha256).hexdigest()[:16] if hash_key else ""
    )
    return hashlib.sha256(text + key_id.encode()).hexdigest()[:32]


# -- the functions ----------------------------------------------------------------------------------------------
def _unknown(value: Any) -> Any:
    """A live cell whose value the mirror does not hold (dropped, or masked to null)."""
    return UNKNOWN


def _function(rule: Mask | Timestamp, hash_key: bytes) -> Transform:
    """The rule's function on a value that is not None."""
    if isinstance(rule, Timestamp):
        return _timestamp_fn(rule)
    return _mask_fn(rule, hash_key)


def mask_function(rule: Mask, hash_key: bytes = b"") -> Transform:
    """The masking function of ``rule``; None stays None."""
    return _none_safe(_mask_fn(rule, hash_key))


def _mask_fn(rule: Mask, hash_key: bytes) -> Transform:
    if rule.kind is MaskKind.NULL:
        return lambda value: None
    if rule.kind is MaskKind.HASH:
        return lambda value: hash_value(hash_key, value)
    if rule.kind is MaskKind.REDACT:
        replacement = rule.replacement
        return lambda value: replacement
    if rule.kind is MaskKind.EMAIL:
        return mask_email
    keep = rule.keep_last
    return lambda value: mask_partial(value, keep)


def _none_safe(fn: Transform) -> Transform:
    def apply(value: Any) -> Any:
        return None if value is None else fn(value)

    return apply


def hash_value(key: bytes, value: Any) -> str:
    """HMAC-SHA256 (hex) of the value's text form (bytes as they are): equal values hash equal, so joins on
    a hashed column still work; without the key the originals cannot be guessed by hashing candidates."""
    if type(value) is str:
        return hmac.digest(key, value.encode(), "sha256").hex()
    data = value if isinstance(value, bytes) else str(value).encode()
    return hmac.digest(key, data, "sha256").hex()


def mask_email(value: str) -> str:
    """``alice@example.org`` -> ``***@example.org`` (the domain kept, any script); text without ``@`` is
    masked whole."""
    local, at, domain = value.rpartition("@")
    return f"{REDACTED}@{domain}" if at and local else REDACTED


def mask_partial(value: str, keep_last: int) -> str:
    """All but the last ``keep_last`` characters as ``*``; a value no longer than that is masked whole."""
    if len(value) <= keep_last:
        return "*" * len(value)
    return "*" * (len(value) - keep_last) + (value[-keep_last:] if keep_last else "")


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_SCALE = {TimeSource.EPOCH_S: 1_000_000, TimeSource.EPOCH_MS: 1_000, TimeSource.EPOCH_US: 1}


def timestamp_function(rule: Timestamp) -> Transform:
    """Source value -> aware UTC datetime -> truncated in the zone -> timestamptz, or the zone's wall clock;
    None stays None."""
    return _none_safe(_timestamp_fn(rule))


def _timestamp_fn(rule: Timestamp) -> Transform:
    zone = ZoneInfo(rule.zone) if rule.zone else dt.UTC
    read = _reader(rule.source)
    truncate = rule.truncate
    wall_clock = rule.as_ == "timestamp"
    utc = dt.UTC

    def apply(value: Any) -> dt.datetime:
        local = read(value).astimezone(zone)
        if truncate is not None:
            local = truncate_in_zone(local, truncate)
        return local.replace(tzinfo=None) if wall_clock else local.astimezone(utc)

    return apply


def _reader(source: TimeSource) -> Callable[[Any], dt.datetime]:
    if source is TimeSource.NATIVE:
        return lambda value: value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    if source is TimeSource.ISO:
        return _from_iso
    scale = _SCALE[source]
    return lambda value: _EPOCH + dt.timedelta(microseconds=int(value) * scale)


def _from_iso(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=dt.UTC)


def truncate_in_zone(local: dt.datetime, unit: Truncate) -> dt.datetime:
    """Cut an aware datetime down to ``unit`` on its zone's wall clock. A zone's offset follows the wall
    time, so a day cut across a DST change gets the offset of that day's midnight; an hour cut inside the
    repeated hour of a fall-back keeps which of the two it was (``fold``)."""
    if unit is Truncate.MILLISECOND:
        return local.replace(microsecond=local.microsecond // 1000 * 1000)
    if unit is Truncate.SECOND:
        return local.replace(microsecond=0)
    if unit is Truncate.MINUTE:
        return local.replace(second=0, microsecond=0)
    if unit is Truncate.HOUR:
        return local.replace(minute=0, second=0, microsecond=0)
    return local.replace(hour=0, minute=0, second=0, microsecond=0, fold=0)
