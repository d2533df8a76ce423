"""Verify the converged container: the units are systemd's, enabled, active, and come back
after a crash.  Checked inside it-sysd-plat through testinfra's lxc:// backend."""
import time

import pytest
import testinfra

box = testinfra.get_host("lxc://it-sysd-plat")

# unit -> a command that succeeds only when the daemon answers
UNITS = {
    "redis-server.service": "redis-cli -h 127.0.0.1 -p 6379 ping | grep -qx PONG",
    "memcached.service": "python3 -c \"import socket; s = socket.create_connection(('127.0.0.1', 11211), 3); "
                         "s.sendall(b'version\\r\\n'); assert s.recv(64).startswith(b'VERSION ')\"",
    "lxdctl-it-sysd-web.service": "curl -sf -o /dev/null http://127.0.0.1:18080/",
}


def _main_pid(unit):
    return int(box.check_output("systemctl show -p MainPID --value %s" % unit))


def test_pid1_is_systemd_and_no_pidfile_branch_ran():
    assert box.check_output("cat /proc/1/comm") == "systemd"
    # The pidfile branch would have written these; under systemd it must not run.
    for name in ("redis", "memcached", "it-sysd-web"):
        assert not box.file("/run/lxdctl/%s.pid" % name).exists


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_units_enabled_active_answering_under_systemd(unit):
    assert box.run("systemctl is-enabled %s" % unit).stdout.strip() == "enabled"
    assert box.run("systemctl is-active %s" % unit).stdout.strip() == "active"
    pid = _main_pid(unit)
    assert pid > 1 and box.check_output("ps -o ppid= -p %d" % pid).strip() == "1"
    assert box.run(UNITS[unit]).rc == 0


def test_distribution_units_carry_the_restart_dropin():
    for unit in ("redis-server.service", "memcached.service"):
        dropin = box.file("/etc/systemd/system/%s.d/lxdctl.conf" % unit)
        assert dropin.exists and dropin.contains("^Restart=on-failure$")
    web = box.file("/etc/systemd/system/lxdctl-it-sysd-web.service")
    assert web.contains("^User=nobody$") and web.contains("^ExecStart=/usr/bin/python3 -m http.server 18080 ")
    for unit in UNITS:
        assert box.check_output("systemctl show -p Restart --value %s" % unit) == "on-failure"


def test_systemd_restarts_killed_daemons():
    before = dict((unit, _main_pid(unit)) for unit in UNITS)
    for pid in before.values():
        box.run("kill -9 %d" % pid)
    waiting = set(UNITS)
    deadline = time.time() + 30
    while waiting:
        for unit in sorted(waiting):
            now = _main_pid(unit)
            if now not in (0, before[unit]) and box.run("systemctl is-active %s" % unit).stdout.strip() == "active" \
                    and box.run(UNITS[unit]).rc == 0:
                waiting.discard(unit)
        assert time.time() < deadline, "systemd did not bring %s back after kill -9" % ", ".join(sorted(waiting))
        time.sleep(0.5)
    for unit in UNITS:
        assert box.check_output("systemctl show -p NRestarts --value %s" % unit) != "0"
