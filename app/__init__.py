"""cass-cdc-pg: the Faust application that mirrors Cassandra tables into PostgreSQL."""
