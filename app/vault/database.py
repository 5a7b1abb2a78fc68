"""Dynamic PostgreSQL credentials from Vault's database secrets engine, renewed and rotated in the background.

:class:`DatabaseCredentials` leases a user and password for a role and keeps them valid
(:mod:`app.vault.leases` decides when): renewals in a daemon thread; when the lease can no longer be
renewed, new credentials are leased while the old are still valid, the listeners are told (the worker's
pool drains: connections in use finish their transaction and are replaced), and the old lease is revoked
once no session of its user is left. While Vault cannot be reached the credentials are used for
``vault.grace_s``; past that, or past the lease's end, :meth:`DatabaseCredentials.current` raises
:class:`~app.vault.client.VaultUnavailable` (transient: the stream pauses, ``/health`` says why).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from pydantic import SecretStr

from app import metrics
from app.health import health
from app.vault.client import VaultClient, VaultRefused, VaultUnavailable
from app.vault.leases import Lease, due_at, leased, must_rotate, renewed, unusable

log = structlog.get_logger("cdc.vault")

HEARTBEAT_S = 10.0
"""How often Vault is asked whether it answers between renewals."""
RETRY_S = (1.0, 2.0, 4.0, 8.0)
"""Waits between attempts while Vault fails (then every 8 s)."""


@dataclass(frozen=True)
class Credentials:
    user: str
    password: SecretStr
    lease: Lease


SessionsOf = Callable[[str], int]
"""How many PostgreSQL sessions a user still has (so its lease is revoked only when it has none)."""


class DatabaseCredentials:
    """The current credentials of one role, kept valid by a background thread (:meth:`start`)."""

    def __init__(
        self,
        client: VaultClient,
        role: str,
        grace_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.role = role
        self.grace_s = grace_s
        self.clock = clock
        self.sessions_of: SessionsOf | None = None
        self.on_rotate: list[Callable[[], None]] = []
        self._current: Credentials | None = None
        self._retired: list[Credentials] = []
        self._failing_since: float | None = None
        self._failures = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what callers use ------------------------------------------------------------------------------
    def current(self) -> Credentials:
        """The credentials to connect with now; :class:`VaultUnavailable` when none may be used."""
        with self._lock:
            creds = self._current
        if creds is None:
            creds = self._lease_first()
        reason = unusable(creds.lease, self.clock(), self._failing_since, self.grace_s)
        if reason:
            raise VaultUnavailable(f"PostgreSQL credentials of {self.role!r}: {reason}")
        return creds

    def start(self) -> None:
        """Lease the first credentials (raises if Vault cannot give them) and start renewing."""
        self.current()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"vault-lease-{self.role}", daemon=True)
            self._thread.start()

    def close(self, revoke: bool = True) -> None:
        """Stop renewing; revoke the lease (the user is dropped: call after the pool is closed)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            leases = [c.lease for c in [*self._retired, *([self._current] if self._current else [])]]
            self._current, self._retired = None, []
        for lease in leases if revoke else []:
            self._attempt("revoke", self._revoker(lease))

    # -- the background work -----------------------------------------------------------------------------
    def _lease_first(self) -> Credentials:
        with self._lock:
            if self._current is None:
                self._current = self._lease()
            return self._current

    def _lease(self) -> Credentials:
        user, password, response = self.client.database_credentials(self.role)
        lease = leased(response["lease_id"], response["lease_duration"], response["renewable"], self.clock())
        log.info("database credentials leased", role=self.role, user=user, lease_seconds=lease.duration_s)
        return Credentials(user, password, lease)

    def _run(self) -> None:
        while not self._stop.wait(self.step()):
            pass

    def step(self) -> float:
        """One round: renew or rotate when due, revoke what no session uses; seconds until the next."""
        with self._lock:
            creds = self._current
        assert creds is not None, "start() leases the first credentials"
        now = self.clock()
        if now >= due_at(creds.lease):
            operation = "rotate" if must_rotate(creds.lease) else "renew"
            ok = self._attempt(operation, lambda: self._refresh(creds))
        else:  # between renewals a token lookup tells whether Vault answers (shown on /health)
            ok = self._attempt("lookup", self.client.lookup_self)
        if not ok:
            return RETRY_S[min(self._failures, len(RETRY_S)) - 1]
        self._revoke_unused()
        self._show()
        with self._lock:
            lease = self._current.lease if self._current else creds.lease
        return max(0.5, min(due_at(lease) - self.clock(), HEARTBEAT_S))

    def _refresh(self, creds: Credentials) -> None:
        if not must_rotate(creds.lease):
            try:
                granted = self.client.renew(creds.lease.lease_id, creds.lease.asked_s)
            except VaultRefused as error:  # e.g. the lease is gone (revoked, Vault's storage reset)
                log.warning("lease renewal refused, rotating", role=self.role, error=str(error))
                granted = 0.0
            lease = renewed(creds.lease, granted, self.clock())
            with self._lock:
                self._current = Credentials(creds.user, creds.password, lease)
            if not must_rotate(lease):
                return
            log.info("lease near its maximum lifetime, rotating", role=self.role, granted_seconds=granted)
        fresh = self._lease()
        with self._lock:
            self._retired.append(self._current or creds)
            self._current = fresh
        metrics.vault_rotations.labels(self.role).inc()
        for listener in self.on_rotate:
            listener()

    def _revoke_unused(self) -> None:
        with self._lock:
            retired = list(self._retired)
        now = self.clock()
        for old in retired:
            if old.lease.remaining(now) > 0 and self.sessions_of and self.sessions_of(old.user) > 0:
                continue  # a session still runs a transaction with it: revoked next round
            if old.lease.remaining(now) > 0 and not self._attempt("revoke", self._revoker(old.lease)):
                continue
            log.info("old database credentials revoked", role=self.role, user=old.user)
            with self._lock:
                self._retired.remove(old)

    def _revoker(self, lease: Lease) -> Callable[[], None]:
        return lambda: self.client.revoke(lease.lease_id)

    def _attempt(self, operation: str, fn: Callable[[], object]) -> bool:
        """Run a Vault operation; on failure count it, show it, and remember since when Vault fails."""
        try:
            fn()
        except (VaultUnavailable, VaultRefused) as error:
            metrics.vault_errors.labels(operation).inc()
            self._failures += 1
            if self._failing_since is None:
                self._failing_since = self.clock()
            log.warning("Vault operation failed", operation=operation, role=self.role, error=str(error))
            self._show(str(error))
            return False
        self._failures, self._failing_since = 0, None
        return True

    def _show(self, error: str | None = None) -> None:
        with self._lock:
            creds = self._current
        if creds is None:
            return
        now = self.clock()
        remaining = creds.lease.remaining(now)
        metrics.vault_lease_remaining.labels(self.role).set(remaining)
        reason = unusable(creds.lease, now, self._failing_since, self.grace_s)
        if reason:
            health.mark("vault", "down", f"transient: {reason} (paused until Vault answers)")
        elif error:
            health.mark("vault", "warn", f"{error}; using cached credentials (lease {remaining:.0f} s left)")
        else:
            health.mark("vault", "up", f"lease of {self.role!r}: {remaining:.0f} s left")
