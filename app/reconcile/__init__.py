"""Reconciliation: Cassandra and PostgreSQL compared by token range (issue 10, in progress)."""
