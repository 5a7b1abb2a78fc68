"""CQL for the demo keyspace: CDC-enabled tables that together use every CQL type.

- ``demo.customers``: composite partition key, every scalar type, non-frozen collections, tuples (one
  nested in another).

User-defined types and ``vector`` columns are left out on purpose: the Debezium Cassandra agent (3.4.1.Final,
the newest on Maven Central) cannot capture them -- a table with a UDT column is never registered
("Unknown type ks.udt"), and a ``vector`` column breaks the agent's schema refresh for every later table
("Could not parse type name vector<float, 4>"). The type mapping still covers both (:mod:`models.cql_types`).
- ``demo.orders``: composite partition key plus two clustering columns (one descending), frozen nested
  collections, used for range deletes.
- ``demo.readings``: time-series rows written with TTLs.
"""

from __future__ import annotations

KEYSPACE = "demo"

STATEMENTS: tuple[str, ...] = (
    f"CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} "
    "WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.customers (
        tenant text, customer_id uuid,
        name text, email ascii, handle varchar,
        age tinyint, loyalty_level smallint, visits int, points bigint, big_score varint,
        lifetime_value decimal, rating float, balance double, active boolean,
        avatar blob, birthday date, preferred_time time, created_at timestamp,
        membership duration, last_ip inet, session_id timeuuid,
        tags set<text>, phones list<text>, preferences map<text, text>,
        location frozen<tuple<text, text, int, frozen<tuple<double, double>>>>,
        coords tuple<int, text, double>,
        PRIMARY KEY ((tenant, customer_id))
    ) WITH cdc = true""",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.orders (
        tenant text, customer_id uuid, order_ts timestamp, order_id timeuuid,
        status text, total decimal, quantity int,
        items frozen<list<frozen<map<text, int>>>>, labels frozen<set<text>>,
        notes list<text>, discounts map<int, decimal>,
        PRIMARY KEY ((tenant, customer_id), order_ts, order_id)
    ) WITH CLUSTERING ORDER BY (order_ts DESC, order_id ASC) AND cdc = true""",
    f"""CREATE TABLE IF NOT EXISTS {KEYSPACE}.readings (
        device_id uuid, day date, seq int,
        kind ascii, value double, raw blob, flags set<int>,
        PRIMARY KEY ((device_id, day), seq)
    ) WITH cdc = true""",
)

TABLES: tuple[str, ...] = ("customers", "orders", "readings")
