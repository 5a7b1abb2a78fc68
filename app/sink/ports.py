"""The small protocols the applier talks to, so it can be driven by fakes in unit tests (like httpx's
transports): a connection source, the table registry, the collection read-back and the offset/dead-letter
ledger. Production implementations: :class:`psycopg_pool.ConnectionPool`,
:class:`app.sink.registry.TableRegistry`, :class:`app.sink.readback.ReadBackReader` and
:class:`app.sink.ledger.PostgresLedger`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from models.batch import TP, DeadLetter
from models.convergence import PartitionTombstones, ReadBack, RowState
from models.merge_plan import Needs, Plan
from models.mutations import Key
from models.table_schema import TableSchema

if TYPE_CHECKING:
    from psycopg import Connection

    from app.sink.checkpoints import Claim
    from app.sink.registry import TableEntry


class RowStore(Protocol):
    """State of one mirror table: load what a batch touches, write what it changed
    (:class:`app.sink.store.MirrorStore`)."""

    def load(
        self, conn: Connection[Any], needs: Needs
    ) -> tuple[dict[Key, RowState], dict[Key, PartitionTombstones]]: ...

    def write(self, conn: Connection[Any], plan: Plan, now_us: int) -> None: ...

    def expired(self, conn: Connection[Any], now_us: int, limit: int) -> dict[Key, RowState]: ...

    def purge(self, conn: Connection[Any], grace_s: int) -> int: ...


class ConnectionSource(Protocol):
    """Lends a connection for one unit of work (``psycopg_pool.ConnectionPool.connection``)."""

    def connection(self) -> AbstractContextManager[Connection[Any]]: ...


class TableResolver(Protocol):
    """Cassandra schema and mirror store of a replicated table."""

    def resolve(self, keyspace: str, table: str) -> TableEntry: ...

    def refresh(self, keyspace: str, table: str, types: bool = False) -> TableEntry: ...

    def current(self, keyspace: str, table: str) -> TableEntry: ...

    def quarantined(self) -> dict[tuple[str, str], str]: ...


class CollectionReader(Protocol):
    """Reads cells back from Cassandra: non-frozen collections, and the cells of a tie between transformed
    values."""

    def read(
        self, schema: TableSchema, keys: Sequence[Key], columns: Sequence[str] | None = None
    ) -> dict[Key, dict[str, ReadBack]]:
        """``columns`` (default: the hint columns) of each row: value, write time, expiry."""
        ...


class Ledger(Protocol):
    """Offsets with fencing and dead letters, written inside the batch's transaction."""

    def claim(self, conn: Connection[Any], group_id: str, partitions: Iterable[TP]) -> dict[TP, Claim]: ...

    def advance(
        self,
        conn: Connection[Any],
        group_id: str,
        offsets: Mapping[TP, int],
        generations: Mapping[TP, int],
        events: Mapping[TP, int],
    ) -> None: ...

    def record_dead_letters(self, conn: Connection[Any], letters: Sequence[DeadLetter]) -> list[int]: ...

    def lock_partitions(self, conn: Connection[Any], keys: Sequence[int]) -> None:
        """Hold these advisory locks (ascending keys) until the transaction ends."""
        ...
