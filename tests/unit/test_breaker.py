"""app.sink.breaker: the dead-letter-rate breaker and the per-dependency circuit breaker (pure, time given)."""

from __future__ import annotations

import pytest

from app.sink.breaker import CircuitBreaker, CircuitState, DeadLetterBreaker, DeadLetterFlood
from models.batch import DeadLetter, Record


def letters(n: int, reason: str = "internal_error") -> list[DeadLetter]:
    return [DeadLetter(Record("t", 0, i, None, b""), reason, f"boom {i}") for i in range(n)]


def test_a_batch_mostly_dead_letters_opens_the_breaker_and_names_the_reasons() -> None:
    breaker = DeadLetterBreaker(ratio=0.5, minimum=20)
    with pytest.raises(DeadLetterFlood, match=r"40 of the last 40 events .*internal_error x40"):
        breaker.check(40, letters(40))


def test_few_dead_letters_or_a_small_share_pass() -> None:
    breaker = DeadLetterBreaker(ratio=0.5, minimum=20)
    breaker.check(19, letters(19))  # below the minimum
    breaker.check(100, letters(30))  # 30 % of the batch
    breaker.check(0, [])


def test_the_window_adds_up_committed_batches_and_forgets_old_ones() -> None:
    breaker = DeadLetterBreaker(ratio=0.5, minimum=20, window=100)
    breaker.check(10, letters(9))  # 9 dead letters: below the minimum
    for _ in range(3):
        breaker.committed(10, 9)
    with pytest.raises(DeadLetterFlood):
        breaker.check(10, letters(9))  # 36 of 40: the window, not the batch alone, opens it
    for _ in range(20):
        breaker.committed(10, 0)  # healthy batches push the bad ones out of the window
    breaker.check(10, letters(9))


def test_a_disabled_breaker_never_opens() -> None:
    DeadLetterBreaker(ratio=None).check(1000, letters(1000))


def test_the_circuit_opens_after_the_threshold_probes_after_the_pause_and_closes_on_success() -> None:
    circuit = CircuitBreaker(threshold=3, probe_after_s=10)
    for now in (0.0, 1.0):
        circuit.failure(now)
        assert (circuit.state(now), circuit.wait_s(now)) == (CircuitState.CLOSED, 0.0)
    circuit.failure(2.0)
    assert (circuit.state(5.0), circuit.wait_s(5.0)) == (CircuitState.OPEN, 7.0)
    assert circuit.state(12.0) is CircuitState.HALF_OPEN
    circuit.failure(12.0)  # the probe failed: open again for a full pause
    assert circuit.wait_s(13.0) == 9.0
    circuit.success()
    assert (circuit.state(13.0), circuit.wait_s(13.0)) == (CircuitState.CLOSED, 0.0)
