"""stack.control.with_deps / with_dependents: start order (dependencies first) and stop order."""

from __future__ import annotations

import pytest

from stack.config import Settings
from stack.control import with_dependents, with_deps
from stack.errors import StackError
from stack.services import Service

JSON = Settings()
AVRO = Settings(converter="avro")


def names(services: list[Service]) -> list[str]:
    return [svc.name for svc in services]


@pytest.mark.parametrize(
    ("wanted", "settings", "expected"),
    [
        (["debezium"], JSON, ["kafka", "cassandra", "debezium"]),
        (["debezium"], AVRO, ["kafka", "cassandra", "apicurio", "debezium"]),
        (
            ["postgres", "kafka", "cassandra", "debezium"],
            JSON,
            ["postgres", "kafka", "cassandra", "debezium"],
        ),
        (["debezium", "postgres"], JSON, ["postgres", "kafka", "cassandra", "debezium"]),
        (["openbao"], JSON, ["openbao"]),
        (["kafka", "kafka"], JSON, ["kafka"]),
        ([], JSON, []),
    ],
)
def test_with_deps(wanted: list[str], settings: Settings, expected: list[str]) -> None:
    assert names(with_deps(wanted, settings)) == expected


@pytest.mark.parametrize(
    ("wanted", "settings", "expected"),
    [
        (["cassandra"], JSON, ["debezium", "cassandra"]),
        (["kafka"], JSON, ["debezium", "kafka"]),
        (["apicurio"], JSON, ["apicurio"]),
        (["apicurio"], AVRO, ["debezium", "apicurio"]),
        (["debezium"], JSON, ["debezium"]),
        (["postgres"], JSON, ["postgres"]),
        (
            ["postgres", "kafka", "cassandra", "apicurio", "debezium", "openbao"],
            JSON,
            ["debezium", "openbao", "apicurio", "cassandra", "kafka", "postgres"],
        ),
    ],
)
def test_with_dependents(wanted: list[str], settings: Settings, expected: list[str]) -> None:
    assert names(with_dependents(wanted, settings)) == expected


@pytest.mark.parametrize("fn", [with_deps, with_dependents])
def test_unknown_service(fn: object) -> None:
    with pytest.raises(
        StackError, match=r"unknown service 'nope' \(known: postgres, kafka, cassandra, apicurio"
    ):
        fn(["nope"], JSON)  # type: ignore[operator]
