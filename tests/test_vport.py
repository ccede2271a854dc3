"""Vport type registry, name table, port table, options, stats."""

from __future__ import annotations

import errno
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvswitch import percpu, vport
from pyvswitch.backends.memory import MemoryWorld
from pyvswitch.datapath import Openvswitch
from pyvswitch.errors import DatapathError, VportError, VportTypeError
from pyvswitch.uapi import VPORT_TYPE_NAMES
from pyvswitch.vport import (
    VPORT_HASH_BUCKETS,
    VportOps,
    VportTable,
    ovs_vport_lookup,
    ovs_vport_ops_register,
    ovs_vport_ops_unregister,
)


@pytest.fixture
def world() -> MemoryWorld:
    return MemoryWorld()


def test_all_eight_types_with_ovs_ids() -> None:
    for type_id, name in VPORT_TYPE_NAMES.items():
        ops = ovs_vport_lookup(type_id)
        assert (ops.type, ops.name) == (type_id, name)
        assert ovs_vport_lookup(name) is ops
    assert VPORT_TYPE_NAMES == {
        1: "netdev",
        2: "internal",
        3: "gre",
        4: "vxlan",
        5: "geneve",
        104: "gre64",
        105: "lisp",
        106: "stt",
    }
    assert ovs_vport_lookup("system").name == "netdev"


def test_unknown_type_error_names_it_and_lists_known() -> None:
    with pytest.raises(VportTypeError) as ei:
        ovs_vport_lookup("bogus")
    msg = str(ei.value)
    assert "'bogus'" in msg and "vxlan (4)" in msg and "stt (106)" in msg
    assert ei.value.errno == errno.EAFNOSUPPORT
    with pytest.raises(VportTypeError, match="unknown vport type 999"):
        ovs_vport_lookup(999)


class _DummyOps(VportOps):
    type = 250
    name = "dummytest"


def test_register_twice_fails_and_unregister() -> None:
    ops = _DummyOps()
    ovs_vport_ops_register(ops)
    try:
        assert ovs_vport_lookup(250) is ops
        with pytest.raises(VportTypeError) as ei:
            ovs_vport_ops_register(_DummyOps())
        assert ei.value.errno == errno.EEXIST
    finally:
        ovs_vport_ops_unregister(ops)
    with pytest.raises(VportTypeError):
        ovs_vport_lookup(250)


@pytest.fixture
def fake_distribution(tmp_path: Path) -> Iterator[str]:
    """A test-only installed distribution declaring vport type 201 via an
    entry point, as another package would."""
    pkg = tmp_path / "fakevport_pkg.py"
    pkg.write_text(
        textwrap.dedent(
            """
            from pyvswitch.vport import Vport, VportOps

            LOADED = []

            class FakeVport(Vport):
                def send(self, frames):
                    self.sent = list(frames)

            class FakeVportOps(VportOps):
                type = 201
                name = "fake201"
                vport_class = FakeVport

                def __init__(self):
                    LOADED.append(self)
            """
        )
    )
    dist = tmp_path / "fakevport-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakevport\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[pyvswitch.vport_types]\nvport-type-201 = fakevport_pkg:FakeVportOps\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        yield "fakevport_pkg"
    finally:
        sys.path.remove(str(tmp_path))
        ops = vport._vport_ops_list.get(201)
        if ops is not None:
            ovs_vport_ops_unregister(ops)
        sys.modules.pop("fakevport_pkg", None)


def test_type_loaded_on_demand_from_entry_point(fake_distribution: str, world: MemoryWorld) -> None:
    assert 201 not in vport.registered_types()
    assert fake_distribution not in sys.modules  # nothing loaded yet
    ops = ovs_vport_lookup(201)  # request_module("vport-type-201")
    assert ops.name == "fake201" and 201 in vport.registered_types()
    mod = sys.modules[fake_distribution]
    assert len(mod.LOADED) == 1
    # and usable: by name too
    dp = Openvswitch().dp_new("dpx", world.netns("n"))
    v = dp.vport_add("f0", "fake201")
    assert type(v).__name__ == "FakeVport" and v.port_no == 1
    assert 201 in vport.known_types()


