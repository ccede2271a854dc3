"""The megaflow table: masks, mask cache, lookup stats, flow commands."""

from __future__ import annotations

import errno

import pytest

from pyvswitch import flow
from pyvswitch.errors import FlowError
from pyvswitch.flow import field_mask, key_from_fields
from pyvswitch.flow_table import MC_HASH_SEGS, Flow, FlowTable
from pyvswitch.jhash import jhash_1word
from pyvswitch.uapi import Output

M_PORT = field_mask("in_port")
M_DST = field_mask("ipv4_dst")
M_SRC = field_mask("ipv4_src")


def k(**f: int) -> int:
    return key_from_fields(**f)


def add(t: FlowTable, key: int, mask: int, port: int = 1, ufid: bytes | None = None) -> Flow:
    f = Flow(key, mask, [Output(port)], ufid)
    t.insert(f)
    return f


def test_masks_deduplicated_and_refcounted() -> None:
    t = FlowTable()
    f1 = add(t, k(in_port=1), M_PORT)
    f2 = add(t, k(in_port=2), M_PORT)
    add(t, k(ipv4_dst=5), M_DST)
    assert len(t.masks) == 2 and t.masks[0].ref_count == 2 and t.count == 3
    t.remove(f1)
    assert len(t.masks) == 2 and t.masks[0].ref_count == 1
    t.remove(f2)
    assert [m.key for m in t.masks] == [M_DST]  # the last mask moved into the hole


def test_mask_deletion_moves_last_into_hole() -> None:
    t = FlowTable()
    fa = add(t, k(in_port=1), M_PORT)
    add(t, k(ipv4_dst=1), M_DST)
    add(t, k(ipv4_src=1), M_SRC)
    t.remove(fa)
    assert [m.key for m in t.masks] == [M_SRC, M_DST]


def test_lookup_in_mask_order_counts_masks_probed() -> None:
    t = FlowTable(mask_cache_size=0)
    add(t, k(in_port=9), M_PORT, port=1)
    add(t, k(ipv4_dst=7), M_DST, port=2)
    key = k(in_port=1, ipv4_dst=7)
    f, n_mask_hit, n_cache_hit = t.lookup_stats(key, 1234)
    assert f is not None and f.actions == (Output(2),)
    assert (n_mask_hit, n_cache_hit) == (2, 0)
    f, n_mask_hit, _ = t.lookup_stats(k(in_port=3), 1234)
    assert f is None and n_mask_hit == 2


def test_mask_cache_algorithm() -> None:
    t = FlowTable()
    add(t, k(in_port=9), M_PORT)
    f2 = add(t, k(ipv4_dst=7), M_DST)
    key = k(ipv4_dst=7)
    h = 0x01020304
    # first lookup: cache miss, full search from the candidate's stale index 0
    f, probed, cached = t.lookup_stats(key, h)
    assert f is f2 and (probed, cached) == (2, 0)
    # the entry for h now points at mask 1: one probe, counted as a cache hit
    f, probed, cached = t.lookup_stats(key, h)
    assert f is f2 and (probed, cached) == (1, 1)
    # the entry sits in segment 0 (low 8 bits of the hash)
    assert t.mc_hash[h & 255] == h and t.mc_index[h & 255] == 1
    # a hash of 0 bypasses the cache
    f, probed, cached = t.lookup_stats(key, 0)
    assert f is f2 and (probed, cached) == (2, 0)
    # a miss through a cached entry invalidates it
    f, probed, cached = t.lookup_stats(k(ipv4_dst=8), h)
    assert f is None and t.mc_hash[h & 255] == 0


def test_mask_cache_replacement_candidate_smallest_hash() -> None:
    t = FlowTable(mask_cache_size=256)
    add(t, k(ipv4_dst=7), M_DST)
    key = k(ipv4_dst=7)
    # fill all 4 segment slots of hash H with other (larger) hashes
    hh = 0x11223344
    slots = [(hh >> (8 * s)) & 255 for s in range(MC_HASH_SEGS)]
    for i, s in enumerate(slots):
        t.mc_hash[s] = 0x90000000 + i
    t.mc_hash[slots[2]] = 0x00000005  # smallest -> the replacement candidate
    t.lookup_stats(key, hh)
    assert t.mc_hash[slots[2]] == hh
    assert all(t.mc_hash[s] != hh for j, s in enumerate(slots) if j != 2)


def test_recirc_id_rehashes_for_cache() -> None:
    t = FlowTable()
    add(t, k(recirc_id=5, ipv4_dst=1), field_mask("recirc_id") | M_DST)
    key = k(recirc_id=5, ipv4_dst=1)
    t.lookup_stats(key, 77)
    h = jhash_1word(77, 5)
    assert h in t.mc_hash and 77 not in t.mc_hash


def test_rebalance_orders_masks_by_usage() -> None:
    t = FlowTable(mask_cache_size=0)
    add(t, k(in_port=1), M_PORT)
    add(t, k(ipv4_dst=2), M_DST)
    add(t, k(ipv4_src=3), M_SRC)
    for _ in range(5):
        t.lookup_stats(k(ipv4_src=3), 1)
    for _ in range(3):
        t.lookup_stats(k(ipv4_dst=2), 1)
    assert t.masks_rebalance() is True
    assert [m.key for m in t.masks] == [M_SRC, M_DST, M_PORT]
    # now the busiest mask is probed first
    _, probed, _ = t.lookup_stats(k(ipv4_src=3), 1)
    assert probed == 1
    assert t.masks_rebalance() is False  # same order, nothing to do
    assert t.maybe_rebalance(now=t.last_rebalance + 1) is False


