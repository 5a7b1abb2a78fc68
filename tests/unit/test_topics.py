"""app.topics: which Kafka topics are change topics of replicated keyspaces."""

from __future__ import annotations

from app.topics import keyspace_selected, placeholder_topic, topic_pattern


def test_topic_selection() -> None:
    pattern = topic_pattern("cdc")
    assert pattern.match("cdc.ks.tbl")
    assert not pattern.match("cdc.ks")
    assert not pattern.match(placeholder_topic("cdc"))
    assert not pattern.match("cdcx.ks.tbl")
    assert keyspace_selected("cdc.ks.tbl", pattern, ["ks"])
    assert not keyspace_selected("cdc.other.tbl", pattern, ["ks"])
    assert keyspace_selected("cdc.other.tbl", pattern, [])
