"""Software GSO and checksum completion against scapy-built packets."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Packet

from pyvswitch.gso import skb_checksum_help, skb_gso_segment, skb_resolve
from pyvswitch.skbuff import (
    CHECKSUM_PARTIAL,
    SKB_GSO_TCPV4,
    SKB_GSO_TCPV6,
    SKB_GSO_UDP,
    SKB_GSO_UDP_L4,
    SkBuff,
)

MACS = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}
PAYLOAD = bytes(range(256)) * 12  # 3072 bytes


def fold(s: int) -> int:
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def with_pseudo_sum(frame: bytes, l3: int, l4: int, csum_off: int, proto: int) -> SkBuff:
    """A CHECKSUM_PARTIAL skb: the L4 checksum field holds the pseudo-header
    sum (what a local stack leaves for the NIC to finish)."""
    if frame[l3] >> 4 == 4:
        addrs = frame[l3 + 12 : l3 + 20]
    else:
        addrs = frame[l3 + 8 : l3 + 40]
    s = sum(int.from_bytes(addrs[i : i + 2], "big") for i in range(0, len(addrs), 2))
    s += proto + len(frame) - l4
    b = bytearray(frame)
    b[l4 + csum_off : l4 + csum_off + 2] = fold(s).to_bytes(2, "big")
    return SkBuff(bytes(b), ip_summed=CHECKSUM_PARTIAL, csum_start=l4, csum_offset=csum_off)


def test_checksum_help_tcp() -> None:
    p = Ether(**MACS) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2) / b"hello"
    skb = with_pseudo_sum(bytes(p), 14, 34, 16, 6)
    assert skb.data != bytes(p)
    assert skb_checksum_help(skb) == bytes(p)
    assert skb_resolve(skb) == [bytes(p)]


def test_checksum_help_udp_zero_becomes_ffff() -> None:
    def build(word: int) -> Packet:
        return (
            Ether(**MACS)
            / IP(src="10.0.0.1", dst="10.0.0.2")
            / UDP(sport=1, dport=2)
            / word.to_bytes(2, "big")
        )

    word = int.from_bytes(bytes(build(0))[40:42], "big")  # makes the sum 0xFFFF
    exp = bytes(build(word))
    assert exp[40:42] == b"\xff\xff"
    assert skb_checksum_help(with_pseudo_sum(exp, 14, 34, 6, 17)) == exp


def test_checksum_help_leaves_finished_packets_alone() -> None:
    frame = bytes(Ether(**MACS) / IP() / UDP() / b"x")
    assert skb_checksum_help(SkBuff(frame)) == frame
    assert skb_resolve(frame) == [frame]


def tcp_segments(p: Packet, mss: int, ip_layer: type[Packet]) -> list[bytes]:
    """The segments a TSO super-frame ``p`` must become, built with scapy."""
    tcp = p[TCP]
    data = bytes(tcp.payload)
    chunks = [data[i : i + mss] for i in range(0, len(data), mss)]
    out = []
    for i, chunk in enumerate(chunks):
        q = p.copy()
        q[TCP].remove_payload()
        q[TCP].seq = tcp.seq + i * mss
        flags = int(tcp.flags)
        if i < len(chunks) - 1:
            flags &= ~0x09  # FIN, PSH only on the last
        if i > 0:
            flags &= ~0x80  # CWR only on the first
        q[TCP].flags = flags
        if ip_layer is IP:
            q[IP].id = p[IP].id + i
            del q[IP].len
        else:
            del q[IPv6].plen
        out.append(bytes(q / chunk))
    return out


def test_tcp4_segmentation() -> None:
    p = (
        Ether(**MACS)
        / IP(src="10.0.0.1", dst="10.0.0.2", id=100)
        / TCP(sport=1, dport=2, seq=1000, flags="CPA")
        / PAYLOAD
    )
    frame = bytes(p)
    skb = with_pseudo_sum(frame, 14, 34, 16, 6)
    skb.gso_size, skb.gso_type = 1000, SKB_GSO_TCPV4
    segs = skb_gso_segment(skb)
    assert segs == tcp_segments(p, 1000, IP)
    assert [len(s) for s in segs] == [1054, 1054, 1054, 126]
    assert skb_resolve(skb) == segs


def test_tcp6_segmentation_with_vlan() -> None:
    p = (
        Ether(**MACS)
        / Dot1Q(vlan=5)
        / IPv6(src="2001:db8::1", dst="2001:db8::2")
        / TCP(sport=1, dport=2, seq=7, flags="FA")
        / PAYLOAD[:2500]
    )
    skb = SkBuff(bytes(p), gso_size=1200, gso_type=SKB_GSO_TCPV6)
    assert skb_gso_segment(skb) == tcp_segments(p, 1200, IPv6)


def test_udp_l4_segmentation() -> None:
    base = Ether(**MACS) / IP(src="10.0.0.1", dst="10.0.0.2", id=9)
    p = base / UDP(sport=1, dport=2) / PAYLOAD[:2500]
    skb = SkBuff(bytes(p), gso_size=1000, gso_type=SKB_GSO_UDP_L4)
    exp = [
        bytes(
            Ether(**MACS)
            / IP(src="10.0.0.1", dst="10.0.0.2", id=9 + i)
            / UDP(sport=1, dport=2)
            / PAYLOAD[i * 1000 : min(2500, (i + 1) * 1000)]
        )
        for i in range(3)
    ]
    assert skb_gso_segment(skb) == exp


def test_ufo_fragments_like_ip_fragmentation() -> None:
    ip = IP(src="10.0.0.1", dst="10.0.0.2", id=0x4242) / UDP(sport=1, dport=2) / PAYLOAD[:3000]
    skb = SkBuff(bytes(Ether(**MACS) / ip), gso_size=1480, gso_type=SKB_GSO_UDP)
    exp = [bytes(Ether(**MACS) / f) for f in fragment(ip, 1480)]
    assert len(exp) == 3
    assert skb_gso_segment(skb) == exp


def test_small_gso_frame_is_one_segment() -> None:
    p = Ether(**MACS) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2) / b"short"
    skb = SkBuff(bytes(p), gso_size=1000, gso_type=SKB_GSO_TCPV4)
    assert skb_gso_segment(skb) == [bytes(p)]
