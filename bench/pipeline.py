"""``cdc worker`` processes against the real stack: throughput, latency, memory, and a raw-loop baseline.

Every figure is measured ``REPEATS`` times in one run (medians reported, every repetition kept in the JSON),
against a raw loop measured in the same run. Each keyspace is private to the run and dropped at the end with
its topics and mirrors.

1. Throughput. Synthetic events in the agent's exact JSON shape (:mod:`bench.events`) are pre-loaded into a
   topic; then a worker (``app.testing.WorkerProcess``) starts over it. A poller reads its
   ``_cdc_checkpoints`` every 20 ms: steady events/s = events committed after the first commit / time from
   it to the last. Cases: the 9-scalar table, the same on a pre-populated mirror (every row inserted first; only
   the updates and deletes after that are timed), with a ``set<text>`` (read back from Cassandra), a 16-column
   table (composite partition key, frozen list), and 1 vs 2 workers over a 4-partition topic. The mirror is
   dropped before each repetition. Per run: peak RSS (VmHWM), CPU of the worker and of PostgreSQL, and where a
   batch's time goes (the worker's own ``cdc_batch_stage_seconds``).
2. Raw loop (:mod:`bench.raw_loop`) over the scalar topic: worker/raw ratio per repetition.
3. Latency (:mod:`bench.latency`), worker caught up: Kafka -> PostgreSQL at fixed rates, and Cassandra ->
   PostgreSQL with real CQL writes through the Debezium agent (with the agent's duplicate rate).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from app.testing import (
    WorkerProcess,
    create_cdc_keyspace,
    create_topics,
    delete_topics,
    drop_pg_schema,
    end_offsets,
    free_port,
    unique,
    wait_applied,
)
from bench import latency
from bench.common import Services, header, machine_info, now_iso, quiet_logging
from bench.events import ROWS, SCALAR, WIDE, WITH_SET, EventGen, Shape, preload
from bench.kafka_tools import Collector
from bench.observe import (
    POLL_S,
    CheckpointPoller,
    MemorySampler,
    cpu_seconds,
    labelled_sums,
    postgres_pids,
    scrape,
)
from bench.raw_loop import run_raw_loop
from stack.config import Settings

N_EVENTS = int(os.environ.get("BENCH_PIPELINE_EVENTS", "100000"))
N_SET_EVENTS = int(os.environ.get("BENCH_PIPELINE_SET_EVENTS", "30000"))
REPEATS = int(os.environ.get("BENCH_PIPELINE_REPEATS", "3"))
KAFKA_RATES = (1000, 5000)
CQL_RATES = (200, 1000)
BATCH = 2000  # the worker's default sink.batch_size
PARTITIONS = 4
FAUST_TOPICS = ("__assignor-__leader", "progress-changelog", "table-counters-changelog")  # per worker app_id
DRAIN_TIMEOUT_S = 300.0
STAGE_METRIC = "cdc_batch_stage_seconds"
TARGETS = {
    "throughput_events_per_s": (10_000, True),
    "prepopulated_events_per_s": (10_000, True),
    "worker_to_raw_ratio": (0.5, True),
    "collection_to_scalar_ratio": (0.7, True),
    "kafka_to_pg_p95_ms_at_5000": (500.0, False),
    "cassandra_to_pg_p95_ms_at_1000": (2000.0, False),
    "rss_mb": (500.0, False),
}
PG_TYPES = {
    "bigint": "bigint",
    "int": "int",
    "text": "text",
    "double": "double precision",
    "boolean": "boolean",
    "timestamp": "bigint",
    "uuid": "uuid",
    "decimal": "numeric",
}


@dataclass(frozen=True)
class Case:
    """One throughput measurement: a table shape over a pre-loaded topic, run by ``workers`` workers."""

    name: str
    label: str
    shape: Shape
    events: int
    prepopulate: bool = False
    partitions: int = 1
    workers: int = 1
    topic_of: str | None = None
    """Reuse another case's keyspace and topic (the 1- vs 2-worker pair reads the same events)."""


