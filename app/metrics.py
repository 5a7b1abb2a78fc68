"""Prometheus metrics of the pipeline (served on the worker's /metrics next to Faust's own)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)

events_applied = Counter("cdc_events_applied_total", "Change events applied", ["table", "kind"])
rows_changed = Counter("cdc_rows_changed_total", "Mirror rows written or deleted", ["table"])
dead_letters = Counter("cdc_dead_letters_total", "Events sent to the dead-letter queue", ["reason"])
events_skipped = Counter("cdc_events_skipped_total", "Events skipped as already applied or empty")
batch_seconds = Histogram("cdc_batch_seconds", "Time to apply one batch", buckets=LATENCY_BUCKETS)
batch_stage_seconds = Histogram(
    "cdc_batch_stage_seconds",
    "Time per stage of a batch (decode, lock, load, plan, readback, write, ledger, commit)",
    ["stage"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
batch_size = Histogram(
    "cdc_batch_events", "Events per batch", buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000)
)
kafka_to_pg_seconds = Histogram(
    "cdc_kafka_to_postgres_seconds", "Kafka append time to PostgreSQL commit", buckets=LATENCY_BUCKETS
)
cassandra_to_pg_seconds = Histogram(
    "cdc_cassandra_to_postgres_seconds",
    "Cassandra write timestamp to PostgreSQL commit",
    buckets=LATENCY_BUCKETS,
)
retries = Counter("cdc_transient_retries_total", "Batch retries after a transient failure", ["error"])
fenced = Counter("cdc_fenced_batches_total", "Batches dropped because another worker owns the partition")
consumer_lag = Gauge(
    "cdc_consumer_lag_events",
    "Records in Kafka past the offset applying resumes at, per partition this worker has claimed",
    ["topic", "partition"],
)
last_commit = Gauge("cdc_last_commit_timestamp_seconds", "Wall time of the last committed batch")
source_lag = Gauge("cdc_source_lag_seconds", "Now minus the newest applied Cassandra write time", ["table"])
rows_expired = Counter("cdc_rows_expired_total", "Mirror rows re-evaluated by the TTL sweep")
circuit_state = Gauge(
    "cdc_circuit_state", "Circuit breaker per dependency: 0 closed, 1 half-open, 2 open", ["dependency"]
)
paused = Gauge(
    "cdc_paused",
    "1 while consumption waits on a failing dependency (kind: transient or systemic)",
    ["dependency", "kind"],
)
offset_beyond_end = Gauge(
    "cdc_offset_beyond_end",
    "Stored offset minus the topic's end offset for a partition paused because its offset lies beyond the end",
    ["topic", "partition"],
)
schema_changes = Counter(
    "cdc_schema_changes_total",
    "Schema versions recorded per table (synced, quarantined, dropped)",
    ["table", "action"],
)
quarantined_tables = Gauge(
    "cdc_quarantined_tables", "Tables whose events wait for an operator (schema quarantine)"
)
uncaptured_tables = Gauge(
    "cdc_uncaptured_tables", "Tables with cdc = true whose change topic does not exist past the grace period"
)
dlq_replayed = Counter(
    "cdc_dlq_replayed_total", "Dead letters replayed, by outcome (replayed, failed again)", ["outcome"]
)
dlq_replay_jobs = Gauge("cdc_dlq_replay_running", "Replay jobs this worker is running")
dlq_unpublished = Gauge(
    "cdc_dlq_unpublished", "Dead letters leased by this worker and not yet acknowledged by the DLQ topic"
)
reconciliation_drift = Gauge(
    "cdc_reconciliation_drift_percentage", "Drifted rows of the last reconciliation, in percent", ["table"]
)
reconciliation_cassandra_rows = Gauge(
    "cdc_reconciliation_cassandra_rows", "Rows Cassandra held at the last reconciliation", ["table"]
)
reconciliation_postgres_rows = Gauge(
    "cdc_reconciliation_postgres_rows", "Rows the mirror held at the last reconciliation", ["table"]
)
reconciliation_mismatches = Counter(
    "cdc_reconciliation_mismatches_total", "Mismatches found by reconciliation", ["table", "type"]
)
reconciliation_jobs = Counter(
    "cdc_reconciliation_jobs_completed_total",
    "Tables reconciled, by outcome (clean, drift, failed)",
    ["table", "status"],
)
reconciliation_duration = Gauge(
    "cdc_reconciliation_duration_seconds", "How long the last reconciliation of a table took", ["table"]
)
reconciliation_repaired = Counter(
    "cdc_reconciliation_repaired_total", "Mismatching rows repaired by reconciliation", ["table"]
)
backfill_rows = Counter(
    "cdc_backfill_rows_total", "Rows a backfill read from Cassandra and applied", ["table"]
)
backfill_ranges_remaining = Gauge(
    "cdc_backfill_ranges_remaining", "Token ranges a running backfill has still to apply", ["table"]
)
vault_lease_remaining = Gauge(
    "cdc_vault_lease_seconds_remaining", "Seconds until the current Vault lease ends, per use", ["use"]
)
vault_errors = Counter("cdc_vault_errors_total", "Failed Vault calls, per operation", ["operation"])
vault_rotations = Counter(
    "cdc_vault_credential_rotations_total", "Dynamic credentials replaced by new ones, per use", ["use"]
)
