"""Local services for cass-cdc-pg: PostgreSQL, Kafka, Cassandra, the Debezium agent and optional extras.

Every service runs as a plain local process on 127.0.0.1 (no Docker); see ``python -m stack --help``.
"""
