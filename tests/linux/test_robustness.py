"""Devices that go down or away under a running switch."""

from __future__ import annotations

import os
import time

import pytest

from pyvswitch.backends.linux import (
    LinuxNetns,
    NetnsHandle,
    PacketDevice,
    netns_delete,
    netns_exists,
)
from pyvswitch.errors import DeviceError

from .conftest import SESSION_PREFIX, Hosts, LoopThread, Netns, ping, sh, wait_for
from .switch import Switch

pytestmark = pytest.mark.root


def _switch(hosts: Hosts, lt: LoopThread) -> Switch:
    sw = Switch.create(lt, hosts.sw)
    p1, p2 = sw.add("p1"), sw.add("p2")
    sw.forward(p1.port_no, [p2.port_no])
    sw.forward(p2.port_no, [p1.port_no])
    return sw


def test_veth_deleted_then_readded(hosts: Hosts, loop_thread: LoopThread) -> None:
    sw = _switch(hosts, loop_thread)
    try:
        ping(hosts.h1, hosts.ip2, count=2)
        p2 = sw.dp.get_vport("p2")
        dev = p2.dev  # type: ignore[attr-defined]
        errors_before = loop_thread.loop.n_callback_errors

        sh("ip", "-n", hosts.h2, "link", "delete", "eth0")  # takes p2 with it
        wait_for(lambda: dev.dead, what="the switch to notice p2 is gone")
        assert not dev.is_up
        # traffic towards the missing port is counted, nothing crashes
        r = ping(hosts.h1, hosts.ip2, count=3, check=False)
        assert r.returncode != 0
        assert loop_thread.call(lambda: sw.dp.get_vport("p2")) is p2  # the vport stays
        assert p2.get_stats().tx_dropped + (dev.get_stats64().tx_dropped or 0) > 0
        assert loop_thread.loop.n_callback_errors == errors_before
        assert loop_thread.thread.is_alive()

        # the interface comes back: re-adding the port works
        hosts.netns.veth(hosts.h2, "eth0", hosts.sw, "p2")
        hosts.netns.addr(hosts.h2, "eth0", "10.77.0.2/24")
        sw.delete("p2")
        p2 = sw.add("p2")
        assert p2.dev is not dev  # type: ignore[attr-defined]
        sw.forward(1, [p2.port_no])
        sw.forward(p2.port_no, [1])
        sh("ip", "-n", hosts.h1, "neigh", "flush", "dev", "eth0")  # h2 has a new MAC
        r = ping(hosts.h1, hosts.ip2, count=3)
        assert " 0% packet loss" in r.stdout
    finally:
        sw.close()


def test_link_down_and_up(hosts: Hosts, loop_thread: LoopThread) -> None:
    """A port whose link goes down gets ENETDOWN on its socket: the backend
    clears it (no busy loop) and receives again once the link is back."""
    sw = _switch(hosts, loop_thread)
    try:
        ping(hosts.h1, hosts.ip2, count=1)
        sh("ip", "-n", hosts.sw, "link", "set", "p1", "down")
        dev = sw.dp.get_vport("p1").dev  # type: ignore[attr-defined]
        wait_for(lambda: not dev.is_up, what="p1 down")
        n0 = loop_thread.loop.n_iterations
        time.sleep(1.0)
        assert loop_thread.loop.n_iterations - n0 < 500, "event loop spins on the error"
        assert not dev.dead
        sh("ip", "-n", hosts.sw, "link", "set", "p1", "up")
        wait_for(lambda: dev.is_up, what="p1 up")
        r = ping(hosts.h1, hosts.ip2, count=3)
        assert " 0% packet loss" in r.stdout
    finally:
        sw.close()


def test_host_namespace_deleted(hosts: Hosts, loop_thread: LoopThread) -> None:
    sw = _switch(hosts, loop_thread)
    try:
        ping(hosts.h1, hosts.ip2, count=1)
        dev1 = sw.dp.get_vport("p1").dev  # type: ignore[attr-defined]
        sh("ip", "netns", "delete", hosts.h1)  # p1's peer goes, so does p1
        hosts.netns.created.remove(hosts.h1)
        wait_for(lambda: dev1.dead, what="p1 gone")
        # the switch still works for what is left
        assert loop_thread.call(lambda: sw.dp.get_vport("p1").get_stats()) is not None
        loop_thread.call(lambda: sw.dp.vport_del("p1"))
    finally:
        sw.close()


def test_rx_handler_errors_stay_inside(hosts: Hosts, loop_thread: LoopThread) -> None:
    """An rx handler that raises is counted; the loop and the device go on."""
    ns = loop_thread.call(lambda: LinuxNetns(hosts.sw, loop_thread.loop))
    try:
        dev = loop_thread.call(lambda: ns.dev_get_by_name("p1"))
        assert isinstance(dev, PacketDevice)
        calls = []

        def bad(frames: object) -> None:
            calls.append(frames)
            raise RuntimeError("handler bug")

        loop_thread.call(lambda: dev.rx_handler_register(bad))
        ping(hosts.h1, hosts.ip2, count=2, check=False)
        wait_for(lambda: len(calls) >= 2, what="frames at the handler")
        assert dev.rx_errors >= 2
        assert loop_thread.thread.is_alive()
        assert loop_thread.loop.n_callback_errors == 0
        loop_thread.call(dev.rx_handler_unregister)
    finally:
        loop_thread.call(ns.close)


def test_namespace_switching_leaves_thread_alone(hosts: Hosts) -> None:
    """Sockets are made inside the target namespace; the calling thread ends
    up where it started."""
    before = os.stat("/proc/thread-self/ns/net").st_ino
    h = NetnsHandle(hosts.sw)
    try:
        with h.entered():
            assert os.stat("/proc/thread-self/ns/net").st_ino == h.ident[1]
        assert os.stat("/proc/thread-self/ns/net").st_ino == before
        ns = LinuxNetns(hosts.sw)
        try:
            assert ns.dev_get_by_name("p1") is not None  # only exists in the switch ns
            assert ns.dev_get_by_name("eth0") is None
        finally:
            ns.close()
        assert os.stat("/proc/thread-self/ns/net").st_ino == before
    finally:
        h.close()


def test_missing_and_created_namespaces(netns: Netns) -> None:
    name = f"{SESSION_PREFIX}-new-{netns.tag}"
    with pytest.raises(DeviceError):
        LinuxNetns(name)
    netns.created.append(name)  # removed by the fixture even if this fails
    with LinuxNetns(name, create=True) as ns:
        assert netns_exists(name)
        assert ns.name == name
        assert ns.dev_get_by_name("lo") is not None
    netns_delete(name)
    assert not netns_exists(name)
