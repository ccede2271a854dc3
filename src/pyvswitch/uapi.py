"""The datapath's public definitions (the kernel's ``include/uapi/linux/openvswitch.h``).

Numeric ids follow the upstream kernel; the Python objects here are what the
netlink attributes carry: vport types, key attributes (``ovs_key_*``), tunnel
key attributes and actions.  Key attributes and actions are small frozen
dataclasses so that they can be compared, hashed, printed and pattern-matched.
All integer fields are plain ints in host order (MAC and IP addresses as
integers, e.g. ``0x0a000001`` for 10.0.0.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, TypeAlias

# ---------------------------------------------------------------------------
# Vport types (enum ovs_vport_type)

OVS_VPORT_TYPE_UNSPEC: Final = 0
OVS_VPORT_TYPE_NETDEV: Final = 1
OVS_VPORT_TYPE_INTERNAL: Final = 2
OVS_VPORT_TYPE_GRE: Final = 3
OVS_VPORT_TYPE_VXLAN: Final = 4
OVS_VPORT_TYPE_GENEVE: Final = 5
OVS_VPORT_TYPE_GRE64: Final = 104
OVS_VPORT_TYPE_LISP: Final = 105
OVS_VPORT_TYPE_STT: Final = 106

#: The eight vport types pyvswitch ships, by OVS id.  ``netdev`` is also known
#: to users as ``system`` (what ``ovs-dpctl add-if`` defaults to).
VPORT_TYPE_NAMES: Final[dict[int, str]] = {
    OVS_VPORT_TYPE_NETDEV: "netdev",
    OVS_VPORT_TYPE_INTERNAL: "internal",
    OVS_VPORT_TYPE_GRE: "gre",
    OVS_VPORT_TYPE_VXLAN: "vxlan",
    OVS_VPORT_TYPE_GENEVE: "geneve",
    OVS_VPORT_TYPE_GRE64: "gre64",
    OVS_VPORT_TYPE_LISP: "lisp",
    OVS_VPORT_TYPE_STT: "stt",
}
VPORT_TYPE_ALIASES: Final[dict[str, int]] = {"system": OVS_VPORT_TYPE_NETDEV}

# ---------------------------------------------------------------------------
# Datapath / port numbers

OVSP_LOCAL: Final = 0
DP_MAX_PORTS: Final = 0xFFFF  # port numbers are < 65535 (USHRT_MAX)
DP_VPORT_HASH_BUCKETS: Final = 1024
VPORT_HASH_BUCKETS: Final = 1024

OVS_DP_F_UNALIGNED: Final = 1 << 0
OVS_DP_F_VPORT_PIDS: Final = 1 << 1
OVS_DP_F_TC_RECIRC_SHARING: Final = 1 << 2
OVS_DP_F_DISPATCH_UPCALL_PER_CPU: Final = 1 << 3

# ---------------------------------------------------------------------------
# Packet commands (ovs_packet family)

OVS_PACKET_CMD_MISS: Final = 1
OVS_PACKET_CMD_ACTION: Final = 2
OVS_PACKET_CMD_EXECUTE: Final = 3

# ---------------------------------------------------------------------------
# Key attribute ids (enum ovs_key_attr)

OVS_KEY_ATTR_ENCAP: Final = 1
OVS_KEY_ATTR_PRIORITY: Final = 2
OVS_KEY_ATTR_IN_PORT: Final = 3
OVS_KEY_ATTR_ETHERNET: Final = 4
OVS_KEY_ATTR_VLAN: Final = 5
OVS_KEY_ATTR_ETHERTYPE: Final = 6
OVS_KEY_ATTR_IPV4: Final = 7
OVS_KEY_ATTR_IPV6: Final = 8
OVS_KEY_ATTR_TCP: Final = 9
OVS_KEY_ATTR_UDP: Final = 10
OVS_KEY_ATTR_ICMP: Final = 11
OVS_KEY_ATTR_ICMPV6: Final = 12
OVS_KEY_ATTR_ARP: Final = 13
OVS_KEY_ATTR_ND: Final = 14
OVS_KEY_ATTR_SKB_MARK: Final = 15
OVS_KEY_ATTR_TUNNEL: Final = 16
OVS_KEY_ATTR_SCTP: Final = 17
OVS_KEY_ATTR_TCP_FLAGS: Final = 18
OVS_KEY_ATTR_DP_HASH: Final = 19
OVS_KEY_ATTR_RECIRC_ID: Final = 20
OVS_KEY_ATTR_MPLS: Final = 21
OVS_KEY_ATTR_CT_STATE: Final = 22
OVS_KEY_ATTR_CT_ZONE: Final = 23
OVS_KEY_ATTR_CT_MARK: Final = 24
OVS_KEY_ATTR_CT_LABELS: Final = 25
# Recognised so that they can be reported as unsupported (the flow layout
# cannot hold them), plus the two userspace-datapath-only attributes.
OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV4: Final = 26
OVS_KEY_ATTR_CT_ORIG_TUPLE_IPV6: Final = 27
OVS_KEY_ATTR_NSH: Final = 28
OVS_KEY_ATTR_PACKET_TYPE: Final = 29  # userspace only (kernel: TUNNEL_INFO)
OVS_KEY_ATTR_ND_EXTENSIONS: Final = 30  # userspace only

# Tunnel key attributes (enum ovs_tunnel_key_attr) -- starts at 0.
OVS_TUNNEL_KEY_ATTR_ID: Final = 0
OVS_TUNNEL_KEY_ATTR_IPV4_SRC: Final = 1
OVS_TUNNEL_KEY_ATTR_IPV4_DST: Final = 2
OVS_TUNNEL_KEY_ATTR_TOS: Final = 3
OVS_TUNNEL_KEY_ATTR_TTL: Final = 4
OVS_TUNNEL_KEY_ATTR_DONT_FRAGMENT: Final = 5
OVS_TUNNEL_KEY_ATTR_CSUM: Final = 6
OVS_TUNNEL_KEY_ATTR_OAM: Final = 7
OVS_TUNNEL_KEY_ATTR_GENEVE_OPTS: Final = 8
OVS_TUNNEL_KEY_ATTR_TP_SRC: Final = 9
OVS_TUNNEL_KEY_ATTR_TP_DST: Final = 10
OVS_TUNNEL_KEY_ATTR_VXLAN_OPTS: Final = 11
OVS_TUNNEL_KEY_ATTR_IPV6_SRC: Final = 12
OVS_TUNNEL_KEY_ATTR_IPV6_DST: Final = 13
OVS_TUNNEL_KEY_ATTR_PAD: Final = 14
OVS_TUNNEL_KEY_ATTR_ERSPAN_OPTS: Final = 15
OVS_TUNNEL_KEY_ATTR_GTPU_OPTS: Final = 16  # userspace only

# VXLAN extension attributes (nested in OVS_TUNNEL_KEY_ATTR_VXLAN_OPTS).
OVS_VXLAN_EXT_GBP: Final = 1

# ---------------------------------------------------------------------------
# Action ids (enum ovs_action_attr, upstream kernel numbering)

OVS_ACTION_ATTR_OUTPUT: Final = 1
OVS_ACTION_ATTR_USERSPACE: Final = 2
OVS_ACTION_ATTR_SET: Final = 3
OVS_ACTION_ATTR_PUSH_VLAN: Final = 4
OVS_ACTION_ATTR_POP_VLAN: Final = 5
OVS_ACTION_ATTR_SAMPLE: Final = 6
OVS_ACTION_ATTR_RECIRC: Final = 7
OVS_ACTION_ATTR_HASH: Final = 8
OVS_ACTION_ATTR_PUSH_MPLS: Final = 9
OVS_ACTION_ATTR_POP_MPLS: Final = 10
OVS_ACTION_ATTR_SET_MASKED: Final = 11
OVS_ACTION_ATTR_CT: Final = 12
OVS_ACTION_ATTR_TRUNC: Final = 13
OVS_ACTION_ATTR_PUSH_ETH: Final = 14
OVS_ACTION_ATTR_POP_ETH: Final = 15
OVS_ACTION_ATTR_CT_CLEAR: Final = 16
OVS_ACTION_ATTR_PUSH_NSH: Final = 17
OVS_ACTION_ATTR_POP_NSH: Final = 18
OVS_ACTION_ATTR_METER: Final = 19
OVS_ACTION_ATTR_CLONE: Final = 20
OVS_ACTION_ATTR_CHECK_PKT_LEN: Final = 21
OVS_ACTION_ATTR_ADD_MPLS: Final = 22
OVS_ACTION_ATTR_DEC_TTL: Final = 23
OVS_ACTION_ATTR_DROP: Final = 24

OVS_HASH_ALG_L4: Final = 0
OVS_HASH_ALG_SYM_L4: Final = 1

# Limits (kernel)
OVS_RECURSION_LIMIT: Final = 5
OVS_DEFERRED_ACTION_THRESHOLD: Final = OVS_RECURSION_LIMIT - 2
DEFERRED_ACTION_FIFO_SIZE: Final = 10
OVS_COPY_ACTIONS_MAX_DEPTH: Final = 16

# Frag types (enum ovs_frag_type)
OVS_FRAG_TYPE_NONE: Final = 0
OVS_FRAG_TYPE_FIRST: Final = 1
OVS_FRAG_TYPE_LATER: Final = 2

# ct_state bits (OVS_CS_F_*)
OVS_CS_F_NEW: Final = 0x01
OVS_CS_F_ESTABLISHED: Final = 0x02
OVS_CS_F_RELATED: Final = 0x04
OVS_CS_F_REPLY_DIR: Final = 0x08
OVS_CS_F_INVALID: Final = 0x10
OVS_CS_F_TRACKED: Final = 0x20
OVS_CS_F_SRC_NAT: Final = 0x40
OVS_CS_F_DST_NAT: Final = 0x80

# Tunnel flags as OVS's text calls them (userspace FLOW_TNL_F_*), and the
# kernel TUNNEL_* bits they map to in the flow key (see flow.TUNNEL_*).
FLOW_TNL_F_OAM: Final = 1 << 0
FLOW_TNL_F_DONT_FRAGMENT: Final = 1 << 1
FLOW_TNL_F_CSUM: Final = 1 << 2
FLOW_TNL_F_KEY: Final = 1 << 3

# ---------------------------------------------------------------------------
# Key attributes (struct ovs_key_*).  The same classes carry masks.


@dataclass(frozen=True, slots=True)
class Ethernet:
    src: int = 0
    dst: int = 0


@dataclass(frozen=True, slots=True)
class Ipv4:
    src: int = 0
    dst: int = 0
    proto: int = 0
    tos: int = 0
    ttl: int = 0
    frag: int = 0


@dataclass(frozen=True, slots=True)
class Ipv6:
    src: int = 0
    dst: int = 0
    label: int = 0
    proto: int = 0
    tclass: int = 0
    hlimit: int = 0
    frag: int = 0


@dataclass(frozen=True, slots=True)
class Tcp:
    src: int = 0
    dst: int = 0


@dataclass(frozen=True, slots=True)
class Udp:
    src: int = 0
    dst: int = 0


@dataclass(frozen=True, slots=True)
class Sctp:
    src: int = 0
    dst: int = 0


@dataclass(frozen=True, slots=True)
class Icmp:
    type: int = 0
    code: int = 0


@dataclass(frozen=True, slots=True)
class Icmpv6:
    type: int = 0
    code: int = 0


@dataclass(frozen=True, slots=True)
class Arp:
    sip: int = 0
    tip: int = 0
    op: int = 0
    sha: int = 0
    tha: int = 0


@dataclass(frozen=True, slots=True)
class Nd:
    target: int = 0
    sll: int = 0
    tll: int = 0


@dataclass(frozen=True, slots=True)
class Mpls:
    """One or more label stack entries (``lse`` values, top first)."""

    lses: tuple[int, ...] = (0,)


@dataclass(frozen=True, slots=True)
class Tunnel:
    """``tunnel(...)`` key / ``set(tunnel(...))`` metadata.

    ``flags`` uses the kernel TUNNEL_* bits (flow.TUNNEL_KEY, TUNNEL_CSUM,
    TUNNEL_DONT_FRAGMENT, TUNNEL_OAM, ...).  ``geneve_opts`` is the raw TLV
    bytes; ``gbp`` the VXLAN group-policy value (None = no VXLAN option).
    """

    tun_id: int = 0
    ipv4_src: int = 0
    ipv4_dst: int = 0
    ipv6_src: int = 0
    ipv6_dst: int = 0
    tos: int = 0
    ttl: int = 0
    tp_src: int = 0
    tp_dst: int = 0
    flags: int = 0
    geneve_opts: bytes = b""
    gbp: int | None = None


@dataclass(frozen=True, slots=True)
class Scalar:
    """A single-value key attribute: ``skb_priority``, ``skb_mark``,
    ``in_port``, ``recirc_id``, ``dp_hash``, ``eth_type``, ``vlan`` (TCI),
    ``tcp_flags``, ``ct_state``, ``ct_zone``, ``ct_mark``, ``ct_label``."""

    attr: int
    value: int = 0


KeyAttr: TypeAlias = (
    Ethernet | Ipv4 | Ipv6 | Tcp | Udp | Sctp | Icmp | Icmpv6 | Arp | Nd | Mpls | Tunnel | Scalar
)

# ---------------------------------------------------------------------------
# Actions


@dataclass(frozen=True, slots=True)
class Output:
    port: int


@dataclass(frozen=True, slots=True)
class Userspace:
    pid: int
    userdata: bytes | None = None
    egress_tun_port: int | None = None
    actions: bool = False


@dataclass(frozen=True, slots=True)
class Set:
    """Plain SET (full mask).  ``key`` is a key attribute (Tunnel, Ethernet,
    Ipv4, ..., or Scalar for skb_priority/skb_mark)."""

    key: KeyAttr


@dataclass(frozen=True, slots=True)
class SetMasked:
    key: KeyAttr
    mask: KeyAttr


@dataclass(frozen=True, slots=True)
class PushVlan:
    tpid: int
    tci: int  # must carry the CFI/"present" bit 0x1000, as on the netlink wire


@dataclass(frozen=True, slots=True)
class PopVlan:
    pass


@dataclass(frozen=True, slots=True)
class Sample:
    probability: int  # u32; 0xFFFFFFFF = always
    actions: tuple[Action, ...] = ()


@dataclass(frozen=True, slots=True)
class Recirc:
    recirc_id: int


@dataclass(frozen=True, slots=True)
class Hash:
    alg: int
    basis: int


@dataclass(frozen=True, slots=True)
class PushMpls:
    lse: int
    ethertype: int


@dataclass(frozen=True, slots=True)
class PopMpls:
    ethertype: int


@dataclass(frozen=True, slots=True)
class AddMpls:
    lse: int
    ethertype: int
    tun_flags: int = 0


@dataclass(frozen=True, slots=True)
class Ct:
    """Connection tracking.  Parsed and printed, rejected on execution
    (pyvswitch does not implement conntrack yet)."""

    commit: bool = False
    force_commit: bool = False
    zone: int = 0
    mark: tuple[int, int] | None = None
    labels: tuple[int, int] | None = None
    helper: str | None = None
    timeout: str | None = None
    nat: str | None = None  # the nat(...) text, kept verbatim


@dataclass(frozen=True, slots=True)
class CtClear:
    pass


@dataclass(frozen=True, slots=True)
class Trunc:
    max_len: int


@dataclass(frozen=True, slots=True)
class PushEth:
    src: int
    dst: int


@dataclass(frozen=True, slots=True)
class PopEth:
    pass


@dataclass(frozen=True, slots=True)
class Meter:
    meter_id: int


@dataclass(frozen=True, slots=True)
class Clone:
    actions: tuple[Action, ...] = ()


@dataclass(frozen=True, slots=True)
class CheckPktLen:
    pkt_len: int
    actions_if_greater: tuple[Action, ...] = ()
    actions_if_less_equal: tuple[Action, ...] = ()


@dataclass(frozen=True, slots=True)
class DecTtl:
    actions: tuple[Action, ...] = ()  # run when the TTL would expire (le_1)


@dataclass(frozen=True, slots=True)
class Drop:
    reason: int = 0


Action: TypeAlias = (
    Output
    | Userspace
    | Set
    | SetMasked
    | PushVlan
    | PopVlan
    | Sample
    | Recirc
    | Hash
    | PushMpls
    | PopMpls
    | AddMpls
    | Ct
    | CtClear
    | Trunc
    | PushEth
    | PopEth
    | Meter
    | Clone
    | CheckPktLen
    | DecTtl
    | Drop
)

# ---------------------------------------------------------------------------
# Flows and upcalls as the API carries them


@dataclass(slots=True)
class FlowStats:
    """What a dump/get reports for a flow (``ovs_flow_stats`` + used + flags)."""

    packets: int = 0
    bytes: int = 0
    used: float = 0.0  # monotonic seconds of the last hit, 0 = never
    tcp_flags: int = 0


@dataclass(slots=True)
class Upcall:
    """A packet sent up to userspace (``queue_userspace_packet``)."""

    cmd: int  # OVS_PACKET_CMD_MISS / OVS_PACKET_CMD_ACTION
    dp_name: str
    portid: int
    key: int  # the flow key (full, unmasked), flow.py layout
    packet: bytes
    userdata: bytes | None = None
    egress_tun_key: Tunnel | None = None
    actions: tuple[Action, ...] | None = None
    mru: int = 0
    orig_len: int = 0  # OVS_PACKET_ATTR_LEN when truncated, else 0
    hash: int = 0
    extra: dict[str, object] = field(default_factory=dict)