CASES = (
    Case("scalar", "9 scalars", SCALAR, N_EVENTS),
    Case("prepopulated", "9 scalars, pre-populated mirror", SCALAR, N_EVENTS, prepopulate=True),
    Case("with_set", "+ set<text> (read-back)", WITH_SET, N_SET_EVENTS),
    Case("wide", "16 columns, composite partition key, frozen list", WIDE, N_EVENTS),
    Case("four_partitions_1w", "9 scalars, 4 partitions, 1 worker", SCALAR, N_EVENTS, partitions=PARTITIONS),
    Case(
        "four_partitions_2w",
        "9 scalars, 4 partitions, 2 workers",
        SCALAR,
        N_EVENTS,
        partitions=PARTITIONS,
        workers=2,
        topic_of="four_partitions_1w",
    ),
)


@dataclass
class Loaded:
    """A case's keyspace, topic and pre-loaded events (made once, read by every repetition)."""

    keyspace: str
    topic: str
    end: int
    load: dict[str, Any]


# --- workers --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def workers(
    keyspace: str, workdir: Path, s: Settings, n: int = 1, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[list[WorkerProcess], CheckpointPoller, list[MemorySampler]]]:
    """``n`` workers of one new group over ``keyspace``, a checkpoint poller and a memory sampler each
    (``extra_env``: more of the workers' settings)."""
    app_id = unique("bench_worker")
    for i in range(n):
        (workdir / f"w{i}").mkdir(parents=True, exist_ok=True)
    procs = [
        WorkerProcess(
            keyspaces=[keyspace],
            workdir=workdir / f"w{i}",
            web_port=free_port(),
            app_id=app_id,
            extra_env={"CDC_LOG_LEVEL": "INFO", **(extra_env or {})},
        )
        for i in range(n)
    ]
    poller = CheckpointPoller(s.pg_dsn, app_id)
    poller.start()
    samplers = []
    try:
        for proc in procs:
            proc.start()
            assert proc.proc is not None
            samplers.append(MemorySampler(proc.proc.pid))
            samplers[-1].start()
        yield procs, poller, samplers
    except BaseException:
        for proc in procs:
            print(f"  worker log tail ({proc.log_path}):\n{proc.log_tail(40)}", flush=True)
        raise
    finally:
        for sampler in samplers:
            sampler.stopping.set()
        poller.stop()
        for proc in procs:
            proc.stop()
        with contextlib.suppress(Exception), psycopg.connect(s.pg_dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM _cdc_checkpoints WHERE group_id = %s", (app_id,))
        with contextlib.suppress(Exception):  # best-effort cleanup
            delete_topics(s.kafka_bootstrap, [f"{app_id}-{name}" for name in FAUST_TOPICS])


def check_alive(procs: Sequence[WorkerProcess]) -> None:
    for proc in procs:
        assert proc.proc is not None
        if proc.proc.poll() is not None:
            raise RuntimeError(f"worker exited with {proc.proc.returncode}:\n{proc.log_tail(40)}")


# --- phase 1: throughput --------------------------------------------------------------------------------


def stage_seconds(procs: Sequence[WorkerProcess]) -> dict[str, float]:
    """Seconds per batch stage so far, summed over the workers (their /metrics)."""
    total: dict[str, float] = {}
    for proc in procs:
        with contextlib.suppress(OSError):
            for stage, seconds in labelled_sums(scrape(proc.web_port), STAGE_METRIC, "stage").items():
                total[stage] = total.get(stage, 0.0) + seconds
    return total


def throughput(
    s: Settings, case: Case, loaded: Loaded, workdir: Path, extra_env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Start the case's workers over its pre-loaded topic and time the catch-up."""
    drop_pg_schema(s.pg_dsn, loaded.keyspace)  # a fresh mirror for every repetition
    timed_from = ROWS if case.prepopulate else 0
    with workers(loaded.keyspace, workdir, s, case.workers, extra_env) as (procs, poller, samplers):
        pids = [p.proc.pid for p in procs if p.proc is not None]
        started = time.time()
        window: dict[str, Any] = {}
        deadline = time.monotonic() + DRAIN_TIMEOUT_S + loaded.end / 500
        while poller.committed(loaded.topic) < loaded.end:
            check_alive(procs)
            if not window and poller.committed(loaded.topic) > timed_from:
                window = {"cpu": cpu_seconds(pids), "pg": cpu_seconds(postgres_pids()), "t": time.time()}
                window["stages"] = stage_seconds(procs)
            if time.monotonic() > deadline:
                raise TimeoutError(f"workers at {poller.committed(loaded.topic)} of {loaded.end} events")
            time.sleep(0.05)
        end = {"cpu": cpu_seconds(pids), "pg": cpu_seconds(postgres_pids()), "t": time.time()}
        stages = stage_seconds(procs)
        wait_applied(s.pg_dsn, procs[0].app_id, s.kafka_bootstrap, [loaded.topic], timeout=60)
        memory = [sampler.finish() for sampler in samplers]
    return {
        **rates(poller, loaded, timed_from, started),
        "peak_rss_mb": max((m["peak_rss_mb"] or 0) for m in memory),
        **cpu_shares(window, end),
        "stages_s": {
            k: round(v - window.get("stages", {}).get(k, 0.0), 3) for k, v in sorted(stages.items())
        },
    }


def rates(poller: CheckpointPoller, loaded: Loaded, timed_from: int, started: float) -> dict[str, Any]:
    offsets, times = poller.history(loaded.topic)
    first = next(i for i, o in enumerate(offsets) if o > timed_from)
    steady_s = times[-1] - times[first]
    steady_events = loaded.end - offsets[first]
    return {
        "events": loaded.end,
        "timed_events": steady_events,
        "startup_s": round(times[0] - started, 2),
        "steady_s": round(steady_s, 2),
        "events_per_s": round(steady_events / steady_s, 1) if steady_s > 0 else None,
        "commits_seen": len(offsets) - first,
    }


def cpu_shares(window: dict[str, Any], end: dict[str, Any]) -> dict[str, Any]:
    """CPU of the workers and of PostgreSQL over the timed window, in % of one core."""
    if not window:
        return {}
    wall = end["t"] - window["t"]
    return {
        "worker_cpu_pct": round(100 * (end["cpu"] - window["cpu"]) / wall) if wall > 0 else None,
        "postgres_cpu_pct": round(100 * (end["pg"] - window["pg"]) / wall) if wall > 0 else None,
    }


def raw_loop(s: Settings, loaded: Loaded) -> dict[str, Any]:
    value_cols = [(n, PG_TYPES[t]) for n, (t, _) in SCALAR.columns.items()]
    key_cols = [(n, PG_TYPES[t]) for n, t in (*SCALAR.partition, *SCALAR.clustering)]
    return run_raw_loop(s.kafka_bootstrap, s.pg_dsn, loaded.topic, key_cols, value_cols, BATCH)


# --- set-up ---------------------------------------------------------------------------------------------


def load_cases(s: Settings, session: Any, tag: str, cases: Sequence[Case] = CASES) -> dict[str, Loaded]:
    """Create each case's keyspace, table and topic and pre-load its events."""
    loaded: dict[str, Loaded] = {}
    for i, case in enumerate(cases):
        if case.topic_of is not None:
            loaded[case.name] = loaded[case.topic_of]
            continue
        loaded[case.name] = load_case(s, session, f"bench_pipe_{case.name}_{tag}", case, seed=i + 1)
        print(f"    {case.name}: {loaded[case.name].load}", flush=True)
    return loaded


def load_case(s: Settings, session: Any, keyspace: str, case: Case, seed: int = 1) -> Loaded:
    """One case's keyspace, table and topic, its events pre-loaded."""
    topic = f"{s.topic_prefix}.{keyspace}.{case.shape.name}"
    create_topics(s.kafka_bootstrap, [topic], log_append_time=True, partitions=case.partitions)
    create_cdc_keyspace(
        session, keyspace, {case.shape.name: case.shape.definition()}, s.topic_prefix, s.kafka_bootstrap
    )
    gen = EventGen(keyspace, case.shape, seed=seed)
    load = preload(s.kafka_bootstrap, topic, gen, case.events, prepopulate=case.prepopulate)
    ends = asyncio.run(end_offsets(s.kafka_bootstrap, [topic]))
    return Loaded(keyspace, topic, sum(ends.values()), load)


def latency_keyspace(s: Settings, session: Any, tag: str) -> tuple[str, str, str]:
    keyspace = f"bench_pipe_lat_{tag}"
    lat, live = f"{s.topic_prefix}.{keyspace}.lat", f"{s.topic_prefix}.{keyspace}.live"
    create_topics(s.kafka_bootstrap, [lat, live], log_append_time=True)
    definition = SCALAR.definition()
    create_cdc_keyspace(
        session, keyspace, {"lat": definition, "live": definition}, s.topic_prefix, s.kafka_bootstrap
    )
    return keyspace, lat, live


def latency_steps(
    s: Settings, session: Any, keyspace: str, lat: str, live_topic: str, workdir: Path
) -> dict[str, Any]:
    """One worker, caught up; Kafka steps then CQL steps."""
    live = latency.LiveEvents()
    collector = Collector(s.kafka_bootstrap, live_topic, live.add)
    collector.start_and_wait()
    try:
        with workers(keyspace, workdir, s) as (procs, poller, samplers):
            wait_applied(s.pg_dsn, procs[0].app_id, s.kafka_bootstrap, [lat, live_topic], timeout=180)
            gen = EventGen(keyspace, dataclasses.replace(SCALAR, name="lat"), seed=int(time.time()))
            kafka, cql = [], []
            for rate in KAFKA_RATES:
                kafka.append(latency.kafka_step(s, lat, gen, rate, poller, procs[0].web_port))
                check_alive(procs)
                print(f"      kafka {rate}/s: {kafka[-1]['kafka_to_pg_ms']}", flush=True)
                time.sleep(2)
            for rate in CQL_RATES:
                cql.append(
                    latency.cql_step(
                        session, keyspace, "live", live_topic, rate, poller, live, procs[0].web_port
                    )
                )
                check_alive(procs)
                print(f"      cassandra {rate}/s: {cql[-1]['cassandra_to_pg_ms']}", flush=True)
                time.sleep(2)
            memory = samplers[0].finish()
    finally:
        collector.stop()
    if collector.non_append_time:
        raise RuntimeError(f"{collector.non_append_time} records of {live_topic} are not LogAppendTime")
    return {"kafka": kafka, "cassandra": cql, "peak_rss_mb": memory["peak_rss_mb"]}


# --- the run --------------------------------------------------------------------------------------------


def repetition(
    s: Settings, session: Any, loaded: dict[str, Loaded], lat: tuple[str, str, str], workdir: Path
) -> dict[str, Any]:
    result: dict[str, Any] = {"throughput": {}}
    for case in CASES:
        print(f"    throughput {case.name} ...", flush=True)
        result["throughput"][case.name] = throughput(s, case, loaded[case.name], workdir)
        print(f"      {result['throughput'][case.name]}", flush=True)
    result["raw_loop"] = raw_loop(s, loaded["scalar"])
    print(f"    raw loop: {result['raw_loop']['events_per_s']} events/s", flush=True)
    print("    latency ...", flush=True)
    result["latency"] = latency_steps(s, session, *lat, workdir)
    return result


def run() -> dict[str, Any]:
    from cassandra.cluster import Cluster

    quiet_logging()
    s = Settings.from_env()
    tag = uuid.uuid4().hex[:6]
    workdir = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    reps: list[dict[str, Any]] = []
    loaded: dict[str, Loaded] = {}
    keyspaces: list[str] = []
    with Services(["postgres", "kafka", "cassandra", "debezium"], s):
        cluster = Cluster([s.host], port=s.cassandra_port, connect_timeout=10)
        session = cluster.connect()
        session.default_timeout = 60
        try:
            print("  creating keyspaces and pre-loading topics ...", flush=True)
            loaded = load_cases(s, session, tag)
            lat = latency_keyspace(s, session, tag)
            keyspaces = sorted({p.keyspace for p in loaded.values()} | {lat[0]})
            for i in range(REPEATS):
                print(f"  repetition {i + 1} of {REPEATS}", flush=True)
                reps.append(repetition(s, session, loaded, lat, workdir))
        finally:
            for keyspace in keyspaces:
                with contextlib.suppress(Exception):
                    session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
                with contextlib.suppress(Exception):
                    drop_pg_schema(s.pg_dsn, keyspace)
            cluster.shutdown()
            with contextlib.suppress(Exception):  # best-effort cleanup
                delete_topics(s.kafka_bootstrap, sorted({p.topic for p in loaded.values()}))
            shutil.rmtree(workdir, ignore_errors=True)
    medians = summarise(reps)
    return {
        "benchmark": "pipeline",
        "date": now_iso(),
        "machine": machine_info(s),
        "parameters": {
            "repeats": REPEATS,
            "events": N_EVENTS,
            "events_with_set": N_SET_EVENTS,
            "rows": ROWS,
            "mix": "70% insert / 20% partial update / 10% row delete",
            "worker_batch_size": BATCH,
            "kafka_rates_per_s": list(KAFKA_RATES),
            "cql_rates_per_s": list(CQL_RATES),
            "step_s": latency.STEP_S,
            "checkpoint_poll_ms": POLL_S * 1000,
        },
        "preload": {name: p.load for name, p in loaded.items()},
        "medians": medians,
        "targets": targets(medians),
        "repetitions": reps,
    }


# --- summary --------------------------------------------------------------------------------------------


def compare_variants(
    s: Settings, case: Case, keyspace: str, variants: dict[str, dict[str, str] | None], repeats: int
) -> list[dict[str, Any]]:
    """Pre-load ``case``'s topic once, then per repetition run each variant's workers (their extra
    environment) over it, in rotating order, each on a fresh mirror; every repetition's figures. Drops the
    keyspace, the mirror and the topic afterwards."""
    import contextlib
    import shutil
    import tempfile

    from cassandra.cluster import Cluster

    from app.testing import delete_topics

    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{case.name}-"))
    reps: list[dict[str, Any]] = []
    cluster = Cluster([s.host], port=s.cassandra_port, connect_timeout=10)
    session = cluster.connect()
    session.default_timeout = 60
    loaded = None
    try:
        print("  creating the keyspace and pre-loading the topic ...", flush=True)
        loaded = load_case(s, session, keyspace, case)
        names = list(variants)
        for i in range(repeats):
            order = names[i % len(names) :] + names[: i % len(names)]
            rep: dict[str, Any] = {"order": order}
            for name in order:
                print(f"  repetition {i + 1} of {repeats}: {name} ...", flush=True)
                rep[name] = throughput(s, case, loaded, workdir, variants[name])
                print(f"    {rep[name]['events_per_s']} events/s", flush=True)
            reps.append(rep)
    finally:
        with contextlib.suppress(Exception):
            session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
        with contextlib.suppress(Exception):
            drop_pg_schema(s.pg_dsn, keyspace)
        cluster.shutdown()
        if loaded is not None:
            with contextlib.suppress(Exception):
                delete_topics(s.kafka_bootstrap, [loaded.topic])
        shutil.rmtree(workdir, ignore_errors=True)
    return reps


def variant_rows(
    title: str, names: Sequence[str], medians: dict[str, Any], reps: Sequence[dict[str, Any]]
) -> list[str]:
    """The Markdown table of :func:`compare_variants`' results: per variant the median, each repetition's
    events/s and the worker's CPU."""
    lines = [
        f"| {title} | median events/s | each repetition | worker CPU % (each) |",
        "|---|---|---|---|",
    ]
    for name in names:
        each = ", ".join(str(r[name]["events_per_s"]) for r in reps)
        cpu = ", ".join(str(r[name].get("worker_cpu_pct")) for r in reps)
        lines.append(f"| {name} | {medians[f'{name}_events_per_s']} | {each} | {cpu} |")
    return lines


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 3) if present else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def summarise(reps: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the repetitions; ratios are taken per repetition (same moment), then their median."""
    thr = {
        c.name: {
            "events_per_s": _median([r["throughput"][c.name]["events_per_s"] for r in reps]),
            "all_events_per_s": [r["throughput"][c.name]["events_per_s"] for r in reps],
            "peak_rss_mb": max(r["throughput"][c.name]["peak_rss_mb"] for r in reps),
            "worker_cpu_pct": _median([r["throughput"][c.name].get("worker_cpu_pct") for r in reps]),
            "postgres_cpu_pct": _median([r["throughput"][c.name].get("postgres_cpu_pct") for r in reps]),
        }
        for c in CASES
    }

    def per_rep(a: str, b: str) -> float | None:
        return _median(
            [_ratio(r["throughput"][a]["events_per_s"], r["throughput"][b]["events_per_s"]) for r in reps]
        )

    raw = [r["raw_loop"]["events_per_s"] for r in reps]
    return {
        "throughput": thr,
        "raw_loop_events_per_s": _median(raw),
        "worker_to_raw_ratio": _median(
            [_ratio(r["throughput"]["scalar"]["events_per_s"], r["raw_loop"]["events_per_s"]) for r in reps]
        ),
        "collection_to_scalar_ratio": per_rep("with_set", "scalar"),
        "wide_to_scalar_ratio": per_rep("wide", "scalar"),
        "two_to_one_worker_ratio": per_rep("four_partitions_2w", "four_partitions_1w"),
        "kafka_p95_ms": {
            str(rate): _median([_step(r, "kafka", rate)["kafka_to_pg_ms"]["p95"] for r in reps])
            for rate in KAFKA_RATES
        },
        "cassandra_p95_ms": {
            str(rate): _median([_step(r, "cassandra", rate)["cassandra_to_pg_ms"]["p95"] for r in reps])
            for rate in CQL_RATES
        },
        "capture_p95_ms": {
            str(rate): _median([_step(r, "cassandra", rate)["capture_ms"]["p95"] for r in reps])
            for rate in CQL_RATES
        },
        "peak_rss_mb": max(
            max(c["peak_rss_mb"] for c in thr.values()), max(r["latency"]["peak_rss_mb"] or 0 for r in reps)
        ),
        "stages_s": _stage_medians(reps),
    }


def _step(rep: dict[str, Any], kind: str, rate: int) -> dict[str, Any]:
    return next(step for step in rep["latency"][kind] if step["rate"] == rate)


def _stage_medians(reps: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    stages = sorted({k for r in reps for k in r["throughput"]["scalar"]["stages_s"]})
    return {k: _median([r["throughput"]["scalar"]["stages_s"].get(k) for r in reps]) for k in stages}


def _verdict(value: float | None, target: float, higher_is_better: bool) -> dict[str, Any]:
    if value is None:
        return {"value": None, "target": target, "met": False, "ratio_to_target": None}
    met = value >= target if higher_is_better else value <= target
    return {"value": value, "target": target, "met": met, "ratio_to_target": round(value / target, 2)}


def targets(m: dict[str, Any]) -> dict[str, Any]:
    measured = {
        "throughput_events_per_s": m["throughput"]["scalar"]["events_per_s"],
        "prepopulated_events_per_s": m["throughput"]["prepopulated"]["events_per_s"],
        "worker_to_raw_ratio": m["worker_to_raw_ratio"],
        "collection_to_scalar_ratio": m["collection_to_scalar_ratio"],
        "kafka_to_pg_p95_ms_at_5000": m["kafka_p95_ms"]["5000"],
        "cassandra_to_pg_p95_ms_at_1000": m["cassandra_p95_ms"]["1000"],
        "rss_mb": m["peak_rss_mb"],
    }
    return {k: _verdict(measured[k], *TARGETS[k]) for k in TARGETS}


# --- report ---------------------------------------------------------------------------------------------

NAMES = {
    "throughput_events_per_s": "one worker, scalar table, events/s",
    "prepopulated_events_per_s": "one worker, pre-populated mirror, events/s",
    "worker_to_raw_ratio": "worker / raw loop",
    "collection_to_scalar_ratio": "table with a collection / scalar",
    "kafka_to_pg_p95_ms_at_5000": "Kafka -> PostgreSQL p95 at 5,000 events/s, ms",
    "cassandra_to_pg_p95_ms_at_1000": "Cassandra -> PostgreSQL p95 at 1,000 writes/s, ms",
    "rss_mb": "peak RSS of a worker (VmHWM), MB",
}


def _ms(x: dict[str, Any]) -> str:
    return f"{x['p50']} / {x['p95']} / {x['p99']}"


def markdown(result: dict[str, Any]) -> str:
    m, reps = result["medians"], result["repetitions"]
    lines = header(result)
    lines += [f"Medians of {len(reps)} repetitions in one run (every repetition in pipeline.json).", ""]
    lines += ["## Targets", "", "| figure | median | target | verdict |", "|---|---|---|---|"]
    for key, v in result["targets"].items():
        op = ">=" if TARGETS[key][1] else "<="
        verdict = "met" if v["met"] else f"NOT met ({v['ratio_to_target']}x of target)"
        lines.append(f"| {NAMES[key]} | {v['value']} | {op} {v['target']} | {verdict} |")
    lines += [
        "",
        "## Throughput",
        "",
        "Steady events/s = events committed after the first commit (on the pre-populated mirror: after the "
        "initial inserts) / time to the last commit. CPU in % of one core over the same window.",
        "",
        "| case | median events/s | each repetition | vs scalar | worker CPU % | PostgreSQL CPU % | peak RSS MB |",
        "|---|---|---|---|---|---|---|",
    ]
    scalar = m["throughput"]["scalar"]["events_per_s"]
    for case in CASES:
        t = m["throughput"][case.name]
        lines.append(
            f"| {case.label} | {t['events_per_s']} | {', '.join(str(x) for x in t['all_events_per_s'])} | "
            f"{_ratio(t['events_per_s'], scalar)} | {t['worker_cpu_pct']} | {t['postgres_cpu_pct']} | "
            f"{t['peak_rss_mb']} |"
        )
    raw = [r["raw_loop"]["events_per_s"] for r in reps]
    lines += [
        f"| raw loop (aiokafka + orjson + COPY, no semantics) | {m['raw_loop_events_per_s']} | "
        f"{', '.join(str(x) for x in raw)} | - | - | - | - |",
        "",
        f"Ratios (per repetition, median): worker / raw loop {m['worker_to_raw_ratio']}; set<text> / scalar "
        f"{m['collection_to_scalar_ratio']}; 16 columns / scalar {m['wide_to_scalar_ratio']}; 2 workers / 1 "
        f"worker over 4 partitions {m['two_to_one_worker_ratio']}.",
        "",
        *_stage_lines(m, scalar),
        *_latency_lines(m, reps),
    ]
    return "\n".join(lines)


def _stage_lines(m: dict[str, Any], scalar: float | None) -> list[str]:
    stages = m["stages_s"]
    total = sum(v for v in stages.values() if v)
    if not total:
        return []
    lines = [
        "## Where a batch's time goes (scalar case, the worker's `cdc_batch_stage_seconds`)",
        "",
        "| stage | s | % of staged time |",
        "|---|---|---|",
    ]
    lines += [f"| {k} | {v} | {round(100 * (v or 0) / total, 1)} |" for k, v in stages.items()]
    return [*lines, ""]


def _latency_lines(m: dict[str, Any], reps: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        "## Kafka -> PostgreSQL latency (worker caught up, synthetic events at a fixed rate)",
        "",
        "Commit time (first checkpoint poll showing the offset) - LogAppendTime, ms.",
        "",
        "| rate/s | median p95 | each repetition: achieved/s, p50 / p95 / p99 |",
        "|---|---|---|",
    ]
    for rate in KAFKA_RATES:
        steps = [_step(r, "kafka", rate) for r in reps]
        each = "; ".join(f"{s['achieved_rate']}/s, {_ms(s['kafka_to_pg_ms'])}" for s in steps)
        lines.append(f"| {rate} | {m['kafka_p95_ms'][str(rate)]} | {each} |")
    lines += [
        "",
        "## Cassandra -> PostgreSQL latency (real CQL writes through the Debezium agent and the worker)",
        "",
        "Total = commit time - `source.ts_us`; capture = LogAppendTime - `source.ts_us` (the agent's share); "
        "duplicates = events the agent published twice (same write time and key).",
        "",
        "| writes/s | median total p95 | median capture p95 | each repetition: achieved/s, events (duplicates), "
        "total p50 / p95 / p99, capture p95 |",
        "|---|---|---|---|",
    ]
    for rate in CQL_RATES:
        steps = [_step(r, "cassandra", rate) for r in reps]
        each = "; ".join(
            f"{s['achieved_rate']}/s, {s['events_seen']} ({s['agent_duplicates']}), "
            f"{_ms(s['cassandra_to_pg_ms'])}, {s['capture_ms']['p95']}"
            for s in steps
        )
        lines.append(
            f"| {rate} | {m['cassandra_p95_ms'][str(rate)]} | {m['capture_p95_ms'][str(rate)]} | {each} |"
        )
    return [*lines, ""]
