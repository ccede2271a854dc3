"""Per-worker counters, the Python counterpart of the kernel's per-CPU stats.

Each worker (the one process or thread that runs a datapath's receive loop;
with PACKET_FANOUT there are several processes) writes only its own row; a
reader sums the rows.  Rows are any mutable sequence of ints: a ``list`` in a
single process, or a ``memoryview`` cast to ``'Q'`` over shared memory when
several worker processes share one set of counters.
"""

from __future__ import annotations

from collections.abc import Callable, MutableSequence, Sequence

_current_worker = 0


def smp_processor_id() -> int:
    """The worker id of the running process (0 unless set)."""
    return _current_worker


def set_worker(worker: int) -> None:
    """Declare which worker this process is (called once at worker start)."""
    global _current_worker
    _current_worker = worker


#: Allocates the rows for a new set of counters: (n_fields, n_workers) -> rows.
RowAllocator = Callable[[int, int], Sequence[MutableSequence[int]]]


def list_rows(n_fields: int, n_workers: int) -> list[MutableSequence[int]]:
    return [[0] * n_fields for _ in range(n_workers)]


_allocator: RowAllocator = list_rows
_n_workers = 1


def configure(n_workers: int, allocator: RowAllocator | None = None) -> None:
    """Set how many workers new counters have and where rows live.  Counters
    created before this call keep their shape."""
    global _allocator, _n_workers
    if n_workers < 1:
        raise ValueError("n_workers must be >= 1")
    _n_workers = n_workers
    _allocator = allocator or list_rows


class PcpuCounters:
    """A fixed set of named u64 counters, one row per worker."""

    __slots__ = ("fields", "rows")

    def __init__(self, fields: Sequence[str]) -> None:
        self.fields = tuple(fields)
        self.rows = _allocator(len(self.fields), _n_workers)

    def this_cpu(self) -> MutableSequence[int]:
        """The row the running worker may write."""
        return self.rows[_current_worker]

    def read(self) -> dict[str, int]:
        """Sum over all workers."""
        totals = [0] * len(self.fields)
        for row in self.rows:
            for i, v in enumerate(row):
                totals[i] += v
        return dict(zip(self.fields, totals, strict=True))

    def clear(self) -> None:
        for row in self.rows:
            for i in range(len(row)):
                row[i] = 0
