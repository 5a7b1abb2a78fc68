"""bench.observe: reading the worker's /metrics text and its checkpoints (pure parts)."""

from __future__ import annotations

from bench.observe import CheckpointPoller, histogram, labelled_sums

METRICS = """# HELP cdc_batch_stage_seconds Time per stage
cdc_batch_stage_seconds_bucket{le="0.01",stage="load"} 3.0
cdc_batch_stage_seconds_bucket{le="+Inf",stage="load"} 5.0
cdc_batch_stage_seconds_sum{stage="load"} 0.75
cdc_batch_stage_seconds_bucket{le="0.01",stage="plan"} 1.0
cdc_batch_stage_seconds_bucket{le="+Inf",stage="plan"} 5.0
cdc_batch_stage_seconds_sum{stage="plan"} 0.25
"""


def test_stage_sums_and_buckets_are_read_per_label() -> None:
    assert labelled_sums(METRICS, "cdc_batch_stage_seconds", "stage") == {"load": 0.75, "plan": 0.25}
    assert histogram(METRICS, "cdc_batch_stage_seconds") == {0.01: 4.0, float("inf"): 10.0}


def test_the_committed_total_of_a_topic_adds_its_partitions_and_ignores_unclaimed_ones() -> None:
    poller = CheckpointPoller("postgresql://unused", "g")
    poller._record([("t", 10), ("t", -1), ("t", 5)], 1.0)
    poller._record([("t", 10), ("t", 3), ("t", 5)], 2.0)
    poller._record([("t", 10), ("t", 3), ("t", 5)], 3.0)  # no progress: not a new point
    assert poller.history("t") == ([15, 18], [1.0, 2.0])
    assert poller.committed("t") == 18
    assert poller.commit_time("t", 15) == 2.0
