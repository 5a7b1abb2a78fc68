"""The Murmur3 token ring as ranges, for reconciliation (pure).

Cassandra's Murmur3Partitioner gives every partition key a token in ``[-2^63 + 1, 2^63 - 1]`` (``-2^63`` is
the ring's minimum, which no key has). A range ``(start, end]`` holds the tokens ``start < t <= end``; the
CQL predicate is ``token(pk) > start AND token(pk) <= end``, and on the mirror ``_cdc_token > start AND
_cdc_token <= end``.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_TOKEN = -(2**63)
MAX_TOKEN = 2**63 - 1


@dataclass(frozen=True, order=True)
class TokenRange:
    start: int
    """Exclusive."""
    end: int
    """Inclusive."""

    def __post_init__(self) -> None:
        if not MIN_TOKEN <= self.start < self.end <= MAX_TOKEN:
            raise ValueError(f"not a token range: ({self.start}, {self.end}]")

    @property
    def width(self) -> int:
        return self.end - self.start

    def contains(self, token: int) -> bool:
        return self.start < token <= self.end

    def halves(self) -> tuple[TokenRange, TokenRange]:
        """The two halves (the first may be the wider by one); a range of width 1 cannot be split."""
        if self.width < 2:
            raise ValueError(f"({self.start}, {self.end}] holds one token: it cannot be split")
        mid = self.start + self.width // 2
        return TokenRange(self.start, mid), TokenRange(mid, self.end)

    def as_list(self) -> list[int]:
        return [self.start, self.end]


FULL_RING = TokenRange(MIN_TOKEN, MAX_TOKEN)


def split(count: int, ring: TokenRange = FULL_RING) -> list[TokenRange]:
    """``count`` contiguous ranges covering ``ring`` exactly, in token order, widths differing by at most 1."""
    if count < 1:
        raise ValueError("count: at least 1")
    count = min(count, ring.width)
    base, extra = divmod(ring.width, count)
    ranges, start = [], ring.start
    for i in range(count):
        end = start + base + (1 if i < extra else 0)
        ranges.append(TokenRange(start, end))
        start = end
    return ranges


def of(token: int, ranges: list[TokenRange]) -> int:
    """The index of the range holding ``token`` in sorted contiguous ``ranges`` (binary search)."""
    lo, hi = 0, len(ranges) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        r = ranges[mid]
        if token <= r.start:
            hi = mid - 1
        elif token > r.end:
            lo = mid + 1
        else:
            return mid
    raise ValueError(f"token {token} lies outside the ranges")
