"""Pure parts of the operations commands: Prometheus rendering, CPU sampling, the argument
lists of logs and exec, zone lookup for dns, input validation."""
import re

import click
import pytest
from click.testing import CliRunner

from lxdctl.commands import checks, dns, exec as exec_mod, logs, metrics

STATE = {
    "status": "Running", "cpu": {"usage": 5_000_000_000}, "processes": 12,
    "memory": {"usage": 104857600, "usage_peak": 209715200, "swap_usage": 0},
    "disk": {"root": {"usage": 1048576}},
    "network": {"lo": {"type": "loopback", "counters": {"bytes_received": 9}},
                "eth0": {"type": "broadcast", "counters": {"bytes_received": 1000, "bytes_sent": 2000,
                                                           "packets_received": 10, "packets_sent": 20}}},
}


def test_sample_and_cpu_percent():
    first = metrics.sample(STATE)
    second = dict(metrics.sample(dict(STATE, cpu={"usage": 6_000_000_000})), time=first["time"] + 2.0)
    assert metrics.cpu_percent(first, second) == 50.0  # 1 s of CPU in 2 s: half a core
    assert first["network"] == {"eth0": {"rx_bytes": 1000, "tx_bytes": 2000, "rx_packets": 10, "tx_packets": 20}}
    assert first["disk_bytes"] == {"root": 1048576} and first["processes"] == 12
    assert metrics.cpu_percent(second, first) == 0.0
    missing = metrics.sample(None)
    assert missing["status"] == "Missing" and missing["cpu_ns"] == 0


def test_parse_size():
    assert metrics.parse_size("512MiB") == 512 * 2 ** 20
    assert metrics.parse_size("1GB") == 10 ** 9
    assert metrics.parse_size("2048") == 2048
    assert metrics.parse_size("50%") is None and metrics.parse_size(None) is None


def test_prometheus_rendering():
    first = metrics.sample(STATE)
    second = dict(metrics.sample(dict(STATE, cpu={"usage": 5_500_000_000})), time=first["time"] + 1.0)
    row = metrics.figures('we"ird\\app', "lxdctl-app", first, second, {"limits.memory": "256MiB"})
    text = metrics.render_prometheus([row])
    assert text.endswith("\n")
    assert '# TYPE lxdctl_cpu_seconds_total counter' in text
    assert 'lxdctl_cpu_usage_percent{container="lxdctl-app",project="we\\"ird\\\\app"} 50.0' in text
    assert 'lxdctl_memory_limit_bytes{container="lxdctl-app",project="we\\"ird\\\\app"} 268435456' in text
    assert 'lxdctl_network_receive_bytes_total{container="lxdctl-app",interface="eth0",project="we\\"ird\\\\app"} 1000' in text
    assert 'interface="lo"' not in text
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name = line.split()[2]
            assert name not in names  # one TYPE line per family
            names.add(name)
        elif not line.startswith("# HELP "):
            assert re.match(r'^[a-z_]+\{.*\} [0-9.]+$', line), line
    assert metrics.render_prometheus([]) == "\n"


def test_journal_argv():
    argv = logs.journal_argv("lxdctl-app", tail=5, follow=True, since="1 hour ago")
    assert argv[:5] == ["lxc", "exec", "lxdctl-app", "-T", "--"]
    assert "--unit=lxdctl-app@*" in argv and "--lines=5" in argv and "--since=1 hour ago" in argv and "--follow" in argv
    assert "--unit=lxdctl-app@*" not in logs.journal_argv("c", system=True)


@pytest.mark.parametrize("value,good", [("1 hour ago", True), ("2026-01-01 10:00:00", True), ("yesterday", True),
                                        ("-1h", True), ("--help", False), ("a;b", False), ("x\ny", False)])
def test_since_rule(value, good):
    if good:
        assert logs.check_since(None, None, value) == value
    else:
        with pytest.raises(click.BadParameter):
            logs.check_since(None, None, value)


def test_exec_argv_keeps_words_apart():
    argv = exec_mod.exec_argv("lxdctl-app", ["echo", "$(id)", "; rm -rf /"], ids=(999, 998, "/srv/app"))
    assert argv[:4] == ["lxc", "exec", "lxdctl-app", "-T"]
    assert argv[argv.index("--user") + 1] == "999" and argv[argv.index("--group") + 1] == "998"
    tail = argv[argv.index("--") + 1:]
    assert tail == ["sh", "-c", exec_mod.PROLOGUE, "/etc/lxdctl/app.env", "echo", "$(id)", "; rm -rf /"]
    assert "--user" not in exec_mod.exec_argv("c", ["true"], None, tty=True)
    assert exec_mod.exec_argv("c", ["true"], None, tty=True)[3] == "-t"


def test_dns_zone_for_picks_the_longest():
    zones = ["lxdctl.test", "apps.lxdctl.test"]
    assert dns.zone_for("a.apps.lxdctl.test", zones) == "apps.lxdctl.test"
    assert dns.zone_for("a.lxdctl.test", zones) == "lxdctl.test"
    assert dns.zone_for("lxdctl.test", zones) == "lxdctl.test"
    assert dns.zone_for("xlxdctl.test", zones) is None
    assert dns.zone_for("example.org", zones) is None


def test_dns_content_checked_before_anything_runs():
    runner = CliRunner()
    result = runner.invoke(dns.dns, ["add", "www.lxdctl.test", "--type", "A", "--content", "not-an-ip"])
    assert result.exit_code == 2 and "IPv4" in result.output
    result = runner.invoke(dns.dns, ["add", "www.lxdctl.test", "--type", "MX", "--content", "mx..bad"])
    assert result.exit_code == 2


@pytest.mark.parametrize("path,good", [("/health", True), ("/a/b?x=1&y=2", True), ("health", False),
                                       ("/a b", False), ("/x\r\nHost: evil", False)])
def test_check_path_rule(path, good):
    if good:
        assert checks.check_path(None, None, path) == path
    else:
        with pytest.raises(click.BadParameter):
            checks.check_path(None, None, path)
