"""The daemon module through real Ansible: check mode, changed only on a real change."""
import socket
import sys

from tests.integration.lxd_support import run_module


def free_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_daemon_module_lifecycle(tmp_path):
    port = free_port()
    args = {
        "name": "unit-daemon-web",
        "argv": [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        "pidfile": str(tmp_path / "web.pid"),
        "wait_port": "127.0.0.1:%d" % port,
        "init_system": "none",
    }
    try:
        checked = run_module("daemon", dict(args, state="started"), check=True)
        assert checked["changed"] is True and checked["status"] == "stopped"
        assert not (tmp_path / "web.pid").exists()

        started = run_module("daemon", dict(args, state="started"))
        assert started["changed"] is True and started["status"] == "running"
        assert started["init_system"] == "none" and started["pid"] > 0

        again = run_module("daemon", dict(args, state="started"))
        assert again["changed"] is False and again["pid"] == started["pid"]

        restarted = run_module("daemon", dict(args, state="restarted"))
        assert restarted["changed"] is True and restarted["pid"] != started["pid"]

        stop_check = run_module("daemon", dict(args, state="stopped"), check=True)
        assert stop_check["changed"] is True and stop_check["status"] == "running"
    finally:
        stopped = run_module("daemon", dict(args, state="stopped"))
    assert stopped["changed"] is True and stopped["status"] == "stopped"
    assert run_module("daemon", dict(args, state="stopped"))["changed"] is False


def test_daemon_module_reports_a_failed_start(tmp_path):
    result = run_module("daemon", {
        "name": "unit-daemon-broken",
        "argv": [sys.executable, "-c", "import sys; print('bad setting x', flush=True); sys.exit(2)"],
        "pidfile": str(tmp_path / "b.pid"),
        "wait_port": str(free_port()),
        "timeout": 10,
        "init_system": "none",
    })
    assert result.get("failed") is True
    assert "Failed to start unit-daemon-broken" in result["msg"] and "bad setting x" in result["msg"]


def test_daemon_module_rejects_unknown_signal(tmp_path):
    result = run_module("daemon", {"name": "x", "argv": ["true"], "pidfile": str(tmp_path / "x.pid"),
                                   "state": "reloaded", "signal": "NOPE", "init_system": "none"})
    assert result.get("failed") is True and "Unknown signal" in result["msg"]
