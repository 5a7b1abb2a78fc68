"""models.partition_locks: advisory-lock keys of Cassandra partitions."""

from __future__ import annotations

import uuid
from decimal import Decimal

from models.partition_locks import lock_order, partition_lock_key


def test_keys_are_stable_signed_64_bit_and_per_table() -> None:
    key = partition_lock_key("ks", "t", ("tenant", 7))
    assert key == partition_lock_key("ks", "t", ("tenant", 7))
    assert -(2**63) <= key < 2**63
    assert key != partition_lock_key("ks", "u", ("tenant", 7))
    assert key != partition_lock_key("ks", "t", ("tenant", 8))


def test_lock_order_is_ascending_and_distinct() -> None:
    partitions = [
        (Decimal("1.50"), uuid.UUID(int=3)),
        (Decimal("1.5"), uuid.UUID(int=3)),
        (Decimal("1.50"), uuid.UUID(int=3)),
    ]
    keys = lock_order("ks", "t", partitions)
    assert keys == sorted(set(keys))
    assert len(keys) == 2  # 1.50 and 1.5 are different decimals (Cassandra keeps the scale)
