"""Dead letters and their replay, as data: statuses, modes, filters, durations and pacing (pure).

A dead letter (``_cdc_dlq_records``) is ``pending`` when recorded. A replay job claims the records its filter
matches (``replaying``), applies each through the stream's own path and ends it ``replayed`` (in the same
transaction as its effect) or ``failed`` (new reason, ``retry_count`` + 1). An operator can close one by
hand: ``resolved`` (fixed elsewhere) or ``ignored``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

STATUSES = ("pending", "replaying", "replayed", "resolved", "ignored", "failed")
REPLAYABLE = ("pending", "failed")
"""What a replay takes unless its filter names statuses."""
CLOSED = ("replayed", "resolved", "ignored")
"""Statuses a purge removes unless told otherwise (nothing still to act on)."""
JOB_STATUSES = ("scheduled", "running", "done", "failed", "cancelled")


class Mode(StrEnum):
    IMMEDIATE = "immediate"
    SCHEDULED = "scheduled"
    RATE_LIMITED = "rate-limited"


class FilterError(ValueError):
    """A filter or replay request that cannot be run; the message names the field."""


@dataclass(frozen=True)
class DlqFilter:
    """Which dead letters an operation selects; every field narrows it (empty: no narrowing)."""

    ids: tuple[int, ...] = ()
    table: str | None = None
    """``keyspace.table`` (matched on the origin topic ``<prefix>.<keyspace>.<table>``)."""
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    statuses: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [s for s in self.statuses if s not in STATUSES]
        if unknown:
            raise FilterError(f"status: unknown {', '.join(unknown)} (one of {', '.join(STATUSES)})")
        if self.table is not None and "." not in self.table:
            raise FilterError("table: use keyspace.table")
        if self.since and self.until and self.since > self.until:
            raise FilterError("since: later than until")

    def with_default_statuses(self, statuses: tuple[str, ...]) -> DlqFilter:
        return self if self.statuses else DlqFilter(**{**self.__dict__, "statuses": statuses})

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (stored with each replay job; stable keys)."""
        body = asdict(self)
        body["ids"] = list(self.ids)
        body["statuses"] = list(self.statuses)
        for name in ("since", "until"):
            value = body[name]
            body[name] = value.isoformat() if value is not None else None
        return body

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> DlqFilter:
        """The inverse of :meth:`as_dict`, validating (an API request body uses the same shape)."""
        known = {"ids", "table", "reason", "since", "until", "statuses"}
        extra = sorted(set(body) - known)
        if extra:
            raise FilterError(f"{extra[0]}: unknown filter field (known: {', '.join(sorted(known))})")
        try:
            return cls(
                ids=tuple(int(i) for i in body.get("ids") or ()),
                table=body.get("table"),
                reason=body.get("reason"),
                since=_when(body.get("since"), "since"),
                until=_when(body.get("until"), "until"),
                statuses=tuple(body.get("statuses") or ()),
            )
        except (TypeError, ValueError) as error:
            if isinstance(error, FilterError):
                raise
            raise FilterError(f"ids: {error}") from None


def _when(value: Any, name: str) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise FilterError(f"{name}: not an ISO-8601 time: {value!r}") from None
    if parsed.tzinfo is None:
        raise FilterError(f"{name}: give a time zone (e.g. {value}Z or +00:00)")
    return parsed


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``"30d"``, ``"12h"``, ``"90s"``, ``"2w"`` -> timedelta; raises ValueError naming the format."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30d, 12h, 15m, 90s)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


@dataclass(frozen=True)
class ReplayRequest:
    """A replay as asked (CLI or API), validated: mode, its rate or time, and the filter."""

    filter: DlqFilter = field(default_factory=DlqFilter)
    mode: Mode = Mode.IMMEDIATE
    rate: float | None = None
    """Records per second (``rate-limited``; optional cap for the others)."""
    at: datetime | None = None
    """When a ``scheduled`` replay starts."""

    def __post_init__(self) -> None:
        if self.mode is Mode.SCHEDULED and self.at is None:
            raise FilterError("at: a scheduled replay needs a time")
        if self.mode is not Mode.SCHEDULED and self.at is not None:
            raise FilterError("at: only a scheduled replay has a time (mode scheduled)")
        if self.mode is Mode.RATE_LIMITED and self.rate is None:
            raise FilterError("rate: a rate-limited replay needs records per second")
        if self.rate is not None and self.rate <= 0:
            raise FilterError("rate: must be > 0 records per second")


def chunk_size(rate: float | None, largest: int = 200) -> int:
    """Records per replay transaction: at most ``largest``, and about a tenth of a second's worth when
    rate-limited (so the pace is smooth)."""
    if rate is None:
        return largest
    return max(1, min(largest, int(rate / 10)))


def pause_for(done: int, rate: float | None, elapsed_s: float) -> float:
    """How long to wait before the next chunk so that ``done`` records took at least ``done / rate`` s."""
    if rate is None:
        return 0.0
    return max(0.0, done / rate - elapsed_s)


def eta_s(done: int, total: int, elapsed_s: float) -> float | None:
    """Seconds left at the pace so far (None before anything is done)."""
    if done <= 0 or elapsed_s <= 0:
        return None
    return max(0.0, (total - done) * elapsed_s / done)


def topic_of(table: str, prefix: str) -> str:
    """The change topic of ``keyspace.table``."""
    return f"{prefix}.{table}"


def parse_when(text: str, now: datetime) -> datetime:
    """An ISO-8601 time with a zone, or a duration ago (``"2h"``: two hours before ``now``)."""
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    when = _when(text, "time")
    assert when is not None
    return when


def decoded(payload: bytes | None) -> Any:
    """A payload as a person reads it: JSON when it is JSON, else text, else hex (pure)."""
    import orjson

    if payload is None:
        return None
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        pass
    try:
        return payload.decode()
    except UnicodeDecodeError:
        return {"hex": payload.hex()}
