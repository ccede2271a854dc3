"""The megaflow table (the kernel's ``net/openvswitch/flow_table.c``).

* A flow is a masked key + mask + actions (+ UFID) + stats.  Masks are
  de-duplicated and reference counted; each mask owns a dict
  ``masked key -> flow`` (the kernel's hash table restricted to one mask).
* Lookup is tuple-space search over the mask array in array order, fronted by
  the per-worker **mask cache** indexed by packet hash, exactly as
  ``ovs_flow_tbl_lookup_stats`` does it (4 hash segments of 8 bits, the
  replacement candidate is the probed entry with the smallest stored hash,
  recirculated packets mix ``recirc_id`` into the hash), counting masks probed
  (``n_mask_hit``) and cached-index hits (``n_cache_hit``).
* Masks are re-ordered by usage every 4 s (``ovs_flow_masks_rebalance``); a
  deleted mask's slot is filled with the last mask.
* In front of all this sits an exact-match cache ``key -> flow`` (like
  dpif-netdev's EMC).  Any change to the table empties it, so it never
  answers differently from the megaflow lookup it caches.  An EMC hit counts
  as one mask probed through the cache (``n_mask_hit`` and ``n_cache_hit``
  +1), which is what the kernel counts for a warm mask-cache hit.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Final

from .errors import FlowError
from .flow import FIELDS
from .jhash import jhash_1word
from .uapi import Action, FlowStats

if TYPE_CHECKING:
    from collections.abc import Callable

MC_DEFAULT_HASH_ENTRIES: Final = 256
MC_HASH_SHIFT: Final = 8
MC_HASH_SEGS: Final = 32 // MC_HASH_SHIFT
MASK_ARRAY_SIZE_MIN: Final = 16
REBALANCE_INTERVAL: Final = 4.0  # DP_MASKS_REBALANCE_INTERVAL, seconds
EMC_DEFAULT_ENTRIES: Final = 8192

_RECIRC_SHIFT: Final = FIELDS["recirc_id"][0]
_RECIRC_MASK: Final = 0xFFFFFFFF << _RECIRC_SHIFT

# Flow stats row indexes
F_PACKETS, F_BYTES, F_USED, F_TCP_FLAGS = range(4)


def _range_mask(mask: int) -> int:
    """All ones over the mask's range rounded out to 64-bit words (the kernel's
    ``sw_flow_key_range`` rounded to longs)."""
    if not mask:
        return 0
    lo = ((mask & -mask).bit_length() - 1) & ~63
    hi = (mask.bit_length() + 63) & ~63
    return ((1 << hi) - 1) & ~((1 << lo) - 1)


class Mask:
    """``struct sw_flow_mask``: a key-shaped mask shared by flows."""

    __slots__ = ("flows", "key", "range", "ref_count")

    def __init__(self, key: int) -> None:
        self.key = key
        self.range = _range_mask(key)
        self.ref_count = 0
        #: masked key -> flow (the kernel's table instance restricted to this mask)
        self.flows: dict[int, Flow] = {}

    def __repr__(self) -> str:
        return f"<Mask {self.key:#x} refs={self.ref_count} flows={len(self.flows)}>"


class Flow:
    """``struct sw_flow``."""

    __slots__ = (
        "actions",
        "dead",
        "key",
        "mask",
        "outputs",
        "stats",
        "ufid",
        "unmasked_key",
    )

    def __init__(
        self,
        key: int,
        mask: int,
        actions: Sequence[Action],
        ufid: bytes | None = None,
    ) -> None:
        #: the masked key (what lookups compare)
        self.key = key & mask
        #: the key as given (the identifier of flows created without a UFID)
        self.unmasked_key = key
        self.mask: Mask = Mask(mask)  # replaced by the shared mask on insert
        self.ufid = ufid
        self.actions: tuple[Action, ...] = ()
        #: port numbers when the actions are outputs only (the fast path), else None
        self.outputs: tuple[int, ...] | None = None
        self.stats = [0, 0, 0, 0]  # packets, bytes, used (ms, monotonic), tcp_flags
        self.dead = False
        self.set_actions(actions)

    def set_actions(self, actions: Sequence[Action]) -> None:
        from .uapi import Output

        self.actions = tuple(actions)
        if all(type(a) is Output for a in self.actions):
            self.outputs = tuple(a.port for a in self.actions if isinstance(a, Output))
        else:
            self.outputs = None

    def get_stats(self) -> FlowStats:
        p, b, used_ms, flags = self.stats
        return FlowStats(packets=p, bytes=b, used=used_ms / 1000.0, tcp_flags=flags)

    def clear_stats(self) -> None:
        self.stats[:] = [0, 0, 0, 0]

    @property
    def mask_key(self) -> int:
        return self.mask.key

    def __repr__(self) -> str:
        return f"<Flow key={self.key:#x} mask={self.mask.key:#x} actions={self.actions}>"


def now_ms() -> int:
    return int(time.monotonic() * 1000)


class FlowTable:
    """``struct flow_table``."""

    def __init__(
        self,
        *,
        mask_cache_size: int = MC_DEFAULT_HASH_ENTRIES,
        emc_size: int = EMC_DEFAULT_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.masks: list[Mask] = []  # the mask array, in lookup order
        self.mask_capacity = MASK_ARRAY_SIZE_MIN
        self.usage: list[int] = []  # per-mask usage counters (this worker)
        self.usage_zero: list[int] = []  # counter snapshot at the last rebalance
        self.ufid_table: dict[bytes, Flow] = {}
        self.count = 0
        self.mc_hash: list[int] = []
        self.mc_index: list[int] = []
        self.set_mask_cache_size(mask_cache_size)
        #: exact-match cache: key -> (flow, the key's tcp_flags)
        self.emc: dict[int, tuple[Flow, int]] = {}
        #: per input port: raw frame window -> (EMC entry, key, min frame length)
        self.raw: dict[int, dict[int, tuple[tuple[Flow, int], int, int]]] = {}
        self.emc_size = emc_size
        self._probes: list[tuple[int, Callable[[int], Flow | None]]] = []
        self._clock = clock
        self.last_rebalance = clock()

    # -- caches ----------------------------------------------------------------

    @property
    def mask_cache_size(self) -> int:
        return len(self.mc_hash)

    def set_mask_cache_size(self, size: int) -> None:
        """``ovs_flow_tbl_masks_cache_resize``: a power of two, or 0 to disable."""
        if size < 0 or (size & (size - 1)):
            raise FlowError(f"masks-cache size {size} is not a power of 2 (or 0)")
        if size > 1 << 16:
            raise FlowError(f"masks-cache size {size} is too big (max 65536)", errno.EINVAL)
        self.mc_hash = [0] * size
        self.mc_index = [0] * size

    def emc_flush(self) -> None:
        """Empty the exact-match caches (done on every table change)."""
        self.emc.clear()
        for raw in self.raw.values():
            raw.clear()

    def raw_cache(self, port_no: int) -> dict[int, tuple[tuple[Flow, int], int, int]]:
        """The raw-window cache of one input port (see :mod:`pyvswitch.flow`,
        ``RAW_MASKS``): masked 48-byte frame window -> (EMC entry, key, the
        frame length the entry needs)."""
        raw = self.raw.get(port_no)
        if raw is None:
            raw = self.raw[port_no] = {}
        return raw

    # -- lookup ------------------------------------------------------------------

    def _rebuild_probes(self) -> None:
        """The per-mask (mask, dict.get) pairs the lookup loops over, in mask
        array order (rebuilt whenever masks are added, removed or reordered)."""
        self._probes = [(m.key, m.flows.get) for m in self.masks]

    def _flow_lookup(self, key: int, hint: int) -> tuple[Flow | None, int, int, int]:
        """``flow_lookup``: probe the hinted mask first, then all the others.
        Returns (flow, masks probed, cache hit 0/1, index of the mask that hit).

        The loop over the other masks does not skip the hinted one (probing it
        again can only miss again); the count of masks probed is computed as if
        it had been skipped, as the kernel does."""
        probes = self._probes
        n = len(probes)
        first = 0
        if hint < n:
            mk, get = probes[hint]
            f = get(key & mk)
            if f is not None:
                self.usage[hint] += 1
                return f, 1, 1, hint
            first = 1
        i = 0
        for mk, get in probes:
            f = get(key & mk)
            if f is not None:
                self.usage[i] += 1
                return f, first + i + 1 - (hint < i), 0, i
            i += 1  # noqa: SIM113 (a manual index is faster than enumerate here)
        return None, first + n - (hint < n), 0, hint

    def lookup_stats(self, key: int, skb_hash: int) -> tuple[Flow | None, int, int]:
        """``ovs_flow_tbl_lookup_stats``: (flow or None, n_mask_hit, n_cache_hit)."""
        mc_hash = self.mc_hash
        size = len(mc_hash)
        if not skb_hash or not size:
            f, probed, _hit, _i = self._flow_lookup(key, 0)
            return f, probed, 0
        if key & _RECIRC_MASK:
            skb_hash = jhash_1word(skb_hash, (key >> _RECIRC_SHIFT) & 0xFFFFFFFF)
        m = size - 1
        # The MC_HASH_SEGS (4) segments, unrolled: the entry whose stored hash
        # equals the packet's is used; otherwise the replacement candidate is the
        # first probed entry with the smallest stored hash.
        i = skb_hash & m
        e = mc_hash[i]
        if e != skb_hash:
            cand, ce = i, e
            i = (skb_hash >> 8) & m
            e = mc_hash[i]
            if e != skb_hash:
                if e < ce:
                    cand, ce = i, e
                i = (skb_hash >> 16) & m
                e = mc_hash[i]
                if e != skb_hash:
                    if e < ce:
                        cand, ce = i, e
                    i = (skb_hash >> 24) & m
                    e = mc_hash[i]
                    if e != skb_hash:
                        if e < ce:
                            cand = i
                        mc_index = self.mc_index
                        f, probed, _hit, idx = self._flow_lookup(key, mc_index[cand])
                        mc_index[cand] = idx
                        if f is not None:
                            mc_hash[cand] = skb_hash
                        return f, probed, 0
        mc_index = self.mc_index
        f, probed, hit, idx = self._flow_lookup(key, mc_index[i])
        if f is None:
            mc_hash[i] = 0
        else:
            mc_index[i] = idx
        return f, probed, hit

    def lookup(self, key: int) -> Flow | None:
        """``ovs_flow_tbl_lookup``: all masks in order, no cache, no stats."""
        for mk, get in self._probes:
            f = get(key & mk)
            if f is not None:
                return f
        return None

    def lookup_exact(self, key: int, mask: int) -> Flow | None:
        """``ovs_flow_tbl_lookup_exact``: the key-identified flow whose unmasked
        key equals ``key`` over the request mask's range."""
        rng = _range_mask(mask)
        for m in self.masks:
            f = m.flows.get(key & m.key)
            if f is not None and f.ufid is None and (f.unmasked_key & rng) == (key & rng):
                return f
        return None

    def lookup_ufid(self, ufid: bytes) -> Flow | None:
        return self.ufid_table.get(ufid)

    # -- modification ------------------------------------------------------------

    def _mask_insert(self, mask_key: int) -> Mask:
        for m in self.masks:
            if m.key == mask_key:
                m.ref_count += 1
                return m
        m = Mask(mask_key)
        m.ref_count = 1
        if len(self.masks) >= self.mask_capacity:
            self.mask_capacity += MASK_ARRAY_SIZE_MIN
        self.masks.append(m)
        self.usage.append(0)
        self.usage_zero.append(0)
        self._reset_usage()
        self._rebuild_probes()
        return m

    def _mask_remove(self, m: Mask) -> None:
        m.ref_count -= 1
        if m.ref_count > 0:
            return
        i = self.masks.index(m)
        last = len(self.masks) - 1
        # tbl_mask_array_del_mask: move the last mask into the hole.
        self.masks[i] = self.masks[last]
        self.usage[i] = self.usage[last]
        self.usage_zero[i] = self.usage_zero[last]
        del self.masks[last], self.usage[last], self.usage_zero[last]
        if (
            self.mask_capacity >= 2 * MASK_ARRAY_SIZE_MIN
            and len(self.masks) <= self.mask_capacity // 3
        ):
            self.mask_capacity //= 2
        self._reset_usage()
        self._rebuild_probes()

    def _reset_usage(self) -> None:
        self.usage_zero = list(self.usage)

    def insert(self, flow: Flow) -> None:
        """``ovs_flow_tbl_insert``."""
        m = self._mask_insert(flow.mask.key)
        flow.mask = m
        m.flows[flow.key] = flow
        if flow.ufid is not None:
            self.ufid_table[flow.ufid] = flow
        self.count += 1
        self.emc_flush()

    def remove(self, flow: Flow) -> None:
        """``ovs_flow_tbl_remove``."""
        m = flow.mask
        if m.flows.get(flow.key) is flow:
            del m.flows[flow.key]
        if flow.ufid is not None and self.ufid_table.get(flow.ufid) is flow:
            del self.ufid_table[flow.ufid]
        self.count -= 1
        flow.dead = True
        self._mask_remove(m)
        self.emc_flush()

    def flush(self) -> None:
        """``ovs_flow_tbl_flush``."""
        for f in list(self):
            f.dead = True
        self.masks.clear()
        self.usage.clear()
        self.usage_zero.clear()
        self.mask_capacity = MASK_ARRAY_SIZE_MIN
        self.ufid_table.clear()
        self.count = 0
        self.emc_flush()
        self._probes = []
        size = len(self.mc_hash)
        self.mc_hash = [0] * size
        self.mc_index = [0] * size

    def replace_actions(self, flow: Flow, actions: Sequence[Action]) -> None:
        flow.set_actions(actions)
        self.emc_flush()

    def __iter__(self) -> Iterator[Flow]:
        for m in list(self.masks):
            yield from list(m.flows.values())

    def __len__(self) -> int:
        return self.count

    # -- rebalance -----------------------------------------------------------------

    def masks_rebalance(self) -> bool:
        """``ovs_flow_masks_rebalance``: order masks by usage since the last
        rebalance, most used first.  Returns True if the order changed."""
        n = len(self.masks)
        counts = []
        for i in range(n):
            c = self.usage[i] - self.usage_zero[i]
            self.usage_zero[i] += c
            counts.append((c, i))
        if n == 0:
            return False
        order = [i for _c, i in sorted(counts, key=lambda t: -t[0])]
        if order == list(range(n)):
            return False
        self.masks = [self.masks[i] for i in order]
        self.usage = [0] * n
        self.usage_zero = [0] * n
        self._rebuild_probes()
        return True

    def maybe_rebalance(self, now: float | None = None) -> bool:
        now = self._clock() if now is None else now
        if now - self.last_rebalance < REBALANCE_INTERVAL:
            return False
        self.last_rebalance = now
        return self.masks_rebalance()
