"""app.health: the dependency health registry."""

from __future__ import annotations

from app.health import HealthRegistry


def test_health_registry() -> None:
    health = HealthRegistry()
    health.mark("postgres", "up")
    assert health.healthy()
    health.mark("postgres", "down", "refused")
    health.mark("postgres", "down", "refused again")
    assert not health.healthy()
    assert health.as_dict()["components"]["postgres"]["retries"] == 1  # type: ignore[index]
