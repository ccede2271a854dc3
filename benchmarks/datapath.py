"""Datapath micro-benchmarks (a script, not a test).

    python3 benchmarks/datapath.py            # all cases
    python3 benchmarks/datapath.py lookup     # extraction + lookup per packet
    python3 benchmarks/datapath.py forward    # batched in-memory forwarding

Cases (64-byte UDP frames, i.e. 60 bytes without FCS, one CPython core):

* ``raw``      -- a cached untagged IPv4 UDP packet through the raw-window
                  cache (masked frame window -> flow, no key extraction), the
                  first thing ``Datapath.process_batch`` tries;
* ``cached``   -- key extraction + lookup of a packet whose flow is cached
                  (the exact-match cache), for frames the raw cache cannot take;
* ``megaflow`` -- the same without the exact-match cache: extraction + packet
                  hash + ``ovs_flow_tbl_lookup_stats`` with a warm mask cache;
* ``masks16``  -- 16 masks x 10,000 flows, random traffic over all flows, warm
                  mask cache, exact-match cache disabled (the issue's target
                  case) and enabled;
* ``forward``  -- ``Datapath.process_batch`` on batches of 32 frames through one
                  output-only flow into a counting sink device (extraction,
                  lookup, flow and port stats, output), packets per second.

Each figure is the best of several repeats of this process's CPU time (least
disturbed by other load on the machine); ``--wall`` uses wall-clock time.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence

from pyvswitch import flow
from pyvswitch.datapath import Datapath, Openvswitch
from pyvswitch.device import ARPHRD_ETHER, DeviceStats, RxHandler
from pyvswitch.flow import field_mask, key_from_fields
from pyvswitch.flow_table import Flow, FlowTable
from pyvswitch.uapi import Output

FRAME_LEN = 60  # 64-byte Ethernet frame without the FCS

#: CPU time of this process by default (robust when other work shares the
#: machine); ``--wall`` switches to wall-clock time.
CLOCK: Callable[[], float] = time.process_time


def udp_frame(src: int, dst: int, sport: int, dport: int) -> bytes:
    """A 60-byte Ethernet/IPv4/UDP frame with valid header checksum."""
    from pyvswitch.wire.ethernet import EthernetHeader
    from pyvswitch.wire.ipv4 import IPv4Header
    from pyvswitch.wire.udp import UdpHeader

    ip = IPv4Header(src, dst, 17, ident=1)
    payload = bytes(FRAME_LEN - 14 - 20 - 8)
    udp = UdpHeader(sport, dport).emit(payload, ip=ip)
    return EthernetHeader(0x020000000002, 0x020000000001, 0x0800).emit(ip.emit(udp))


def best_ns_per_packet(fn: Callable[[], int], repeat: int = 7) -> float:
    """Run ``fn`` (returns packets processed) several times; best ns/packet."""
    best = float("inf")
    gc.collect()
    gc.disable()
    try:
        for _ in range(repeat):
            t0 = CLOCK()
            n = fn()
            dt = CLOCK() - t0
            best = min(best, dt / n * 1e9)
    finally:
        gc.enable()
    return best


# -- extraction + lookup -------------------------------------------------------


def bench_cached(n: int = 200_000) -> float:
    frame = udp_frame(0x0A000001, 0x0A000002, 1234, 80)
    t = FlowTable()
    md = flow.md_bits(1)
    key = flow.key_extract(frame, md)
    assert key is not None
    f = Flow(key, field_mask("in_port") | field_mask("ipv4_dst"), [Output(2)])
    t.insert(f)
    t.emc[key] = (f, 0)
    frames = [frame] * n
    ke = flow.key_extract
    emc_get = t.emc.get

    def run() -> int:
        hits = 0
        for d in frames:
            k = ke(d, md)
            if emc_get(k) is not None:  # type: ignore[arg-type]
                hits += 1
        assert hits == n
        return n

    return best_ns_per_packet(run)


def bench_raw(n: int = 200_000) -> float:
    """The datapath's first probe for untagged IPv4 TCP/UDP: the raw-window
    cache (masked 48-byte frame window -> flow), no key extraction."""
    frame = udp_frame(0x0A000001, 0x0A000002, 1234, 80)
    md = flow.md_bits(1)
    key = flow.key_extract(frame, md)
    assert key is not None
    f = Flow(key, field_mask("in_port") | field_mask("ipv4_dst"), [Output(2)])
    raw = {
        int.from_bytes(frame[: flow.RAW_WINDOW], "big") & flow.RAW_MASKS[frame[23]]: (
            (f, 0),
            key,
            flow.raw_min_len(frame),
        )
    }
    frames = [frame] * n
    raw_get = raw.get
    masks = flow.RAW_MASKS
    fb = int.from_bytes
    w = flow.RAW_WINDOW

    def run() -> int:
        hits = 0
        for d in frames:
            r = raw_get(fb(d[0:w], "big") & masks[d[23]])
            if r is not None and len(d) >= r[2]:
                hits += 1
        assert hits == n
        return n

    return best_ns_per_packet(run)


def bench_megaflow(n: int = 100_000) -> float:
    frame = udp_frame(0x0A000001, 0x0A000002, 1234, 80)
    t = FlowTable()
    md = flow.md_bits(1)
    key = flow.key_extract(frame, md)
    assert key is not None
    t.insert(Flow(key, field_mask("in_port") | field_mask("ipv4_dst"), [Output(2)]))
    frames = [frame] * n
    ke = flow.key_extract
    kh = flow.key_hash
    lookup = t.lookup_stats

    def run() -> int:
        for d in frames:
            k = ke(d, md)
            f, _m, _c = lookup(k, kh(k))  # type: ignore[arg-type]
            assert f is not None
        return n

    return best_ns_per_packet(run)


def sixteen_masks() -> list[int]:
    """16 distinct realistic megaflow masks: every one matches in_port,
    eth_type, frag, ip proto and the UDP destination port, plus a different
    combination of destination prefix (/32, /24, /16, /8) and source prefix
    (none, /32, /24, /16)."""
    base = (
        field_mask("in_port")
        | field_mask("eth_type")
        | field_mask("ip_frag")
        | field_mask("ip_proto")
        | field_mask("tp_dst")
    )
    dst_shift = flow.FIELDS["ipv4_dst"][0]
    src_shift = flow.FIELDS["ipv4_src"][0]

    def prefix(plen: int, shift: int) -> int:
        return ((0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF) << shift if plen else 0

    masks = [
        base | prefix(d, dst_shift) | prefix(s, src_shift)
        for d in (32, 24, 16, 8)
        for s in (0, 32, 24, 16)
    ]
    assert len(set(masks)) == 16
    return masks


def build_masks16(n_flows: int = 10_000, seed: int = 1) -> tuple[FlowTable, list[bytes]]:
    """A table with ``n_flows`` flows spread over 16 masks, and one frame per
    flow.  Each mask's flows use their own range of UDP destination ports, so
    megaflows never overlap (as ovs-vswitchd guarantees)."""
    rnd = random.Random(seed)
    t = FlowTable()
    masks = sixteen_masks()
    md = flow.md_bits(1)
    frames: list[bytes] = []
    per_mask = -(-n_flows // 16)
    for i in range(n_flows):
        m = i % 16
        dport = 1000 + m * per_mask + i // 16
        frame = udp_frame(rnd.getrandbits(32), rnd.getrandbits(32), rnd.randrange(1, 65536), dport)
        key = flow.key_extract(frame, md)
        assert key is not None
        t.insert(Flow(key, masks[m], [Output(2)]))
        frames.append(frame)
    assert len(t.masks) == 16 and t.count == n_flows
    return t, frames


def bench_masks16(n_packets: int = 100_000, emc: bool = False, cache_size: int = 256) -> float:
    t, frames = build_masks16()
    t.set_mask_cache_size(cache_size)
    rnd = random.Random(2)
    traffic = [rnd.choice(frames) for _ in range(n_packets)]
    md = flow.md_bits(1)
    ke = flow.key_extract
    kh = flow.key_hash
    lookup = t.lookup_stats
    emc_cache = t.emc
    emc_get = emc_cache.get

    def run_plain() -> int:
        for d in traffic:
            k = ke(d, md)
            f, _m, _c = lookup(k, kh(k))  # type: ignore[arg-type]
            assert f is not None
        return n_packets

    def run_emc() -> int:
        for d in traffic:
            k = ke(d, md)
            f = emc_get(k)  # type: ignore[arg-type]
            if f is None:
                f, _m, _c = lookup(k, kh(k))  # type: ignore[arg-type]
                assert f is not None
                if len(emc_cache) < t.emc_size:
                    emc_cache[k] = (f, 0)  # type: ignore[index]
        return n_packets

    run = run_emc if emc else run_plain
    run()  # warm the mask cache (and the EMC)
    return best_ns_per_packet(run, repeat=5)


# -- forwarding ------------------------------------------------------------------


class SinkDevice:
    """A device that counts what the datapath transmits and drops it."""

    def __init__(self, name: str) -> None:
        self._name = name
        self.count = 0
        self.handler: RxHandler | None = None

    name = property(lambda self: self._name)
    ifindex = property(lambda self: 1)
    mac = property(lambda self: b"\x02\x00\x00\x00\x00\x09")
    mtu = property(lambda self: 1500)
    is_up = property(lambda self: True)
    type = property(lambda self: ARPHRD_ETHER)

    def open(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def start_xmit(self, frames: Sequence[object]) -> int:
        self.count += len(frames)
        return len(frames)

    def set_mac_address(self, mac: bytes) -> None:
        pass

    def change_mtu(self, mtu: int) -> None:
        pass

    def set_promiscuity(self, inc: int) -> None:
        pass

    def get_stats64(self) -> DeviceStats:
        return DeviceStats()

    def rx_handler_register(self, handler: RxHandler) -> None:
        self.handler = handler

    def rx_handler_unregister(self) -> None:
        self.handler = None


class SinkNetns:
    name = "bench"

    def __init__(self) -> None:
        self.devs = {"in0": SinkDevice("in0"), "out0": SinkDevice("out0")}

    def dev_get_by_name(self, name: str) -> SinkDevice | None:
        return self.devs.get(name)

    def create_internal_device(self, name: str, on_xmit: RxHandler) -> SinkDevice:
        d = SinkDevice(name)
        self.devs[name] = d
        return d

    def destroy_internal_device(self, dev: object) -> None:
        pass


def bench_forward(batch: int = 32, n_batches: int = 10_000) -> float:
    """Packets per second through Datapath.process_batch on one cached flow."""
    net = SinkNetns()
    dp: Datapath = Openvswitch().dp_new("bench", net)  # type: ignore[arg-type]
    vin = dp.vport_add("in0")
    dp.vport_add("out0")
    dp.flow_put(key_from_fields(in_port=vin.port_no), field_mask("in_port"), [Output(2)])
    frame = udp_frame(0x0A000001, 0x0A000002, 1234, 80)
    frames = [frame] * batch
    process = dp.process_batch
    out = net.devs["out0"]

    def run() -> int:
        for _ in range(n_batches):
            process(vin, frames)
        return batch * n_batches

    ns = best_ns_per_packet(run, repeat=5)
    assert out.count >= batch * n_batches
    return 1e9 / ns


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("case", nargs="?", choices=("all", "lookup", "forward"), default="all")
    p.add_argument("--wall", action="store_true", help="measure wall-clock instead of CPU time")
    args = p.parse_args(argv)
    global CLOCK
    if args.wall:
        CLOCK = time.perf_counter
    print(f"python {sys.version.split()[0]}, pid {os.getpid()}, load {os.getloadavg()[0]:.2f}")
    if args.case in ("all", "lookup"):
        print(f"cached flow, raw-window cache (no extraction):  {bench_raw():7.0f} ns/packet")
        print(f"cached flow (extract + exact-match cache):      {bench_cached():7.0f} ns/packet")
        print(f"one megaflow, warm mask cache (no EMC):         {bench_megaflow():7.0f} ns/packet")
        print(f"16 masks x 10k flows, random, warm mask cache:  {bench_masks16():7.0f} ns/packet")
        print(
            f"  same, masks-cache size 4096 (cache-set-size):  "
            f"{bench_masks16(cache_size=4096):7.0f} ns/packet"
        )
        print(
            f"16 masks x 10k flows, random, with the EMC:     "
            f"{bench_masks16(emc=True):7.0f} ns/packet"
        )
    if args.case in ("all", "forward"):
        rates = [bench_forward() for _ in range(3)]
        print(
            f"forwarding, batches of 32, one flow:           "
            f"{statistics.median(rates) / 1e6:7.2f} Mpps (median of 3, best of 5 each)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
