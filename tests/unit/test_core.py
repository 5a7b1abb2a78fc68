"""Unit tests of the pure core: reconciliation rules, merge planning, codecs, settings, SQL composition."""

from __future__ import annotations

import datetime as dt
import ipaddress
import uuid
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql

from app.health import HealthRegistry
from app.logging import REDACTED, redact_secrets, redact_text
from app.settings import ConfigError, load_settings
from app.sink import ddl
from app.sink.spec import ColumnSpec, MirrorSpec
from app.sink.state_codec import decode_row, mirror_values
from app.topics import keyspace_selected, placeholder_topic, topic_pattern
from models.convergence import (
    UNKNOWN,
    Cell,
    Marker,
    ReadBack,
    RowState,
    apply_readback,
    apply_write,
    cell_wins,
    in_range,
    marker_wins,
)
from models.cql_types import JsonbValue
from models.keycodec import decode_key, encode_key
from models.merge_plan import TableShape, needs, plan
from models.mutations import (
    Bound,
    BoundKind,
    CellWrite,
    PartitionDelete,
    RangeDelete,
    RowDelete,
    RowWrite,
)


def raw(value: object) -> bytes:
    return str(value).encode()


class TestCellWins:
    def test_higher_timestamp_wins(self) -> None:
        assert cell_wins(Cell(2, "a"), Cell(1, "z"), raw)
        assert not cell_wins(Cell(1, "z"), Cell(2, "a"), raw)

    def test_tombstone_beats_value_on_tie(self) -> None:
        assert cell_wins(Cell(5, None), Cell(5, "v"), raw)
        assert not cell_wins(Cell(5, "v"), Cell(5, None), raw)

    def test_expiring_beats_plain_value_and_tombstone_beats_expiring(self) -> None:
        assert cell_wins(Cell(5, "a", expires_at=10), Cell(5, "z"), raw)
        assert cell_wins(Cell(5, None), Cell(5, "a", expires_at=10), raw)

    def test_later_expiry_wins_between_expiring(self) -> None:
        assert cell_wins(Cell(5, "a", expires_at=20), Cell(5, "z", expires_at=10), raw)

    def test_greater_bytes_win_between_values(self) -> None:
        assert cell_wins(Cell(5, "b"), Cell(5, "a"), raw)
        assert not cell_wins(Cell(5, "a"), Cell(5, "b"), raw)
        assert not cell_wins(Cell(5, "a"), Cell(5, "a"), raw)

    def test_unknown_value_never_replaces_or_is_replaced_on_full_tie(self) -> None:
        assert not cell_wins(Cell(5, "a", 9), Cell(5, UNKNOWN, 9), raw)

    @given(st.lists(st.tuples(st.integers(0, 3), st.one_of(st.none(), st.sampled_from("abc"))), min_size=1))
    def test_winner_is_order_independent(self, cells: list[tuple[int, str | None]]) -> None:
        def fold(items: list[tuple[int, str | None]]) -> Cell:
            best = Cell(*items[0])
            for ts, value in items[1:]:
                if cell_wins(Cell(ts, value), best, raw):
                    best = Cell(ts, value)
            return best

        assert fold(cells) == fold(list(reversed(cells)))


def test_marker_tie_prefers_expiring_then_later_expiry() -> None:
    assert marker_wins(Marker(3, 100), Marker(3, None))
    assert marker_wins(Marker(3, 200), Marker(3, 100))
    assert not marker_wins(Marker(2, None), Marker(3, None))


def test_row_visibility_and_expiry() -> None:
    row = RowState(cells={"a": Cell(1, "x", expires_at=50)}, marker=Marker(1, expires_at=80))
    assert row.is_visible(40)
    assert row.next_expiry(40) == 50
    assert row.visible_values(["a"], 60) == {"a": None}
    assert row.is_visible(60)
    assert not row.is_visible(90)


def test_write_older_than_row_tombstone_is_dropped() -> None:
    row = RowState(deleted_ts=10)
    write = RowWrite(key=(1,), ts=10, cells={"a": CellWrite("x")}, marker=True)
    assert apply_write(row, write, None, lambda _c, v: raw(v)) is row
    newer = apply_write(
        row, RowWrite(key=(1,), ts=11, cells={"a": CellWrite("x")}), None, lambda _c, v: raw(v)
    )
    assert newer.cells["a"] == Cell(11, "x")


