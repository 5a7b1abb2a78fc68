"""When a lease is renewed, when its credentials are rotated, and how long they stay usable (pure).

A lease is renewed once two thirds of its duration have passed. When a renewal grants less than asked
(the role's ``max_ttl`` is near) or the lease cannot be renewed, its credentials are rotated at once: new
ones are leased while the old are still valid, the pool switches, and the old lease is revoked once no
session uses it. While Vault cannot be reached, credentials stay usable for the grace period, and never
past their lease's end.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

RENEW_FRACTION = 2 / 3
EXPIRY_MARGIN_S = 2.0
"""Credentials whose lease ends sooner than this are not handed out any more."""


@dataclass(frozen=True)
class Lease:
    lease_id: str
    duration_s: float
    """Granted by the last lease or renewal, from ``obtained_at``."""
    renewable: bool
    obtained_at: float
    """Monotonic time of the last lease or renewal."""
    asked_s: float
    """The duration the first grant gave: what each renewal asks for."""
    capped: bool = False
    """The last renewal granted less than asked: the lease is near its maximum lifetime."""

    @property
    def expires_at(self) -> float:
        return self.obtained_at + self.duration_s

    def remaining(self, now: float) -> float:
        return max(0.0, self.expires_at - now)


def leased(lease_id: str, duration_s: float, renewable: bool, now: float) -> Lease:
    return Lease(lease_id, float(duration_s), renewable, now, asked_s=float(duration_s))


def renewed(lease: Lease, granted_s: float, now: float) -> Lease:
    """``lease`` after a renewal that granted ``granted_s`` seconds."""
    return replace(lease, duration_s=float(granted_s), obtained_at=now, capped=granted_s + 1 < lease.asked_s)


def due_at(lease: Lease) -> float:
    """When the next renewal (or rotation) is due."""
    if must_rotate(lease):
        return lease.obtained_at
    return lease.obtained_at + lease.duration_s * RENEW_FRACTION


def must_rotate(lease: Lease) -> bool:
    """Is renewing no longer enough (not renewable, or capped by the maximum lifetime)?"""
    return lease.capped or not lease.renewable


def unusable(lease: Lease, now: float, failing_since: float | None, grace_s: float) -> str | None:
    """Why the lease's credentials must not be used now (None: they may)."""
    if lease.remaining(now) < EXPIRY_MARGIN_S:
        return "the credentials' lease has expired and Vault could not renew or replace it"
    if failing_since is not None and now - failing_since > grace_s:
        return f"Vault unreachable for {now - failing_since:.0f} s, past the {grace_s:.0f} s grace period"
    return None
