"""app.sink.stages: a stage's wall time reaches the observer, also when the stage fails."""

from __future__ import annotations

import time

import pytest

from app.sink.stages import timed


def test_a_stage_reports_its_wall_time_even_when_it_raises() -> None:
    seen: list[tuple[str, float]] = []
    with timed(lambda stage, s: seen.append((stage, s)), "load"):
        time.sleep(0.01)
    with pytest.raises(RuntimeError), timed(lambda stage, s: seen.append((stage, s)), "write"):
        raise RuntimeError("broken")
    assert [stage for stage, _ in seen] == ["load", "write"]
    assert seen[0][1] >= 0.01
