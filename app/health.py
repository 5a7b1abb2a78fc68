"""Health of the services the worker depends on: a small pure registry the web view renders."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["up", "down", "unknown", "warn"]
"""``warn``: working, but something needs a look (e.g. a table not captured); does not make ``/health`` 503."""


@dataclass
class ComponentHealth:
    status: Status = "unknown"
    detail: str = ""
    since: float = field(default_factory=time.time)
    retries: int = 0


@dataclass
class HealthRegistry:
    components: dict[str, ComponentHealth] = field(default_factory=dict)

    def mark(self, name: str, status: Status, detail: str = "") -> None:
        current = self.components.get(name)
        if current is None or current.status != status:
            self.components[name] = ComponentHealth(status=status, detail=detail)
            return
        current.detail = detail
        if status == "down":
            current.retries += 1

    def healthy(self) -> bool:
        return all(c.status in ("up", "warn") for c in self.components.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "status": "ok" if self.healthy() else "degraded",
            "components": {
                name: {"status": c.status, "detail": c.detail, "since": c.since, "retries": c.retries}
                for name, c in sorted(self.components.items())
            },
        }


health = HealthRegistry()
