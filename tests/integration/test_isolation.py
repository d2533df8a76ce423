"""Network isolation between project containers on the one shared bridge.

Mechanism: ``security.port_isolation=true`` on each project container's bridged NIC. The
bridge drops frames between two isolated ports, so project containers cannot reach each
other, while every container still reaches the host (the platform's database and cache
ports) on the bridge address. The containers are made with lxd_instance, like the project
role makes them; the probes use `lxc exec` and curl.
"""
import http.server
import contextlib
import subprocess
import threading
import time

import pytest

from tests.integration.lxd_support import run_module

pytestmark = pytest.mark.integration

BRIDGE_ADDRESS = "10.77.0.1"
A, B, C = "it-inst-iso-a", "it-inst-iso-b", "it-inst-iso-control"
PORT = 8000


def lxc(*args, check=True, timeout=60):
    proc = subprocess.run(["lxc"] + list(args), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError("lxc %s failed: %s" % (" ".join(args), proc.stderr))
    return proc


def curl_from(name, url):
    """Exit code of curl run inside ``name`` (0 = a response came back)."""
    return lxc("exec", name, "--", "curl", "-s", "-o", "/dev/null", "--max-time", "3", url, check=False).returncode


def nic(isolated):
    return {"eth0": {"type": "nic", "network": "lxdctlbr0", "name": "eth0",
                     "security.port_isolation": "true" if isolated else "false"}}


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server API
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"platform")

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def host_listener():
    server = http.server.ThreadingHTTPServer((BRIDGE_ADDRESS, 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://%s:%d/" % (BRIDGE_ADDRESS, server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def containers():
    names = {A: True, B: True, C: False}
    for name in names:
        lxc("delete", "--force", name, check=False)
    addresses, listeners = {}, []
    try:
        for name, isolated in names.items():
            res = run_module("lxd_instance", dict(name=name, image="lxdctl-base", profiles=["lxdctl"],
                                                  devices=nic(isolated), state="started", timeout=60))
            assert not res.failed, res
            addresses[name] = res["ipv4"]
            assert lxc("config", "device", "get", name, "eth0", "security.port_isolation").stdout.strip() == \
                ("true" if isolated else "false")
        for name in (A, B):
            listeners.append(subprocess.Popen(
                ["lxc", "exec", name, "--", "python3", "-m", "http.server", str(PORT), "--bind", "0.0.0.0"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for name in (A, B):
            deadline = time.time() + 15
            while curl_from(name, "http://127.0.0.1:%d/" % PORT) != 0:
                assert time.time() < deadline, "listener in %s did not come up" % name
                time.sleep(0.2)
        yield addresses
    finally:
        for proc in listeners:
            proc.terminate()
            proc.wait(timeout=10)
        for name in names:
            lxc("delete", "--force", name, check=False)


PLATFORM_RULE = ["FORWARD", "-i", "lxdctlbr0", "-o", "lxdctlbr0", "-m", "comment", "--comment",
                 "lxdctl project isolation", "-j", "DROP"]


@contextlib.contextmanager
def without_platform_rule():
    """Lift the platform's FORWARD drop for a control check, and always put it back.

    Where br_netfilter is loaded (it is here) the rule also drops traffic bridged between
    containers, so a control that shows port isolation alone at work must run without it."""
    subprocess.run(["iptables", "-D"] + PLATFORM_RULE, check=True)
    try:
        yield
    finally:
        subprocess.run(["iptables", "-I"] + PLATFORM_RULE, check=True)


def test_listeners_are_reachable_without_isolation(containers):
    # controls: the host and a non-isolated container reach B, so a failure below is the isolation
    url = "http://%s:%d/" % (containers[B], PORT)
    assert subprocess.run(["curl", "-s", "-o", "/dev/null", "--max-time", "3", url]).returncode == 0
    with without_platform_rule():
        assert curl_from(C, url) == 0


def test_the_platform_rule_alone_also_stops_bridged_traffic_between_containers(containers):
    """With br_netfilter, the FORWARD drop stops even a non-isolated container (defence in depth)."""
    if open("/proc/sys/net/bridge/bridge-nf-call-iptables").read().strip() != "1":
        pytest.fail("this host does not pass bridged traffic through iptables; the test assumes it does")
    assert curl_from(C, "http://%s:%d/" % (containers[B], PORT)) != 0


def test_isolated_containers_cannot_connect_to_each_other(containers):
    assert curl_from(A, "http://%s:%d/" % (containers[B], PORT)) != 0
    assert curl_from(B, "http://%s:%d/" % (containers[A], PORT)) != 0


def test_isolated_containers_reach_the_host_services(containers, host_listener):
    for name in (A, B, C):
        out = lxc("exec", name, "--", "curl", "-s", "--max-time", "3", host_listener).stdout
        assert out == "platform", name


UDP_PROBE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9999))
s.settimeout(float(sys.argv[1]))
try:
    print(s.recvfrom(100)[0].decode())
except socket.timeout:
    print("nothing")
"""
UDP_SEND = "import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); " \
           "[s.sendto(b'probe', (sys.argv[1], 9999)) for _ in range(3)]"


def udp_reaches_b(addresses):
    """Send UDP from A to B and report whether B received it."""
    receiver = subprocess.Popen(["lxc", "exec", B, "--", "python3", "-c", UDP_PROBE, "4"],
                                stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    lxc("exec", A, "--", "python3", "-c", UDP_SEND, addresses[B])
    out, _ = receiver.communicate(timeout=15)
    return out.strip() == "probe"


@pytest.fixture
def route_via_bridge_address(containers):
    """A sends B's traffic to the host, which forwards it back out on the same bridge."""
    lxc("exec", A, "--", "ip", "route", "replace", containers[B] + "/32", "via", BRIDGE_ADDRESS)
    yield containers
    lxc("exec", A, "--", "ip", "route", "del", containers[B] + "/32", check=False)


def test_direct_udp_between_isolated_containers_is_dropped(containers):
    assert not udp_reaches_b(containers)


def test_route_through_the_bridge_address_gets_no_tcp_connection(route_via_bridge_address):
    # B's reply goes straight back to A, isolated port to isolated port, and is dropped
    assert curl_from(A, "http://%s:%d/" % (route_via_bridge_address[B], PORT)) != 0


def test_platform_drops_packets_routed_back_into_the_bridge(route_via_bridge_address):
    """Port isolation alone lets one-way packets through when A routes them via the host (the
    host forwards them out of B's bridge port).  `lxdctl init` installs a FORWARD drop for
    bridge-to-same-bridge traffic (roles/platform/tasks/firewall.yml); with it nothing arrives."""
    present = subprocess.run(["iptables", "-C"] + PLATFORM_RULE, capture_output=True)
    assert present.returncode == 0, "lxdctl init did not install the isolation rule: %s" % present.stderr
    assert not udp_reaches_b(route_via_bridge_address)
    # Control: without the rule the packets do arrive, so the check above is not vacuous.
    with without_platform_rule():
        assert udp_reaches_b(route_via_bridge_address), "expected the gap that the rule closes"
