"""The PostgreSQL side: mirror-table DDL, loading and writing row state, checkpoints and DLQ records."""
