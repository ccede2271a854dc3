"""Per-worker counters, the Python counterpart of the kernel's per-CPU stats.

Each worker (the one process or thread that runs a datapath's receive loop;
with PACKET_FANOUT there are several processes) writes only its own row; a
reader sums the rows.  Rows are any mutable sequence of ints: a ``list`` in a
single process, or a ``memoryview`` cast to ``'Q'`` over shared memory when
several worker processes share one set of counters.

:class:`SharedArena` is that shared memory: one anonymous ``MAP_SHARED``
mapping made before the worker processes are forked, so every process sees
the same pages.  The process that owns the configuration allocates a slot per
set of counters (:meth:`SharedArena.alloc`, usable as the allocator of
:func:`configure`) and tells the workers its offset; a worker points its copy
of the counters at the same slot (:meth:`SharedArena.rows_at`).  Reading sums
the rows without any message between processes.
"""

from __future__ import annotations

import logging
import mmap
from collections.abc import Callable, MutableSequence, Sequence
from typing import cast

log = logging.getLogger(__name__)

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


def n_workers() -> int:
    """How many rows new counters get."""
    return _n_workers


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


# ---------------------------------------------------------------------------
# Shared memory for several worker processes

#: default size of a :class:`SharedArena` (address space; pages are only
#: committed when a slot is first used)
DEFAULT_ARENA_BYTES = 8 << 20


class SharedRowList(list[MutableSequence[int]]):
    """The rows of one set of counters in a :class:`SharedArena`; each row is
    a ``memoryview`` of u64.  ``offset`` (in u64 words) names the slot in
    every process that maps the arena."""

    __slots__ = ("n_fields", "offset")

    def __init__(self, rows: Sequence[MutableSequence[int]], offset: int, n_fields: int) -> None:
        super().__init__(rows)
        self.offset = offset
        self.n_fields = n_fields


class ArenaFull(MemoryError):
    """No room left for another set of counters."""


class SharedArena:
    """Counter slots in one anonymous shared mapping, ``n_rows`` rows each.

    Create it before forking; afterwards only one process (the owner of the
    configuration) may :meth:`alloc` and :meth:`free` -- the others only map
    slots at offsets they are told (:meth:`rows_at`).  A freed slot may still
    be written by a worker that has not yet applied the deletion, so it is
    reused only after :meth:`release` says every worker is past that point
    (``epoch``: any number that grows, e.g. a message sequence number)."""

    def __init__(self, n_rows: int, size: int = DEFAULT_ARENA_BYTES) -> None:
        if n_rows < 1:
            raise ValueError("n_rows must be >= 1")
        self.n_rows = n_rows
        self.size = size - size % 8
        self.mm = mmap.mmap(-1, self.size)  # MAP_SHARED | MAP_ANONYMOUS
        self.words = memoryview(self.mm).cast("Q")
        self._next = 0
        self._free: dict[int, list[int]] = {}
        self._quarantine: list[tuple[int, int, int]] = []
        self._tracked: list[SharedRowList] | None = None
        #: offsets freed (in quarantine or reusable): freeing twice is a no-op
        self._freed: set[int] = set()
        #: slots in use
        self.n_slots = 0

    def alloc(self, n_fields: int, n_rows: int | None = None) -> SharedRowList:
        """A zeroed slot for ``n_fields`` counters (a :data:`RowAllocator`;
        ``n_rows`` must be the arena's).  :class:`ArenaFull` when exhausted."""
        if n_rows is not None and n_rows != self.n_rows:
            raise ValueError(f"this arena has {self.n_rows} rows per slot, not {n_rows}")
        words = n_fields * self.n_rows
        free = self._free.get(words)
        if free:
            off = free.pop()
            self._freed.discard(off)
            self.words[off : off + words] = memoryview(bytes(8 * words)).cast("Q")
        else:
            if self._next + words > len(self.words):
                raise ArenaFull(f"shared counter arena full ({self.size} bytes)")
            off = self._next
            self._next += words
        self.n_slots += 1
        rows = self.rows_at(off, n_fields)
        if self._tracked is not None:
            self._tracked.append(rows)
        return rows

    def track(self) -> None:
        """Remember the slots allocated from now on (:meth:`untrack`)."""
        self._tracked = []

    def untrack(self) -> list[SharedRowList]:
        """The slots allocated since :meth:`track`; stop remembering."""
        got, self._tracked = self._tracked or [], None
        return got

    def rows_at(self, offset: int, n_fields: int) -> SharedRowList:
        """The rows of the slot at ``offset`` (as another process allocated it)."""
        if offset < 0 or offset + n_fields * self.n_rows > len(self.words):
            raise ValueError(f"slot {offset}+{n_fields}x{self.n_rows} outside the arena")
        w = self.words
        rows = [
            cast(MutableSequence[int], w[offset + r * n_fields : offset + (r + 1) * n_fields])
            for r in range(self.n_rows)
        ]
        return SharedRowList(rows, offset, n_fields)

    def free(self, rows: Sequence[MutableSequence[int]], epoch: int) -> None:
        """Give a slot back; reusable once :meth:`release` reaches ``epoch``.
        Rows that are not from this arena are ignored."""
        if isinstance(rows, SharedRowList) and rows.offset not in self._freed:
            self._freed.add(rows.offset)
            self._quarantine.append((epoch, rows.offset, rows.n_fields * self.n_rows))
            self.n_slots -= 1

    def release(self, epoch: int) -> int:
        """Every process is past ``epoch``: slots freed up to it become
        reusable.  Returns how many."""
        keep: list[tuple[int, int, int]] = []
        n = 0
        for e, off, words in self._quarantine:
            if e <= epoch:
                self._free.setdefault(words, []).append(off)
                n += 1
            else:
                keep.append((e, off, words))
        self._quarantine = keep
        return n


def allocator_with_fallback(arena: SharedArena) -> RowAllocator:
    """:meth:`SharedArena.alloc`, or private ``list`` rows (with a warning)
    when the arena is full -- the counters then only show what this process
    counts."""

    def alloc(n_fields: int, n_rows: int) -> Sequence[MutableSequence[int]]:
        try:
            return arena.alloc(n_fields, n_rows)
        except ArenaFull as e:
            log.warning("%s: counters of a new port or datapath are not shared", e)
            return list_rows(n_fields, n_rows)

    return alloc
