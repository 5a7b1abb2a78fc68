"""The worker's connections and the batch loop's I/O shell: retries, fencing, DLQ publishing, health."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import orjson
import structlog
from psycopg import sql
from psycopg_pool import ConnectionPool
from tenacity import AsyncRetrying, retry_if_exception, wait_exponential

from app import metrics, pg_connection, tracing
from app.cassandra_session import connect
from app.dlq.replay import Progress, Replayer, run_job
from app.dlq.sealing import sealer_for
from app.health import health
from app.settings import Settings
from app.sink.applier import Applier, Prepared
from app.sink.breaker import CircuitBreaker, DeadLetterBreaker
from app.sink.checkpoints import Claim, Fenced, ensure_meta
from app.sink.decoding import RecordDecoder
from app.sink.failures import Failure, Kind, classify, describe
from app.sink.readback import ReadBackReader
from app.sink.registry import SchemaEvent, TableRegistry
from app.sink.transform_plans import stored_plans
from models.batch import Outcome, Record

log = structlog.get_logger("cdc.runtime")

SCHEMA_COLUMNS = 'id, keyspace, "table", version, action, cql_schema, changes, ddl, detail, detected_at'
"""What the schema-version outbox publishes of its rows."""

SendDeadLetter = Callable[[bytes | None, bytes | None, list[tuple[str, bytes]]], Awaitable[Awaitable[Any]]]
"""Sends one DLQ record; what it returns resolves when the broker acknowledges it."""

DEPENDENCIES = ("postgres", "cassandra", "registry", "vault", "sink")
"""The components a failure can belong to (:func:`app.sink.failures.classify`); "sink" is the worker itself."""


def _schema_changed(event: SchemaEvent) -> None:
    metrics.schema_changes.labels(".".join(event.path), event.action).inc()


def _observe_stage(stage: str, seconds: float) -> None:
    metrics.batch_stage_seconds.labels(stage).observe(seconds)


class Runtime:
    """Created once per worker; every blocking call runs in a thread, every failure is retried or routed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.applier: Applier | None = None
        self._start_lock = asyncio.Lock()
        self._work_lock = asyncio.Lock()
        """Batches and the TTL sweep touch the same rows: one at a time per worker."""
        self.pool: ConnectionPool[Any] | None = None
        self.cluster: Any = None
        self.registry: TableRegistry
        self.circuits = {
            name: CircuitBreaker(settings.sink.circuit_threshold, settings.sink.circuit_probe_after_s)
            for name in DEPENDENCIES
        }
        """One per dependency: after repeated failures every caller (batches, sweep, outbox) waits for the
        half-open probe instead of each retrying on its own."""
        self.owner = f"{settings.app_id}@{socket.gethostname()}:{os.getpid()}"
        """Who leases dead letters and runs replay jobs (shown in ``_cdc_dlq_replays.owner``)."""
        self._outbox_lock = asyncio.Lock()
        self._in_flight: dict[int, tuple[asyncio.Future[Any], bool]] = {}
        """Dead letters sent but not yet acknowledged (-> the send, whether it was cut)."""
        self._failing: dict[str, dict[str, str]] = {name: {} for name in DEPENDENCIES}
        """Per dependency, the operations now failing on it (-> transient | systemic): it shows as down on
        ``/health`` until every one of them has succeeded again (a sweep that works does not hide a batch
        that is paused)."""

    @property
    def session(self) -> Any:
        """The Cassandra session (after :meth:`ensure_started`)."""
        return self._session

    # -- start-up -----------------------------------------------------------------------------------------
    async def ensure_started(self) -> Applier:
        async with self._start_lock:
            if self.applier is None:
                self.applier = await self._retrying("start", self._start)
            return self.applier

    def _start(self) -> Applier:
        s = self.settings
        if self.pool is None:
            self.pool = ConnectionPool(
                s.postgres.dsn.get_secret_value(),
                min_size=s.postgres.pool_min_size,
                max_size=s.postgres.pool_max_size,
                kwargs=self._connect_kwargs,  # asked per connection: rotated credentials are used at once
                open=False,
                name="cdc",
            )
            credentials = pg_connection.dynamic_credentials(s)
            if credentials is not None:
                # On rotation idle connections are closed, those in use when their transaction ends.
                credentials.on_rotate.append(self.pool.drain)
        self.pool.open(wait=True, timeout=10)
        with self.pool.connection() as conn:
            ensure_meta(conn)
        health.mark("postgres", "up")
        if self.cluster is None:
            self.cluster, session = connect(s.cassandra)
            self._session = session
        health.mark("cassandra", "up")
        registry = TableRegistry(
            self.cluster,
            self.pool,
            s.sink.table_targets,
            drop_policies=s.sink.dropped_columns,
            lock_timeout_ms=s.postgres.ddl_lock_timeout_ms,
            on_change=_schema_changed,
            session=self._session,
            transforms=s.transform_rules,
            hash_key=s.hash_key,
        )
        self.registry = registry
        reader = ReadBackReader(self._session, s.sink.readback_concurrency, s.cassandra.readback_consistency)
        decode = RecordDecoder(s.registry.url)
        return Applier(
            self.pool,
            registry,
            reader,
            group_id=s.app_id,
            decode=decode,
            observe=_observe_stage,
            topic_prefix=s.kafka.topic_prefix,
            max_clock_skew_s=s.sink.max_clock_skew_s,
            breaker=DeadLetterBreaker(s.sink.dlq_breaker_ratio, s.sink.dlq_breaker_minimum),
            sealer=sealer_for(s),
        )

    def _connect_kwargs(self) -> dict[str, Any]:
        s = self.settings
        kwargs = pg_connection.connect_kwargs(s, f"-c statement_timeout={s.postgres.statement_timeout_ms}")
        # No server-side prepared statements: after a mirror's DDL a cached plan fails with
        # "cached plan must not change result type" on every pooled connection.
        return {**kwargs, "prepare_threshold": None}

    def _check_credentials(self) -> None:
        """Raise :class:`~app.vault.client.VaultUnavailable` when the leased credentials may not be used
        (Vault unreachable past the grace period, or the lease ended): the caller pauses and retries."""
        credentials = pg_connection.dynamic_credentials(self.settings)
        if credentials is not None:
            credentials.current()

    # -- retries ------------------------------------------------------------------------------------------
    async def _retrying(
        self, what: str, fn: Callable[..., Any], *args: Any, unknown_pauses: bool = False
    ) -> Any:
        """Run ``fn`` in a thread; failures that pause the stream (transient, systemic; with
        ``unknown_pauses`` every failure) are retried with exponential backoff, each dependency's circuit
        breaker holding callers back while open, and shown on ``/health``. Others are raised."""

        def retried(error: BaseException) -> bool:
            if isinstance(error, Fenced):
                return False  # another worker owns the partitions: never retried
            return unknown_pauses or classify(error).pauses

        async def before_sleep(state: Any) -> None:
            error = state.outcome.exception()
            self._failed(what, error, classify(error), state.attempt_number)
            tracing.retried(what, error, state.attempt_number)

        retrying = AsyncRetrying(
            wait=wait_exponential(multiplier=0.2, max=30),
            retry=retry_if_exception(retried),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await asyncio.sleep(max(c.wait_s(time.monotonic()) for c in self.circuits.values()))
                    await asyncio.to_thread(self._check_credentials)
                    result = await asyncio.to_thread(fn, *args)
        finally:
            self._recovered(what)  # succeeded, or failed in a way that does not pause: the dependency answers
        return result

    def _failed(self, what: str, error: BaseException, failure: Failure, attempt: int) -> None:
        component, kind = failure.component, failure.kind.value
        if failure.kind is Kind.UNKNOWN:
            kind = "systemic"  # an unexpected error that hits the whole batch: paused like one
        circuit = self.circuits[component]
        circuit.failure(time.monotonic())
        metrics.circuit_state.labels(component).set(int(circuit.state(time.monotonic())))
        self._failing[component][what] = kind
        metrics.paused.labels(component, kind).set(1)
        health.mark(component, "down", f"{kind}: {describe(error)} (paused while {what} retries)")
        metrics.retries.labels(type(error).__name__).inc()
        log.warning(
            f"{kind} failure, consumption paused, retrying",
            what=what,
            component=component,
            error=describe(error),
            attempt=attempt,
        )

    def _recovered(self, what: str) -> None:
        for name, failing in self._failing.items():
            if failing.pop(what, None) is None or failing:
                continue
            self.circuits[name].success()
            metrics.circuit_state.labels(name).set(0)
            for kind in ("transient", "systemic"):
                metrics.paused.labels(name, kind).set(0)
            health.mark(name, "up")

    # -- partitions ---------------------------------------------------------------------------------------
    async def claim(
        self, partitions: Sequence[tuple[str, int]], starts: Mapping[tuple[str, int], int] | None = None
    ) -> dict[tuple[str, int], Claim]:
        """:meth:`Applier.claim` (``starts``: the earliest offsets, for partitions without a checkpoint)."""
        applier = await self.ensure_started()
        claims: dict[tuple[str, int], Claim] = await self._retrying(
            "claim", applier.claim, partitions, starts
        )
        return claims

    def expect(self, tp: tuple[str, int], offset: int) -> None:
        if self.applier is not None:
            self.applier.expect(tp, offset)

    def next_offsets(self) -> dict[tuple[str, int], int]:
        """Where applying resumes, per claimed partition (nothing before start-up)."""
        return self.applier.next_offsets() if self.applier is not None else {}

    def release(self, partitions: Sequence[tuple[str, int]]) -> None:
        if self.applier is not None:
            self.applier.release(partitions)

    # -- batches ------------------------------------------------------------------------------------------
    async def process(self, records: Sequence[Record]) -> Outcome | None:
        """Apply a batch; never raises. None when the batch was fenced off (another worker owns it)."""
        return await self.commit(records, await self.prepare(records))

    async def prepare(self, records: Sequence[Record], after: Prepared | None = None) -> Prepared | None:
        """Decode a batch (no transaction; may run while ``after`` commits). Never raises: None after an
        unexpected error, and :meth:`commit` then prepares it again, paused until that succeeds."""
        applier = await self.ensure_started()
        try:
            prepared: Prepared = await self._retrying("prepare", applier.prepare, records, after)
        except Exception:
            log.exception("unexpected error decoding a batch; it is decoded again once the previous commits")
            return None
        return prepared

    async def commit(self, records: Sequence[Record], prepared: Prepared | None) -> Outcome | None:
        """Apply a prepared batch (one at a time per worker, in batch order); never raises. None when the
        batch was fenced off (another worker owns it)."""
        applier = await self.ensure_started()
        async with self._work_lock:
            return await self._commit(applier, records, prepared)

    async def _commit(
        self, applier: Applier, records: Sequence[Record], prepared: Prepared | None
    ) -> Outcome | None:
        started = time.monotonic()
        try:
            if prepared is None:
                # Decoding failed outside any one record (those are dead-lettered): a bug that hits the
                # whole batch, so it pauses like a systemic fault until it decodes.
                prepared = await self._retrying("prepare", applier.prepare, records, unknown_pauses=True)
            try:
                outcome: Outcome = await self._retrying("apply", applier.commit, prepared)
            except Fenced:
                raise
            except Exception as error:
                log.warning("a batch failed on an event's data; bisecting it", error=describe(error))
                outcome = await self._bisecting(applier, prepared)
        except Fenced as error:
            return self._fenced(error)
        if outcome.not_owned:
            log.warning(
                "records of partitions this worker has not claimed were left for their owner",
                partitions={f"{t}:{p}": n for (t, p), n in outcome.not_owned.items()},
            )
        self._observe(records, outcome, time.monotonic() - started)
        log.debug(
            "batch committed",
            events=len(records),
            first={f"{r.topic}:{r.partition}": r.offset for r in reversed(records)},
            next_offsets={f"{t}:{p}": o for (t, p), o in outcome.next_offsets.items()},
            skipped=outcome.skipped,
            dead_letters=len(outcome.dead_letters),
        )
        return outcome

    async def _bisecting(self, applier: Applier, prepared: Prepared) -> Outcome:
        """Commit with the failing records split out and dead-lettered; an unexpected error even then (not
        one record's) pauses the stream like a systemic fault."""
        outcome: Outcome = await self._retrying(
            "apply-bisecting", applier.commit, prepared, True, unknown_pauses=True
        )
        return outcome

    @staticmethod
    def _fenced(error: Fenced) -> None:
        """The batch rolled back; the applier has dropped the claims another worker replaced, so their records
        are left alone from now on (no re-claim: only an assignment claims)."""
        metrics.fenced.inc()
        log.warning("batch fenced off; another worker owns its partitions", error=str(error))

    def _observe(self, records: Sequence[Record], outcome: Outcome, elapsed: float) -> None:
        now = time.time()
        metrics.batch_seconds.observe(elapsed)
        metrics.batch_size.observe(len(records))
        metrics.last_commit.set(now)
        metrics.events_skipped.inc(outcome.skipped)
        for record in records:
            if record.timestamp_ms is not None:
                metrics.kafka_to_pg_seconds.observe(max(0.0, now - record.timestamp_ms / 1000))
        for (path, kind), n in outcome.applied.items():
            metrics.events_applied.labels(".".join(path), kind).inc(n)
        for path, ts_us in outcome.last_ts_us.items():
            metrics.cassandra_to_pg_seconds.observe(max(0.0, now - ts_us / 1e6))
            metrics.source_lag.labels(".".join(path)).set(max(0.0, now - ts_us / 1e6))
        for letter in outcome.dead_letters:
            metrics.dead_letters.labels(letter.reason).inc()

    # -- schema -------------------------------------------------------------------------------------------
    async def check_schemas(self) -> dict[tuple[str, str], str]:
        """The schema agent's tick: sync every known table with Cassandra's schema (between batches: DDL
        waits for no batch); returns the quarantined tables. Never raises."""
        if self.applier is None:
            return {}
        try:
            async with self._work_lock:
                await self._retrying("schema-check", self.registry.check)
        except Exception:
            log.exception("schema check failed; next check retries")
        quarantined = self.registry.quarantined()
        metrics.quarantined_tables.set(len(quarantined))
        if quarantined:
            reasons = "; ".join(f"{'.'.join(p)}: {why}" for p, why in sorted(quarantined.items()))
            health.mark(
                "schema", "down", f"quarantined (events wait in Kafka; `cdc schema resolve`): {reasons}"
            )
        elif "schema" in health.components:
            health.mark("schema", "up")
        await self._mark_transforms()
        return quarantined

    async def _mark_transforms(self) -> None:
        """``/health``'s ``transforms``: each transformed table's plan, and a warning for every mirror whose
        rules changed since its rows were written (they keep the old rule until rebuilt or repaired, then
        a clean reconciliation records the mirror as following the new plan)."""
        if not self.settings.transforms or self.pool is None:
            return
        try:
            stored = await asyncio.to_thread(self._stored_plans)
        except Exception as error:
            health.mark("transforms", "warn", f"plans not read: {describe(error)}")
            return
        known = {f"{e.schema.keyspace}.{e.schema.table}" for e in self.registry.known()}
        stored = [p for p in stored if p["table"] in known]
        changed = [p for p in stored if p["changed_at"] is not None]
        if changed:
            detail = "; ".join(
                f"{p['table']}: plan {p['previous_fingerprint'] or 'none'} -> {p['fingerprint']} at "
                f"{p['changed_at']}, rows written before keep the old rule"
                for p in changed
            )
            health.mark("transforms", "warn", f"rules changed since rows were written: {detail}")
            return
        plans = ", ".join(f"{p['table']} plan {p['fingerprint']}" for p in stored if p["fingerprint"])
        health.mark("transforms", "up", plans)

    def _stored_plans(self) -> list[dict[str, Any]]:
        assert self.pool is not None
        with self.pool.connection() as conn:
            return stored_plans(conn)

    async def publish_schema_changes(self, send: Callable[[bytes, bytes], Awaitable[None]]) -> int:
        """Send unpublished ``_cdc_schema_metadata`` versions (JSON, keyed ``ks.table``), then mark them
        published (outbox, like the dead letters)."""
        if self.pool is None:
            return 0
        rows = await self._retrying("schema-read", self._pending, "_cdc_schema_metadata", SCHEMA_COLUMNS, 500)
        for row in rows:
            body = {**row, "detected_at": row["detected_at"].isoformat()}
            await send(f"{row['keyspace']}.{row['table']}".encode(), orjson.dumps(body))
        if rows:
            await self._retrying(
                "schema-mark", self._mark_published, "_cdc_schema_metadata", [r["id"] for r in rows]
            )
        return len(rows)

    def schema_versions(self, keyspace: str, table: str) -> list[dict[str, Any]]:
        from app.sink.schema_sync import versions

        assert self.pool is not None
        with self.pool.connection() as conn:
            return versions(conn, keyspace, table)

    async def sweep(self, tables: Sequence[tuple[str, str]]) -> int:
        """Expire TTL'd cells and rows now due; never raises (a failure is logged and retried next time)."""
        if self.applier is None:
            return 0
        grace = self.settings.sink.tombstone_grace_s
        try:
            async with self._work_lock:
                changed: int = await self._retrying("sweep", self.applier.sweep, tables, grace)
        except Exception:
            log.exception("TTL sweep failed; next sweep retries")
            return 0
        metrics.rows_expired.inc(changed)
        return changed

    # -- dead letters -------------------------------------------------------------------------------------
    async def publish_dead_letters(self, send: SendDeadLetter) -> int:
        """One round of the DLQ outbox (:mod:`app.dlq.outbox`): lease unpublished rows, send them, mark those
        the broker acknowledged within ``dlq.ack_timeout_s``; the number published."""
        if self.pool is None or self._outbox_lock.locked():
            return 0  # a round is running: it (or the next) takes the new rows
        async with self._outbox_lock:
            published = await self._publish_round(send)
        metrics.dlq_unpublished.set(len(self._in_flight))
        return published

    async def _publish_round(self, send: SendDeadLetter) -> int:
        d = self.settings.dlq
        rows = await self._retrying("dlq-lease", self._dlq_lease, d.publish_batch, d.publish_lease_s)
        errors: dict[int, str] = {}
        waiting: dict[int, asyncio.Future[Any]] = {}
        for row in rows:
            record_id = int(row["id"])
            if record_id not in self._in_flight:
                try:
                    self._in_flight[record_id] = await self._send_letter(send, row, d.max_message_bytes)
                except Exception as error:
                    errors[record_id] = describe(error)
                    continue
            waiting[record_id] = self._in_flight[record_id][0]
        if waiting:
            await asyncio.wait(waiting.values(), timeout=d.ack_timeout_s)
        acked, cut = self._acknowledged(waiting, errors)
        if acked or errors:
            await self._retrying("dlq-mark", self._dlq_settle, acked, cut, errors)
        if errors:
            log.warning("dead letters not published; retried later", errors=dict(list(errors.items())[:5]))
        return len(acked)

    @staticmethod
    async def _send_letter(
        send: SendDeadLetter, row: dict[str, Any], max_bytes: int
    ) -> tuple[asyncio.Future[Any], bool]:
        from app.dlq.outbox import message

        key, value, headers, cut = message(row, max_bytes)
        return asyncio.ensure_future(await send(key, value, headers)), cut

    def _acknowledged(
        self, waiting: dict[int, asyncio.Future[Any]], errors: dict[int, str]
    ) -> tuple[list[int], list[int]]:
        """The sends acknowledged (and which of them were cut); failed ones go to ``errors``; those still in
        flight stay in ``_in_flight`` for the next round (never sent twice)."""
        acked, cut = [], []
        for record_id, future in waiting.items():
            if not future.done():
                continue
            _, truncated = self._in_flight.pop(record_id)
            error = None if future.cancelled() else future.exception()
            if future.cancelled() or error is not None:
                errors[record_id] = describe(error) if error is not None else "send cancelled"
                continue
            acked.append(record_id)
            if truncated:
                cut.append(record_id)
        return acked, cut

    def _dlq_lease(self, limit: int, lease_s: float) -> list[dict[str, Any]]:
        from app.dlq import outbox

        assert self.pool is not None
        with self.pool.connection() as conn:
            return outbox.lease(conn, self.owner, limit, lease_s)

    def _dlq_settle(self, acked: list[int], cut: list[int], errors: dict[int, str]) -> None:
        from app.dlq import outbox

        assert self.pool is not None
        with self.pool.connection() as conn, conn.transaction():
            outbox.published(conn, acked, cut)
            outbox.failed(conn, errors)

    # -- replay -------------------------------------------------------------------------------------------
    async def replayer(self) -> Replayer:
        applier = await self.ensure_started()
        assert self.pool is not None
        return Replayer(self.pool, applier, self.settings.kafka.topic_prefix, self.owner)

    async def call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking step between batches (one at a time per worker), retried like them while paused."""
        async with self._work_lock:
            return await self._retrying(what, fn, *args)

    async def run_replay(
        self, job: dict[str, Any], on_progress: Callable[[Progress], None]
    ) -> dict[str, Any] | None:
        """Run a claimed replay job to its end (:func:`app.dlq.replay.run_job`)."""
        replayer = await self.replayer()
        seen = {"replayed": int(job["replayed"]), "failed": int(job["failed"])}

        def observed(progress: Progress) -> None:
            for outcome, now in (("replayed", progress.replayed), ("failed", progress.failed)):
                metrics.dlq_replayed.labels(outcome).inc(now - seen[outcome])
                seen[outcome] = now
            on_progress(progress)

        final = await run_job(replayer, job, self.call, observed)
        if final is not None:
            log.info(
                "replay finished",
                replay_id=final["id"],
                status=final["status"],
                replayed=final["replayed"],
                failed=final["failed"],
                error=final["error"],
            )
        return final

    def _pending(self, table: str, columns: str, limit: int) -> list[dict[str, Any]]:
        """The outbox rows of ``table`` (a sink table: our own constant name) not yet published."""
        from psycopg.rows import dict_row

        assert self.pool is not None
        query = sql.SQL("SELECT {} FROM {} WHERE published_at IS NULL ORDER BY id LIMIT {}").format(
            sql.SQL(columns), sql.Identifier(table), sql.Literal(limit)
        )
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query)
            return list(cur.fetchall())

    def _mark_published(self, table: str, ids: list[int]) -> None:
        assert self.pool is not None
        with self.pool.connection() as conn:
            conn.execute(
                sql.SQL("UPDATE {} SET published_at = now() WHERE id = ANY(%s)").format(
                    sql.Identifier(table)
                ),
                (ids,),
            )

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
        if self.cluster is not None:
            self.cluster.shutdown()