def test_range_bounds_follow_clustering_order() -> None:
    start, end = Bound((5,), BoundKind.EXCLUSIVE), Bound((2,), BoundKind.INCLUSIVE)
    desc = (True,)
    assert [c for c in range(8) if in_range((c,), start, end, desc)] == [2, 3, 4]
    asc_start, asc_end = Bound((2,), BoundKind.INCLUSIVE), Bound((5,), BoundKind.EXCLUSIVE)
    assert [c for c in range(8) if in_range((c,), asc_start, asc_end, (False,))] == [2, 3, 4]
    assert [
        c
        for c in range(3)
        if in_range((c, 9), Bound((), BoundKind.INCLUSIVE), Bound((1,), BoundKind.INCLUSIVE), (False, False))
    ] == [0, 1]


SHAPE = TableShape(
    partition_key=("p",),
    clustering=("c",),
    descending=(False,),
    columns=("a",),
    order_bytes=lambda _c, v: raw(v),
)


def test_needs_asks_full_partitions_only_for_partition_and_range_deletes() -> None:
    result = needs(SHAPE, [RowWrite((1, 1), 5), RowDelete((1, 2), 6), PartitionDelete((2,), 7)])
    assert result.row_keys == {(1, 1), (1, 2)}
    assert result.partitions == {(1,), (2,)}
    assert result.full_partitions == {(2,)}


def test_partition_delete_shadows_loaded_rows_and_later_older_writes() -> None:
    rows = {(1, 1): RowState(cells={"a": Cell(5, "x")}, marker=Marker(5))}
    result = plan(
        SHAPE, [PartitionDelete((1,), 6), RowWrite((1, 2), 4, {"a": CellWrite("y")}, marker=True)], rows, {}
    )
    assert result.rows[(1, 1)].is_empty()
    assert (1, 2) not in result.rows  # the older write arrived after the tombstone: dropped
    assert result.tombstones == [PartitionDelete((1,), 6)]


def test_range_delete_touches_only_rows_in_range() -> None:
    rows = {(1, c): RowState(cells={"a": Cell(5, c)}) for c in range(4)}
    result = plan(
        SHAPE,
        [RangeDelete((1,), Bound((1,), BoundKind.INCLUSIVE), Bound((2,), BoundKind.INCLUSIVE), 9)],
        rows,
        {},
    )
    assert set(result.rows) == {(1, 1), (1, 2)}


def test_readback_overrides_and_clears() -> None:
    row = RowState(cells={"tags": Cell(50, ["old"])})
    updated = apply_readback(row, {"tags": ReadBack(["a", "b"], 40)}, trigger_ts=45)
    assert updated.cells["tags"] == Cell(40, ["a", "b"])  # authoritative, even with an older element time
    cleared = apply_readback(row, {"tags": ReadBack(None, None)}, trigger_ts=60)
    assert cleared.cells["tags"] == Cell(60, None)
    assert "tags" not in apply_readback(RowState(), {"tags": ReadBack(None, None)}, 60).cells


def test_keycodec_round_trips_every_key_type() -> None:
    key = (
        1,
        "t",
        Decimal("1.50"),
        uuid.uuid4(),
        dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        dt.date(2020, 1, 2),
        dt.time(1, 2, 3, 4),
        b"\x00\x01",
        ipaddress.ip_address("::1"),
        True,
        1.5,
        dt.timedelta(days=1, microseconds=3),
        [1, [2]],
        None,
    )
    assert decode_key(encode_key(key)) == key


SPEC = MirrorSpec(
    keyspace="ks",
    table="t",
    schema="ks",
    name='we"ird',
    partition_key=(ColumnSpec("p", "integer"),),
    clustering=(ColumnSpec("c", "text"),),
    columns=(ColumnSpec("a", "integer"), ColumnSpec("b", "jsonb")),
)


