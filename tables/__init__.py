"""RocksDB-backed Faust tables: a fast local view of progress and counters (PostgreSQL is the truth)."""
