"""Unit tests for models.errors: the one tree of dead-letter reasons, and the README's table of them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from models import errors
from models.errors import PermanentEventError, ValueMappingError, dead_letter_reasons

README = Path(__file__).resolve().parents[2] / "README.md"
_ROW = re.compile(r"^\| `(?P<reason>[a-z_]+)` \| (?P<meaning>.+) \|$")


def readme_reasons(text: str) -> dict[str, str]:
    """The ``| `reason` | meaning |`` rows of the table that follows the README's "Dead-letter reasons" line."""
    _, found, rest = text.partition("\nDead-letter reasons")
    assert found, "README has no 'Dead-letter reasons' table"
    rows: dict[str, str] = {}
    for line in rest.split("\n\n", 2)[1].splitlines():
        match = _ROW.match(line)
        if match:
            rows[match["reason"]] = match["meaning"]
    return rows


def test_readme_lists_every_dead_letter_reason() -> None:
    documented = {reason: meaning.replace("``", "`") for reason, meaning in dead_letter_reasons().items()}
    assert readme_reasons(README.read_text(encoding="utf-8")) == documented


def test_reasons_cover_the_tree_and_are_unique() -> None:
    classes = [
        value
        for value in vars(errors).values()
        if isinstance(value, type)
        and issubclass(value, PermanentEventError)
        and value is not PermanentEventError
    ]
    assert len({cls.reason for cls in classes}) == len(classes)
    assert set(dead_letter_reasons()) == {cls.reason for cls in classes}
    assert dead_letter_reasons()["avro_without_registry"].startswith("An Avro record arrived")
    assert dead_letter_reasons()["internal_error"].startswith("A bug met")


def test_value_mapping_error_is_also_a_value_error() -> None:
    with pytest.raises(ValueError, match="bad"):
        raise ValueMappingError("bad")
    assert ValueMappingError.reason == "value_mapping_error"
