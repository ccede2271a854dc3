"""Token-bucket meters (the kernel's ``meter.c``) with an injected clock."""

from __future__ import annotations

import errno

import pytest

from pyvswitch.meter import OVS_METER_BAND_TYPE_DROP, MeterBand, MeterError, MeterTable


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance_ms(self, ms: float) -> None:
        self.t += ms / 1000


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_kbps_bucket_starts_full_and_refills(clock: Clock) -> None:
    t = MeterTable(clock=clock)
    t.add(1, [(100, 20)])  # 100 kbit/s, burst 20 kbit = 2500 bytes
    # 1250-byte packets cost 10000 bits: two fit in the full bucket.
    assert [t.execute(1, 1250) for _ in range(3)] == [False, False, True]
    clock.advance_ms(100)  # 100 ms * 100 kbit/s = 10000 bits: one more
    assert [t.execute(1, 1250) for _ in range(2)] == [False, True]
    m = t.get(1)
    assert (m.n_packets, m.n_bytes) == (5, 6250)
    assert (m.bands[0].n_packets, m.bands[0].n_bytes) == (2, 2500)


def test_refill_is_capped_at_burst(clock: Clock) -> None:
    t = MeterTable(clock=clock)
    t.add(1, [(100, 20)])
    for _ in range(2):
        assert not t.execute(1, 1250)
    clock.advance_ms(3_600_000)  # an hour idle still only fills the burst
    assert [t.execute(1, 1250) for _ in range(3)] == [False, False, True]


def test_pktps_meter(clock: Clock) -> None:
    t = MeterTable(clock=clock)
    t.add(2, [MeterBand(rate=10, burst_size=3)], kbps=False)
    assert [t.execute(2, 9000) for _ in range(4)] == [False, False, False, True]
    clock.advance_ms(100)  # 10 pkt/s * 0.1 s = 1 packet, whatever its size
    assert [t.execute(2, 64) for _ in range(2)] == [False, True]


def test_burst_defaults_to_rate(clock: Clock) -> None:
    # dpif-netlink sends the rate as burst when no burst was configured.
    t = MeterTable(clock=clock)
    m = t.add(1, [(8, 0)])  # 8 kbit/s, 8 kbit burst = 1000 bytes
    assert m.bands[0].burst_size == 8
    assert [t.execute(1, 500) for _ in range(3)] == [False, False, True]


def test_clock_going_backwards_counts_as_no_time(clock: Clock) -> None:
    t = MeterTable(clock=clock)
    t.add(1, [(8, 8)])
    assert [t.execute(1, 1000) for _ in range(2)] == [False, True]
    clock.advance_ms(-5000)
    assert t.execute(1, 1000)
    # ``used`` moved back with the clock (as the kernel's meter->used = now):
    clock.advance_ms(500)  # 500 ms after the last use: 4000 bits
    assert [t.execute(1, 500), t.execute(1, 1)] == [False, True]


def test_missing_meter_does_not_drop(clock: Clock) -> None:
    assert MeterTable(clock=clock).execute(7, 100) is False


def test_meter_table_errors(clock: Clock) -> None:
    t = MeterTable(max_meters=4, clock=clock)
    with pytest.raises(MeterError) as ei:
        t.add(4, [(1, 1)])
    assert ei.value.errno == errno.EFBIG
    for bands in ([], [(0, 1)], [(1, 1), (2, 2)], [MeterBand(type=2, rate=1)]):
        with pytest.raises(MeterError) as ei:
            t.add(1, bands)
        assert ei.value.errno == errno.EINVAL
    with pytest.raises(MeterError) as ei:
        t.get(3)
    assert ei.value.errno == errno.ENOENT
    m = t.add(3, [MeterBand(type=OVS_METER_BAND_TYPE_DROP, rate=5, burst_size=5)])
    assert t.get(3) is m and t.delete(3) is m
    with pytest.raises(MeterError):
        t.delete(3)


def test_replacing_a_meter_resets_it(clock: Clock) -> None:
    t = MeterTable(clock=clock)
    t.add(1, [(8, 8)])
    assert [t.execute(1, 1000) for _ in range(2)] == [False, True]
    t.add(1, [(8, 8)])
    assert t.execute(1, 1000) is False and t.get(1).n_packets == 1
