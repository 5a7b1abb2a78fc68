"""models.keycodec: primary keys of every key type survive the jsonb round trip."""

from __future__ import annotations

import datetime as dt
import ipaddress
import uuid
from decimal import Decimal

from models.cql_types import JsonbValue
from models.keycodec import decode_key, encode_key


def test_keycodec_round_trips_every_key_type() -> None:
    key = (
        1,
        "t",
        Decimal("1.50"),
        uuid.uuid4(),
        dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        dt.date(2020, 1, 2),
        dt.time(1, 2, 3, 4),
        b"\x00\x01",
        ipaddress.ip_address("::1"),
        True,
        1.5,
        dt.timedelta(days=1, microseconds=3),
        [1, [2]],
        None,
    )
    assert decode_key(encode_key(key)) == key


def test_keycodec_encodes_jsonb_documents_as_json() -> None:
    assert encode_key((JsonbValue([1, "a"]),)) == [{"t": "json", "v": [1, "a"]}]
    assert decode_key(encode_key((JsonbValue({"k": 1}),))) == ({"k": 1},)
