"""app.offsets' pure parts: what a stored offset means against Kafka's bounds, and where a reset goes."""

from __future__ import annotations

import pytest

from app.offsets import report, reset_target, status


def test_status_against_kafkas_bounds() -> None:
    assert status(500, 0, 3) == "beyond_end"
    assert status(3, 0, 3) == "ok"
    assert status(5, 10, 20) == "behind_retention"
    assert status(None, 0, 3) == "not_started"
    assert status(4, None, None) == "no_topic"


def test_reset_targets() -> None:
    assert reset_target("earliest", 5, 9) == 5
    assert reset_target("latest", 5, 9) == 9
    assert reset_target("7", 5, 9) == 7
    with pytest.raises(ValueError, match="outside"):
        reset_target("10", 5, 9)
    with pytest.raises(ValueError, match="earliest, latest or an offset"):
        reset_target("soon", 5, 9)


def test_report_is_stable_for_scripts() -> None:
    rows = [("cdc.ks.t", 0, 500, 12), ("cdc.ks.t", 1, -1, 0), ("cdc.gone.t", 0, 4, 4)]
    got = [p.as_dict() for p in report(rows, {("cdc.ks.t", 0): (0, 3), ("cdc.ks.t", 1): (0, 0)})]
    assert got == [
        {
            "topic": "cdc.ks.t",
            "partition": 0,
            "stored": 500,
            "earliest": 0,
            "end": 3,
            "events": 12,
            "status": "beyond_end",
        },
        {
            "topic": "cdc.ks.t",
            "partition": 1,
            "stored": None,
            "earliest": 0,
            "end": 0,
            "events": 0,
            "status": "not_started",
        },
        {
            "topic": "cdc.gone.t",
            "partition": 0,
            "stored": 4,
            "earliest": None,
            "end": None,
            "events": 4,
            "status": "no_topic",
        },
    ]
