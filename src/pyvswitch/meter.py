"""Meters (the kernel's ``net/openvswitch/meter.c``).

A meter has bands, each a token bucket with a rate (kbit/s or packets/s) and a
burst size.  ``ovs_meter_execute`` refills every band by the elapsed time,
charges the packet, and -- if some bands lack tokens -- the band with the
highest rate among them fires; a DROP band drops the packet.  Buckets are kept
in bits (kbps meters) or 1/1000 packets (pktps meters) and start full.
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .errors import PyvswitchError

OVS_METER_F_KBPS = 1 << 0
OVS_METER_F_PKTPS = 1 << 1
OVS_METER_F_BURST = 1 << 2
OVS_METER_F_STATS = 1 << 3
OVS_METER_BAND_TYPE_DROP = 1
DP_MAX_BANDS = 1
DEFAULT_MAX_METERS = 1 << 18


class MeterError(PyvswitchError):
    pass


@dataclass
class MeterBand:
    type: int = OVS_METER_BAND_TYPE_DROP
    rate: int = 0  # kbit/s or packets/s
    burst_size: int = 0  # kbit or packets; 0 = same as rate
    bucket: int = 0
    n_packets: int = 0
    n_bytes: int = 0


@dataclass
class Meter:
    meter_id: int
    kbps: bool
    bands: list[MeterBand]
    used_ms: int = 0
    max_delta_t: int = 0
    n_packets: int = 0
    n_bytes: int = 0
    keep_stats: bool = True
    extra: dict[str, int] = field(default_factory=dict)


class MeterTable:
    def __init__(
        self, max_meters: int = DEFAULT_MAX_METERS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.meters: dict[int, Meter] = {}
        self.max_meters = max_meters
        self.clock = clock

    def add(
        self,
        meter_id: int,
        bands: Sequence[tuple[int, int]] | Sequence[MeterBand],
        *,
        kbps: bool = True,
        stats: bool = True,
    ) -> Meter:
        """Create (or replace) meter ``meter_id``.  ``bands`` are MeterBand or
        ``(rate, burst_size)`` pairs for DROP bands."""
        if not 0 <= meter_id < self.max_meters:
            raise MeterError(f"meter id {meter_id} out of range", errno=errno.EFBIG)
        bl: list[MeterBand] = []
        for b in bands:
            band = b if isinstance(b, MeterBand) else MeterBand(rate=b[0], burst_size=b[1])
            if band.type != OVS_METER_BAND_TYPE_DROP:
                raise MeterError("only DROP bands are supported", errno=errno.EINVAL)
            if band.rate <= 0:
                raise MeterError("a band needs a positive rate", errno=errno.EINVAL)
            if not band.burst_size:
                band.burst_size = band.rate
            band.bucket = band.burst_size * 1000
            bl.append(band)
        if not bl:
            raise MeterError("a meter needs at least one band", errno=errno.EINVAL)
        if len(bl) > DP_MAX_BANDS:
            raise MeterError(f"at most {DP_MAX_BANDS} band per meter", errno=errno.EINVAL)
        max_delta = max(b.burst_size * 1000 // b.rate for b in bl)
        m = Meter(
            meter_id,
            kbps,
            bl,
            used_ms=int(self.clock() * 1000),
            max_delta_t=max_delta,
            keep_stats=stats,
        )
        self.meters[meter_id] = m
        return m

    def delete(self, meter_id: int) -> Meter:
        m = self.meters.pop(meter_id, None)
        if m is None:
            raise MeterError(f"no meter {meter_id}", errno=errno.ENOENT)
        return m

    def get(self, meter_id: int) -> Meter:
        m = self.meters.get(meter_id)
        if m is None:
            raise MeterError(f"no meter {meter_id}", errno=errno.ENOENT)
        return m

    def execute(self, meter_id: int, length: int) -> bool:
        """``ovs_meter_execute``: True if the packet must be dropped."""
        m = self.meters.get(meter_id)
        if m is None:
            return False  # no meter: do not drop
        now_ms = int(self.clock() * 1000)
        delta = now_ms - m.used_ms
        if delta < 0:
            delta = 0
        if delta > m.max_delta_t:
            delta = m.max_delta_t
        m.used_ms = now_ms
        m.n_packets += 1
        m.n_bytes += length
        cost = length * 8 if m.kbps else 1000
        exceeded = -1
        exceeded_rate = 0
        for i, band in enumerate(m.bands):
            max_bucket = band.burst_size * 1000
            band.bucket += delta * band.rate
            if band.bucket > max_bucket:
                band.bucket = max_bucket
            if band.bucket >= cost:
                band.bucket -= cost
            elif band.rate > exceeded_rate:
                exceeded_rate = band.rate
                exceeded = i
        if exceeded >= 0:
            band = m.bands[exceeded]
            band.n_packets += 1
            band.n_bytes += length
            if band.type == OVS_METER_BAND_TYPE_DROP:
                return True
        return False