def test_state_codec_round_trip() -> None:
    row = RowState(cells={"a": Cell(3, 7, 100), "b": Cell(4, None)}, marker=Marker(3, 100), deleted_ts=2)
    stored = mirror_values(SPEC, (1, "x"), row, now_us=50)
    assert (stored["a"], stored["b"], stored["_cdc_expires_at"]) == (7, None, 100)
    key, decoded = decode_row(SPEC, stored)
    assert key == (1, "x")
    assert decoded == row


def test_ddl_quotes_every_identifier() -> None:
    text = " ".join(s.as_string(None) for s in ddl.mirror_ddl(SPEC))  # type: ignore[arg-type]
    assert '"ks"."we""ird"' in text
    assert '"ks"."_cdc_we""ird_dead"' in text
    assert 'PRIMARY KEY ("p", "c")' in text
    assert isinstance(ddl.ident("x"), sql.Identifier)


def test_settings_fail_fast_naming_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDC_SINK__BATCH_SIZE", "0")
    with pytest.raises(ConfigError, match=r"sink\.batch_size \(env CDC_SINK__BATCH_SIZE\)"):
        load_settings()
    monkeypatch.delenv("CDC_SINK__BATCH_SIZE")
    monkeypatch.setenv("CDC_CONFIG_FILE", "/nonexistent.toml")
    with pytest.raises(ConfigError, match="CDC_CONFIG_FILE"):
        load_settings()


def test_settings_from_toml_file(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "cdc.toml"
    path.write_text('[kafka]\ntopic_prefix = "prod"\n[web]\nport = 7000\n')
    monkeypatch.setenv("CDC_CONFIG_FILE", str(path))
    monkeypatch.setenv("CDC_WEB__PORT", "7001")
    settings = load_settings()
    assert settings.kafka.topic_prefix == "prod"
    assert settings.web.port == 7001  # env beats the file
    assert settings.web.host == "127.0.0.1"


def test_secrets_are_redacted() -> None:
    event = redact_secrets(None, "info", {"dsn": "postgresql://u:pw@h/db", "url": "http://u:pw@h", "n": 1})
    assert event == {"dsn": REDACTED, "url": f"http://u:{REDACTED}@h", "n": 1}
    assert "pw" not in redact_text("kafka://user:pw@host:9092")


def test_health_registry() -> None:
    health = HealthRegistry()
    health.mark("postgres", "up")
    assert health.healthy()
    health.mark("postgres", "down", "refused")
    health.mark("postgres", "down", "refused again")
    assert not health.healthy()
    assert health.as_dict()["components"]["postgres"]["retries"] == 1  # type: ignore[index]


def test_topic_selection() -> None:
    pattern = topic_pattern("cdc")
    assert pattern.match("cdc.ks.tbl")
    assert not pattern.match("cdc.ks")
    assert not pattern.match(placeholder_topic("cdc"))
    assert not pattern.match("cdcx.ks.tbl")
    assert keyspace_selected("cdc.ks.tbl", pattern, ["ks"])
    assert not keyspace_selected("cdc.other.tbl", pattern, ["ks"])
    assert keyspace_selected("cdc.other.tbl", pattern, [])


def test_partition_token_matches_cassandra() -> None:
    from models.cql_types import parse_cql_type
    from models.token import partition_token, routing_key

    assert partition_token([parse_cql_type("int")], [1]) == -4069959284402364209  # Cassandra's token(1)
    assert routing_key([b"ab", b"c"]) == b"\x00\x02ab\x00\x00\x01c\x00"
    assert partition_token([parse_cql_type("frozen<map<int, text>>")], [{1: "a"}]) is None  # jsonb-mapped


def test_configured_logging_redacts_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    import structlog

    from app.logging import configure_logging

    configure_logging("INFO", "json")
    try:
        structlog.get_logger("t").info(
            "connecting", dsn="postgresql://u:hunter2@h/db", url="kafka://a:hunter2@b"
        )
    finally:
        structlog.reset_defaults()
    err = capsys.readouterr().err
    assert "connecting" in err
    assert "hunter2" not in err


def test_keycodec_encodes_jsonb_documents_as_json() -> None:
    assert encode_key((JsonbValue([1, "a"]),)) == [{"t": "json", "v": [1, "a"]}]
    assert decode_key(encode_key((JsonbValue({"k": 1}),))) == ({"k": 1},)
