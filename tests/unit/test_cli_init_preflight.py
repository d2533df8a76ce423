"""The preflight script of role platform (roles/platform/files/preflight.py): the rules that
make a bad ``lxdctl init`` fail before anything changes, with the setting named."""
import importlib.util
import json
import os
import socket
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "roles", "platform", "files", "preflight.py")

spec = importlib.util.spec_from_file_location("platform_preflight", SCRIPT)
preflight = importlib.util.module_from_spec(spec)
spec.loader.exec_module(preflight)


@pytest.mark.parametrize("value, words", [
    ("10.77.0.1", "with a prefix"),
    ("10.77.0.1/31", "with a prefix"),
    ("fd00::1/64", "IPv4"),
    ("bogus", "such as 10.77.0.1/24"),
    ("10.77.0.0/24", "network or broadcast address"),
    ("10.77.0.255/24", "network or broadcast address"),
    ("8.8.8.1/24", "not a private address"),
])
def test_bad_networks_name_the_setting(value, words):
    errors = []
    assert preflight.check_network({"network_address": value, "network_name": "x"}, errors) == (None, None)
    assert len(errors) == 1 and errors[0].startswith("platform_lxd_network_address (--subnet)")
    assert words in errors[0]


def test_good_network():
    errors = []
    assert preflight.check_network({"network_address": "10.231.7.1/24", "network_name": "x"}, errors) == (
        "10.231.7.1", "10.231.7.0/24")
    assert errors == []


def test_port_held_by_another_process_is_reported():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        errors = []
        preflight.check_ports({"ports": [{"setting": "platform_dns_port", "option": "--dns-port", "port": port,
                                          "addresses": ["127.0.0.1"], "owners": ["pdns_server"]}]}, "10.77.0.1", errors)
        assert len(errors) == 1
        assert errors[0].startswith("platform_dns_port: port %d" % port)
        assert "python" in errors[0] and "--dns-port" in errors[0]
        # Held by "our" daemon (the owner list names this process): accepted.
        errors = []
        name = open("/proc/self/comm").read().strip()
        preflight.check_ports({"ports": [{"setting": "platform_dns_port", "port": port, "addresses": ["127.0.0.1"],
                                          "owners": [name]}]}, "10.77.0.1", errors)
        assert errors == []
    finally:
        holder.close()


def test_same_port_for_two_settings_is_reported():
    errors = []
    preflight.check_ports({"ports": [
        {"setting": "platform_redis_port", "port": 47001, "addresses": ["127.0.0.1"]},
        {"setting": "platform_mysql_port", "port": 47001, "addresses": ["127.0.0.1"]},
    ]}, "10.77.0.1", errors)
    assert any("platform_mysql_port" in e and "also set for platform_redis_port" in e for e in errors)


def test_disabled_component_ports_are_skipped_and_bad_ports_refused():
    errors = []
    preflight.check_ports({"ports": [{"setting": "platform_pebble_port", "port": ""},
                                     {"setting": "platform_redis_port", "port": 70000}]}, "10.77.0.1", errors)
    assert errors == ["platform_redis_port must be a port number from 1 to 65535 (got 70000)"]


def test_unreachable_mirror_names_the_setting():
    errors = []
    preflight.check_mirror("http://127.0.0.1:9/debian", "bookworm", errors)
    assert errors and errors[0].startswith("platform_images_mirror (--mirror) http://127.0.0.1:9/debian cannot be reached")
    errors = []
    preflight.check_mirror("file:///etc", "bookworm", errors)
    assert "must be an http:// or https://" in errors[0]


def test_report_shape_from_the_environment(tmp_path):
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"pdns_api_key": "k"}))
    (tmp_path / "f").write_text("abc\n")
    env = dict(os.environ, LXDCTL_PREFLIGHT=json.dumps({
        "network_address": "10.231.7.1/24", "files": [str(tmp_path / "f"), str(tmp_path / "missing")],
        "line_files": [str(tmp_path / "f")], "secrets_file": str(secrets),
        "daemons": [{"name": "ghost", "pidfile": str(tmp_path / "g.pid")}]}))
    proc = subprocess.run([sys.executable, SCRIPT], capture_output=True, text=True, env=env, check=True)
    report = json.loads(proc.stdout)
    assert report["errors"] == [] and report["subnet"] == "10.231.7.0/24"
    assert report["files"][str(tmp_path / "f")]["sha1"] == "03cfd743661f07975fa2f1220c5194cbaff48451"
    assert report["files"][str(tmp_path / "missing")] == {"exists": False}
    assert report["lines"][str(tmp_path / "f")] == ["abc"]
    assert report["daemons"] == {"ghost": "stopped"}
    assert report["secrets"] == {"pdns_api_key": "k"}
    assert report["init_system"] in ("systemd", "none")