def test_name_table_buckets_and_locate(world: MemoryWorld) -> None:
    ovs = Openvswitch()
    a, b = world.netns("a"), world.netns("b")
    a.add_device("eth0")
    b.add_device("eth0")
    dpa = ovs.dp_new("dp", a)
    dpb = ovs.dp_new("dp", b)  # same name in another namespace is fine
    va = dpa.vport_add("eth0")
    vb = dpb.vport_add("eth0")
    assert len(ovs.dev_table.buckets) == VPORT_HASH_BUCKETS == 1024
    assert ovs.ovs_vport_locate(a, "eth0") is va
    assert ovs.ovs_vport_locate(b, "eth0") is vb
    assert ovs.ovs_vport_locate(a, "nope") is None
    assert len(ovs.dev_table) == 4  # two local ports + two netdevs
    ovs.dp_del(dpa)
    assert ovs.ovs_vport_locate(a, "eth0") is None
    assert ovs.ovs_vport_locate(b, "eth0") is vb


def test_table_spreads_names() -> None:
    t = VportTable()
    net = object()
    used = {id(t.hash_bucket(net, f"port{i}")) for i in range(200)}
    assert len(used) > 150


def test_dp_new_creates_local_internal_port(world: MemoryWorld) -> None:
    ns = world.netns("s")
    dp = Openvswitch().dp_new("br0", ns)
    local = dp.ports[0]
    assert (local.name, local.type_name, local.port_no) == ("br0", "internal", 0)
    assert ns.dev_get_by_name("br0") is not None
    with pytest.raises(DatapathError) as ei:
        dp.ovs.dp_new("br0", ns)
    assert ei.value.errno == errno.EEXIST


def test_port_numbers(world: MemoryWorld) -> None:
    ns = world.netns("s")
    for n in ("a", "b", "c", "d"):
        ns.add_device(n)
    dp = Openvswitch().dp_new("dp0", ns)
    assert dp.vport_add("a").port_no == 1
    assert dp.vport_add("b", port_no=10).port_no == 10
    assert dp.vport_add("c").port_no == 2  # lowest free
    with pytest.raises(VportError) as ei:
        dp.vport_add("d", port_no=10)
    assert ei.value.errno == errno.EBUSY
    with pytest.raises(VportError) as ei:
        dp.vport_add("d", port_no=65535)
    assert ei.value.errno == errno.EFBIG
    dp.vport_del("a")
    assert dp.vport_add("d").port_no == 1


def test_device_in_one_datapath_only(world: MemoryWorld) -> None:
    ns = world.netns("s")
    ns.add_device("eth1")
    ovs = Openvswitch()
    dp1 = ovs.dp_new("dp1", ns)
    dp2 = ovs.dp_new("dp2", ns)
    dp1.vport_add("eth1")
    with pytest.raises(VportError) as ei:
        dp2.vport_add("eth1")
    assert ei.value.errno in (errno.EBUSY, errno.EEXIST)
    # attaching it twice to the same datapath is an error too
    with pytest.raises(VportError):
        dp1.vport_add("eth1", port_no=9)
    dp1.vport_del("eth1")
    assert dp2.vport_add("eth1").port_no == 1


def test_missing_device_and_internal_as_netdev(world: MemoryWorld) -> None:
    ns = world.netns("s")
    dp = Openvswitch().dp_new("dp0", ns)
    with pytest.raises(VportError, match="no such network device") as ei:
        dp.vport_add("ghost")
    assert ei.value.errno == errno.ENODEV
    dp.vport_add("int0", "internal")
    other = dp.ovs.dp_new("dp1", ns)
    with pytest.raises(VportError, match="internal"):
        other.vport_add("int0")


def test_delete_port_and_datapath(world: MemoryWorld) -> None:
    ns = world.netns("s")
    dev = ns.add_device("eth0")
    ovs = Openvswitch()
    dp = ovs.dp_new("dp0", ns)
    dp.vport_add("eth0")
    assert dev.rx_handler is not None and dev.promiscuity == 1
    with pytest.raises(VportError, match="local port"):
        dp.vport_del(0)
    dp.vport_del("eth0")
    assert dev.rx_handler is None and dev.promiscuity == 0
    dp.vport_add("eth0")
    dp.vport_add("i1", "internal")
    ovs.dp_del(dp)
    assert dev.rx_handler is None
    assert ns.dev_get_by_name("i1") is None and ns.dev_get_by_name("dp0") is None
    assert list(ovs) == [] and len(ovs.dev_table) == 0
    with pytest.raises(DatapathError):
        ovs.get_dp("dp0")


