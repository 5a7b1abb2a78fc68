"""app.capture: which tables with CDC on have no change topic past their grace period (pure parts)."""

from __future__ import annotations

from types import SimpleNamespace

from app.capture import cdc_tables, describe, uncaptured


def test_a_table_without_its_topic_is_reported_only_after_the_grace_period() -> None:
    seen: dict[tuple[str, str], float] = {}
    tables = [("ks", "a"), ("ks", "b")]
    topics = ["cdc.ks.a", "cdc.other.x"]
    assert uncaptured(tables, topics, "cdc", seen, now=100.0, grace_s=30) == []
    assert uncaptured(tables, topics, "cdc", seen, now=129.0, grace_s=30) == []
    assert uncaptured(tables, topics, "cdc", seen, now=130.0, grace_s=30) == [("ks", "b")]
    assert uncaptured(tables, [*topics, "cdc.ks.b"], "cdc", seen, now=131.0, grace_s=30) == []


def test_tables_no_longer_listed_are_forgotten() -> None:
    seen = {("ks", "gone"): 0.0}
    assert uncaptured([("ks", "a")], ["cdc.ks.a"], "cdc", seen, now=1.0, grace_s=0) == []
    assert seen == {("ks", "a"): 1.0}


def test_cdc_tables_of_the_replicated_keyspaces_from_the_driver_metadata() -> None:
    def table(cdc: bool) -> SimpleNamespace:
        return SimpleNamespace(options={"cdc": cdc} if cdc else {})

    keyspaces = {
        "shop": SimpleNamespace(tables={"orders": table(True), "notes": table(False)}),
        "other": SimpleNamespace(tables={"t": table(True)}),
        "system_schema": SimpleNamespace(tables={"tables": table(True)}),
    }
    cluster = SimpleNamespace(metadata=SimpleNamespace(keyspaces=keyspaces))
    assert cdc_tables(cluster, None) == [("other", "t"), ("shop", "orders")]
    assert cdc_tables(cluster, ["shop"]) == [("shop", "orders")]


def test_the_report_names_the_tables_and_the_known_causes() -> None:
    text = describe([("ks", "b")])
    assert text.startswith("not captured: ks.b (")
    assert "restart" in text
