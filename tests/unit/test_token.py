"""models.token: Murmur3 partition tokens equal Cassandra's token()."""

from __future__ import annotations

from models.cql_types import parse_cql_type
from models.token import partition_token, routing_key


def test_partition_token_matches_cassandra() -> None:
    assert partition_token([parse_cql_type("int")], [1]) == -4069959284402364209  # Cassandra's token(1)
    assert routing_key([b"ab", b"c"]) == b"\x00\x02ab\x00\x00\x01c\x00"
    assert partition_token([parse_cql_type("frozen<map<int, text>>")], [{1: "a"}]) is None  # jsonb-mapped