def test_overlapping_megaflows_first_mask_wins() -> None:
    t = FlowTable(mask_cache_size=0)
    add(t, k(in_port=1), M_PORT, port=10)
    add(t, k(ipv4_dst=2), M_DST, port=20)
    both = k(in_port=1, ipv4_dst=2)
    f, _, _ = t.lookup_stats(both, 5)
    assert f is not None and f.actions == (Output(10),)


def test_emc_emptied_on_any_change() -> None:
    t = FlowTable()
    f = add(t, k(in_port=1), M_PORT)
    t.emc[123] = (f, 0)
    add(t, k(in_port=2), M_PORT)
    assert not t.emc
    t.emc[123] = (f, 0)
    t.replace_actions(f, [Output(3)])
    assert not t.emc
    t.emc[123] = (f, 0)
    t.remove(f)
    assert not t.emc and f.dead


def test_mask_cache_size_validation() -> None:
    t = FlowTable()
    t.set_mask_cache_size(0)
    t.set_mask_cache_size(1024)
    with pytest.raises(FlowError):
        t.set_mask_cache_size(100)


# -- flow commands through the datapath ---------------------------------------


@pytest.fixture
def dp():  # type: ignore[no-untyped-def]
    from pyvswitch.backends.memory import MemoryWorld
    from pyvswitch.datapath import Openvswitch

    return Openvswitch().dp_new("dp0", MemoryWorld().netns("s"))


def test_put_create_modify_semantics(dp) -> None:  # type: ignore[no-untyped-def]
    key = k(in_port=1, ipv4_dst=0x0A000005)
    mask = M_PORT | (0xFFFFFF00 << flow.FIELDS["ipv4_dst"][0])
    f, old = dp.flow_put(key, mask, [Output(2)])
    assert old is None and f.key == key & mask and f.unmasked_key == key
    with pytest.raises(FlowError) as ei:  # add-flow of an existing flow
        dp.flow_put(key, mask, [Output(3)])
    assert ei.value.errno == errno.EEXIST
    f2, old = dp.flow_put(key, mask, [Output(3)], create=False, modify=True)  # mod-flow
    assert f2 is f and f.actions == (Output(3),) and old is not None
    # a colliding key under the same mask (10.0.0.7/24) is the same megaflow
    with pytest.raises(FlowError) as ei:
        dp.flow_put(k(in_port=1, ipv4_dst=0x0A000007), mask, [Output(4)])
    assert ei.value.errno == errno.EEXIST
    # mod-flow of a flow that does not exist
    with pytest.raises(FlowError) as ei:
        dp.flow_put(k(in_port=2), M_PORT, [Output(1)], create=False, modify=True)
    assert ei.value.errno == errno.ENOENT
    # --may-create
    _f3, old = dp.flow_put(k(in_port=2), M_PORT, [Output(1)], create=True, modify=True)
    assert old is None and dp.table.count == 2


def test_ufid_flows(dp) -> None:  # type: ignore[no-untyped-def]
    ufid = bytes(range(16))
    f, _ = dp.flow_put(k(in_port=1), M_PORT, [Output(2)], ufid=ufid)
    assert dp.flow_get(ufid=ufid) is f
    st = dp.flow_del(ufid=ufid)
    assert st.packets == 0 and dp.table.count == 0
    with pytest.raises(FlowError) as ei:
        dp.flow_get(ufid=ufid)
    assert ei.value.errno == errno.ENOENT


def test_get_del_by_exact_key_and_flush(dp) -> None:  # type: ignore[no-untyped-def]
    dp.flow_put(k(in_port=1), M_PORT, [Output(2)])
    dp.flow_put(k(in_port=2), M_PORT, [Output(1)])
    assert dp.flow_get(k(in_port=1), M_PORT).actions == (Output(2),)
    dp.flow_del(k(in_port=1), M_PORT)
    assert dp.table.count == 1
    dp.flow_flush()
    assert dp.table.count == 0 and dp.table.masks == []


def test_flow_stats_and_clear(dp) -> None:  # type: ignore[no-untyped-def]
    f, _ = dp.flow_put(k(in_port=1), M_PORT, [])
    f.stats[:] = [3, 300, 1000, 0x12]
    _, old = dp.flow_put(k(in_port=1), M_PORT, [Output(2)], create=False, modify=True, clear=True)
    assert old is not None and (old.packets, old.bytes, old.tcp_flags) == (3, 300, 0x12)
    assert f.get_stats().packets == 0 and f.get_stats().used == 0


def test_removed_mask_no_longer_probed() -> None:
    t = FlowTable(mask_cache_size=0)
    f1 = add(t, k(in_port=1), M_PORT)
    add(t, k(ipv4_dst=2), M_DST)
    t.remove(f1)
    f, probed, _ = t.lookup_stats(k(in_port=1, ipv4_dst=3), 0)
    assert f is None and probed == 1
    assert t.lookup(k(in_port=1)) is None


def test_key_hash_spreads_every_l3_l4_field() -> None:
    from pyvswitch.flow import key_hash

    # the mask cache indexes with each of the 4 bytes of the hash
    for field in ("ipv4_src", "ipv4_dst", "tp_src", "tp_dst", "ipv6_src", "ipv6_dst"):
        hashes = [key_hash(k(**{field: i, "ip_proto": 6})) for i in range(1024)]
        for seg in range(4):
            assert len({(h >> (8 * seg)) & 255 for h in hashes}) > 200, (field, seg)
    assert all(key_hash(k(eth_src=i)) for i in range(100))  # never zero
