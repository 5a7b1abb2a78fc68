"""models.token: Murmur3 partition tokens equal Cassandra's token()."""

from __future__ import annotations

import uuid

from models.cql_types import parse_cql_type
from models.token import partition_token, routing_key


def test_partition_token_matches_cassandra() -> None:
    assert partition_token([parse_cql_type("int")], [1]) == -4069959284402364209  # Cassandra's token(1)
    assert routing_key([b"ab", b"c"]) == b"\x00\x02ab\x00\x00\x01c\x00"
    assert partition_token([parse_cql_type("frozen<map<int, text>>")], [{1: "a"}]) is None  # jsonb-mapped


def test_the_per_table_token_function_equals_the_general_one() -> None:
    from models.token import token_function

    for cql, values in (
        ("int", [1, -1, 2**31 - 1, -(2**31)]),
        ("bigint", [0, -(2**63), 2**63 - 1]),
        ("text", ["", "a", "héllo"]),
        ("uuid", [uuid.UUID(int=5)]),
    ):
        t = parse_cql_type(cql)
        one = token_function([t])
        assert [one([v]) for v in values] == [partition_token([t], [v]) for v in values], cql
    assert (
        token_function([parse_cql_type("int")])([2**40]) is None
    )  # not an int32: no token, as the general path
    pair = [parse_cql_type("int"), parse_cql_type("text")]
    assert token_function(pair)([1, "x"]) == partition_token(pair, [1, "x"])
    assert token_function([parse_cql_type("int")])([None]) is None
