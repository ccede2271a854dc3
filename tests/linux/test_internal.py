"""Internal ports on Linux: a TAP device named as the vport in the datapath's
namespace, reachable by the host stack there."""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyvswitch.backends.linux import TapDevice
from pyvswitch.errors import PyvswitchError
from pyvswitch.vport import Vport

from .conftest import Hosts, LoopThread, ping, sh, wait_for
from .switch import Switch
from .test_switching import tcp_transfer

pytestmark = pytest.mark.root


def link(ns: str, dev: str) -> dict[str, object] | None:
    r = sh("ip", "-n", ns, "-d", "-j", "link", "show", dev, check=False)
    if r.returncode:
        return None
    info: dict[str, object] = json.loads(r.stdout)[0]
    return info


@pytest.fixture
def hub(hosts: Hosts, loop_thread: LoopThread) -> Iterator[tuple[Switch, Vport]]:
    """p1, p2 and an internal port int0 (10.77.0.3 in the switch namespace),
    every port flooding to the others."""
    sw = Switch.create(loop_thread, hosts.sw)
    try:
        ports = [sw.add("p1"), sw.add("p2"), sw.add("int0", "internal")]
        sw.flood([p.port_no for p in ports])
        hosts.netns.addr(hosts.sw, "int0", "10.77.0.3/24")
        yield sw, ports[2]
    finally:
        sw.close()


def test_internal_port_is_a_tap(hosts: Hosts, hub: tuple[Switch, Vport]) -> None:
    _sw, port = hub
    dev = port.dev  # type: ignore[attr-defined]
    assert isinstance(dev, TapDevice)
    info = link(hosts.sw, "int0")
    assert info is not None
    assert info["linkinfo"]["info_kind"] == "tun"  # type: ignore[index]
    assert info["promiscuity"] == 1  # internal_dev_create: dev_set_promiscuity(1)
    assert info["ifindex"] == dev.ifindex


def test_ping_internal_port(hosts: Hosts, hub: tuple[Switch, Vport]) -> None:
    _sw, port = hub
    wait_for(lambda: port.dev.is_up, what="int0 up")  # type: ignore[attr-defined]
    r = ping(hosts.h1, "10.77.0.3", count=3)
    assert " 0% packet loss" in r.stdout
    r = ping(hosts.sw, hosts.ip2, count=3)  # and from the switch's own stack out
    assert " 0% packet loss" in r.stdout
    st = port.get_stats()
    assert st.rx_packets >= 3 and st.tx_packets >= 3


def test_tcp_through_internal_port(hosts: Hosts, hub: tuple[Switch, Vport], tmp_path: Path) -> None:
    """TSO/partial checksums both ways through the TAP (IFF_VNET_HDR)."""
    tcp_transfer(hosts.h1, hosts.sw, "10.77.0.3", 16 << 20, tmp_path)
    tcp_transfer(hosts.sw, hosts.h2, hosts.ip2, 16 << 20, tmp_path)


def test_internal_mtu_mac_up_down(hosts: Hosts, hub: tuple[Switch, Vport]) -> None:
    sw, port = hub
    dev = port.dev  # type: ignore[attr-defined]
    sw.lt.call(lambda: dev.change_mtu(1400))
    sw.lt.call(lambda: dev.set_mac_address(bytes.fromhex("02aabbccddee")))
    info = link(hosts.sw, "int0")
    assert info is not None
    assert info["mtu"] == 1400 and info["address"] == "02:aa:bb:cc:dd:ee"
    assert dev.mtu == 1400 and dev.mac == bytes.fromhex("02aabbccddee")
    sw.lt.call(dev.stop)
    info = link(hosts.sw, "int0")
    assert info is not None and "UP" not in info["flags"]  # type: ignore[operator]
    assert not dev.is_up
    sw.lt.call(dev.open)
    info = link(hosts.sw, "int0")
    assert info is not None and "UP" in info["flags"]  # type: ignore[operator]


def test_internal_port_lifecycle(hosts: Hosts, loop_thread: LoopThread) -> None:
    sw = Switch.create(loop_thread, hosts.sw)
    try:
        assert link(hosts.sw, "dp0") is not None  # the local port: a TAP named after the dp
        sw.add("int1", "internal")
        assert link(hosts.sw, "int1") is not None
        with pytest.raises(PyvswitchError) as e:  # the name of an existing device
            loop_thread.call(lambda: sw.dp.vport_add("p1", "internal"))
        assert e.value.errno == errno.EEXIST
        sw.delete("int1")
        assert link(hosts.sw, "int1") is None  # the TAP went with the port
        sw.add("int1", "internal")  # and the name can be used again
        assert link(hosts.sw, "int1") is not None
    finally:
        sw.close()
    assert link(hosts.sw, "int1") is None
    assert link(hosts.sw, "dp0") is None
