"""``cdc backfill``: rows that exist in Cassandra mirrored into PostgreSQL while the stream runs, merged cell by
cell on write time through the stream's own apply path (:mod:`models.backfill` says what is read and why)."""