def test_vport_attributes_only_from_parms(world: MemoryWorld) -> None:
    ns = world.netns("s")
    ns.add_device("eth0")
    dp = Openvswitch().dp_new("dp0", ns)
    v = dp.vport_add("eth0", upcall_pids=[5, 6, 7])
    assert v.get_upcall_portids() == [5, 6, 7] and v.get_options() == {}
    with pytest.raises(VportError, match="takes no options"):
        dp.vport_add("x", "internal", options={"foo": "bar"})
    with pytest.raises(VportError, match="must not be empty"):
        v.set_upcall_portids([])


def test_find_upcall_portid_hash_mod_n(world: MemoryWorld) -> None:
    ns = world.netns("s")
    ns.add_device("eth0")
    v = Openvswitch().dp_new("dp0", ns).vport_add("eth0", upcall_pids=[11])
    assert v.find_upcall_portid(12345) == 11
    v.set_upcall_portids([10, 20, 30])
    for h in (0, 1, 2, 3, 1000, 0xFFFFFFFF):
        assert v.find_upcall_portid(h) == [10, 20, 30][h % 3]


def test_tunnel_options_validated(world: MemoryWorld) -> None:
    ns = world.netns("s")
    dp = Openvswitch().dp_new("dp0", ns)
    with pytest.raises(VportError, match="requires valid 'remote_ip'"):
        dp.vport_add("vx0", "vxlan")
    with pytest.raises(VportError, match="invalid TOS"):
        dp.vport_add("vx0", "vxlan", options={"remote_ip": "1.1.1.1", "tos": "3"})
    with pytest.raises(VportError, match="invalid TTL"):
        dp.vport_add("vx0", "vxlan", options={"remote_ip": "1.1.1.1", "ttl": "300"})
    with pytest.raises(VportError, match="multicast"):
        dp.vport_add("vx0", "vxlan", options={"remote_ip": "224.0.0.1"})
    with pytest.raises(VportError, match="local_ip=flow"):
        dp.vport_add("vx0", "vxlan", options={"remote_ip": "1.1.1.1", "local_ip": "flow"})
    with pytest.raises(VportError, match="matching families"):
        dp.vport_add("g0", "gre", options={"remote_ip": "1.1.1.1", "local_ip": "2001::1"})
    v = dp.vport_add(
        "vx0",
        "vxlan",
        options={"remote_ip": "flow", "key": "flow", "dst_port": "4790", "csum": "true"},
    )
    assert v.get_options() == {
        "csum": "true",
        "dst_port": "4790",
        "key": "flow",
        "remote_ip": "flow",
    }
    g = dp.vport_add(
        "gre0", "gre", options={"remote_ip": "1.1.2.92", "key": "789", "seq": "true", "ttl": "64"}
    )
    assert g.get_options() == {"key": "789", "remote_ip": "1.1.2.92", "seq": "true"}
    lisp = dp.vport_add(
        "l0",
        "lisp",
        options={"remote_ip": "10.0.0.1", "in_key": "5", "out_key": "6", "tos": "inherit"},
    )
    assert lisp.get_options() == {
        "in_key": "5",
        "out_key": "6",
        "remote_ip": "10.0.0.1",
        "tos": "inherit",
    }
    for t in ("geneve", "stt", "gre64"):
        assert dp.vport_add(f"{t}0", t, options={"remote_ip": "2001:db8::1"}).get_options() == {
            "remote_ip": "2001:db8::1"
        }


def test_per_worker_stats_summed(world: MemoryWorld) -> None:
    percpu.configure(3)
    try:
        ns = world.netns("s")
        ns.add_device("eth0")
        v = Openvswitch().dp_new("dp0", ns).vport_add("eth0")
        assert len(v.stats.rows) == 3
        for w in range(3):
            percpu.set_worker(w)
            row = v.stats.this_cpu()
            row[vport.RX_PACKETS] += w + 1
            row[vport.TX_BYTES] += 100
        st = v.get_stats()
        assert st.rx_packets == 6 and st.tx_bytes == 300
        # each worker only touched its own row
        assert [r[vport.RX_PACKETS] for r in v.stats.rows] == [1, 2, 3]
    finally:
        percpu.set_worker(0)
        percpu.configure(1)
