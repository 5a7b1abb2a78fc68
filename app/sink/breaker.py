"""Breakers that turn a flood into a pause: the dead-letter-rate breaker and a circuit breaker per dependency.

Pure state machines (time is passed in), unit-tested directly; the runtime wires them.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from enum import IntEnum

from app.sink.failures import SystemicFault
from models.batch import DeadLetter


class DeadLetterFlood(SystemicFault):
    """Too large a share of recent events would be dead-lettered: systemic, the batch waits instead."""


@dataclass
class DeadLetterBreaker:
    """Opens when more than ``ratio`` of the last ``window`` events (this batch included) would be
    dead-lettered and at least ``minimum`` of them would: a fault that hits every record is a pause, not a
    flood of dead letters. Only committed batches enter the window, so once the cause is gone the retried
    batch commits. ``ratio=None`` disables it."""

    ratio: float | None = 0.5
    minimum: int = 20
    window: int = 1000
    _history: deque[tuple[int, int]] = field(default_factory=deque)
    """(events, dead letters) of committed batches, newest last, at most ``window`` events in all."""

    def check(self, events: int, dead: list[DeadLetter]) -> None:
        """Raise :class:`DeadLetterFlood` if committing this batch's ``dead`` letters would open the breaker."""
        if self.ratio is None or not dead:
            return
        total = events + sum(n for n, _ in self._history)
        failed = len(dead) + sum(d for _, d in self._history)
        if failed >= self.minimum and failed > self.ratio * total:
            reasons = Counter(d.reason for d in dead)
            summary = ", ".join(f"{reason} x{n}" for reason, n in reasons.most_common())
            raise DeadLetterFlood(
                f"{failed} of the last {total} events would be dead-lettered ({summary}; "
                f"sink.dlq_breaker_ratio={self.ratio}): paused instead. First: {dead[0].message[:300]}"
            )

    def committed(self, events: int, dead: int) -> None:
        self._history.append((events, dead))
        while (
            len(self._history) > 1 and sum(n for n, _ in self._history) - self._history[0][0] >= self.window
        ):
            self._history.popleft()


class CircuitState(IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


@dataclass
class CircuitBreaker:
    """Per dependency: opens after ``threshold`` consecutive failures; while open every caller waits until
    ``probe_after_s`` has passed, then one attempt probes (half-open): success closes it, failure re-opens it."""

    threshold: int = 5
    probe_after_s: float = 30.0
    failures: int = 0
    opened_at: float | None = None

    def state(self, now: float) -> CircuitState:
        if self.opened_at is None:
            return CircuitState.CLOSED
        if now - self.opened_at >= self.probe_after_s:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    def wait_s(self, now: float) -> float:
        """How long a caller waits before its next attempt (0 unless open)."""
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.opened_at + self.probe_after_s - now)

    def failure(self, now: float) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            self.opened_at = now

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None
