"""module_utils/_daemon: detection, the no-systemd path with real (tiny) processes, and the
systemd path against a fake ``systemctl`` that records its calls."""
import os
import signal
import socket
import stat
import sys
import textwrap
import time

import pytest

from ansible_collections.lxdctl.platform.plugins.module_utils import _daemon
from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError


@pytest.fixture(autouse=True)
def private_dirs(tmp_path, monkeypatch):
    monkeypatch.setattr(_daemon, "LOG_DIR", str(tmp_path / "log"))
    monkeypatch.setattr(_daemon, "UNIT_DIR", str(tmp_path / "units"))
    (tmp_path / "units").mkdir()
    yield tmp_path


def free_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def http_server(port):
    return [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]


# --- detection --------------------------------------------------------------------------------
def _proc1(tmp_path, comm):
    proc = tmp_path / "proc"
    (proc / "1").mkdir(parents=True)
    (proc / "1" / "comm").write_text(comm + "\n")
    return str(proc)


def test_init_system_without_run_dir_is_none(tmp_path):
    assert _daemon.init_system(run_dir=str(tmp_path / "absent"), proc_root=_proc1(tmp_path, "systemd")) == "none"


def test_init_system_needs_systemd_as_pid1(tmp_path):
    run = tmp_path / "run-systemd"
    run.mkdir()
    assert _daemon.init_system(run_dir=str(run), proc_root=_proc1(tmp_path, "bash")) == "none"


def test_init_system_systemd(tmp_path):
    run = tmp_path / "run-systemd"
    run.mkdir()
    assert _daemon.init_system(run_dir=str(run), proc_root=_proc1(tmp_path, "systemd")) == "systemd"


def test_this_host_has_no_systemd():
    assert _daemon.init_system() in ("systemd", "none")


# --- pidfiles ---------------------------------------------------------------------------------
def test_read_pid_variants(tmp_path):
    path = tmp_path / "x.pid"
    assert _daemon.read_pid(str(path)) is None
    path.write_text("garbage\n")
    assert _daemon.read_pid(str(path)) is None
    path.write_text("%d\n/var/lib/postgresql\n" % os.getpid())  # PostgreSQL's postmaster.pid shape
    assert _daemon.read_pid(str(path)) == os.getpid()
    assert _daemon.is_running(str(path))


def test_dead_pid_is_not_running(tmp_path):
    path = tmp_path / "x.pid"
    path.write_text("999999999\n")
    assert not _daemon.is_running(str(path))


# --- no systemd: real processes -------------------------------------------------------------
def test_start_stop_cycle(tmp_path):
    port = free_port()
    pidfile = str(tmp_path / "run" / "web.pid")
    try:
        assert _daemon.start("web", http_server(port), pidfile, wait_port=port, system="none") is True
        assert _daemon.is_running(pidfile)
        assert _daemon.port_open(port)
        assert os.path.exists(_daemon.log_path("web"))
        assert _daemon.status("web", pidfile, wait_port=port, system="none") == "running"
        # Starting again changes nothing.
        assert _daemon.start("web", http_server(port), pidfile, wait_port=port, system="none") is False
    finally:
        stopped = _daemon.stop("web", pidfile, timeout=5, system="none")
    assert stopped is True
    assert not _daemon.is_running(pidfile)
    assert not os.path.exists(pidfile)
    assert _daemon.stop("web", pidfile, system="none") is False
    assert _daemon.status("web", pidfile, wait_port=port, system="none") == "stopped"


def test_daemon_runs_in_its_own_session(tmp_path):
    port = free_port()
    pidfile = str(tmp_path / "web.pid")
    try:
        _daemon.start("web", http_server(port), pidfile, wait_port=port, system="none")
        pid = _daemon.read_pid(pidfile)
        assert os.getsid(pid) == pid
        assert os.readlink("/proc/%d/fd/0" % pid) == os.devnull
    finally:
        _daemon.stop("web", pidfile, system="none")


def test_external_daemon_is_left_alone(tmp_path):
    port = free_port()
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen(1)
    try:
        pidfile = str(tmp_path / "other.pid")
        assert _daemon.status("other", pidfile, wait_port=port, system="none") == "external"
        assert _daemon.start("other", ["/bin/false"], pidfile, wait_port=port, system="none") is False
        assert not os.path.exists(pidfile)
    finally:
        listener.close()


def test_start_reports_the_log_when_the_process_dies(tmp_path):
    argv = [sys.executable, "-c", "import sys; print('config error on line 3', flush=True); sys.exit(3)"]
    with pytest.raises(LxdctlError) as err:
        _daemon.start("broken", argv, str(tmp_path / "b.pid"), wait_port=free_port(), timeout=10, system="none")
    assert "broken" in err.value.msg
    assert "config error on line 3" in err.value.msg
    assert "exited" in err.value.msg


def test_start_times_out_when_never_ready(tmp_path):
    pidfile = str(tmp_path / "s.pid")
    try:
        with pytest.raises(LxdctlError) as err:
            _daemon.start("sleeper", ["sleep", "30"], pidfile, wait_port=free_port(), timeout=1, system="none")
        assert "not listening" in err.value.msg and "sleeper" in err.value.msg
    finally:
        _daemon.stop("sleeper", pidfile, timeout=2, system="none")


def test_start_missing_binary(tmp_path):
    with pytest.raises(LxdctlError) as err:
        _daemon.start("ghost", ["/nonexistent/ghostd"], str(tmp_path / "g.pid"), system="none")
    assert "ghost" in err.value.msg and "/nonexistent/ghostd" in err.value.msg


def test_env_reaches_the_daemon(tmp_path):
    out = tmp_path / "env.txt"
    script = "import os, time; open(%r, 'w').write(os.environ['LXDCTL_T']); time.sleep(30)" % str(out)
    pidfile = str(tmp_path / "e.pid")
    try:
        _daemon.start("envd", [sys.executable, "-c", script], pidfile, env={"LXDCTL_T": "v1"}, system="none")
        deadline = time.time() + 10
        # The file exists a moment before its content is written: wait for the content.
        while not (out.exists() and out.read_text()) and time.time() < deadline:
            time.sleep(0.05)
        assert out.read_text() == "v1"
    finally:
        _daemon.stop("envd", pidfile, system="none")


def test_forking_daemon_writes_its_own_pidfile(tmp_path):
    pidfile = tmp_path / "f.pid"
    script = textwrap.dedent("""
        import os, sys, time
        if os.fork() == 0:
            os.setsid()
            open(%r, "w").write("%%d\\n" %% os.getpid())
            time.sleep(30)
            os._exit(0)
        sys.exit(0)
    """ % str(pidfile))
    try:
        assert _daemon.start("forker", [sys.executable, "-c", script], str(pidfile), forking=True, timeout=10,
                             system="none") is True
        assert _daemon.is_running(str(pidfile))
    finally:
        _daemon.stop("forker", str(pidfile), system="none")


def test_reload_sends_the_signal(tmp_path):
    marker, ready = tmp_path / "hup", tmp_path / "ready"
    script = textwrap.dedent("""
        import signal, time
        signal.signal(signal.SIGHUP, lambda *a: open(%r, "w").write("reloaded"))
        open(%r, "w").close()
        while True:
            time.sleep(0.1)
    """ % (str(marker), str(ready)))
    pidfile = str(tmp_path / "r.pid")
    try:
        _daemon.start("hup", [sys.executable, "-c", script], pidfile, system="none")
        deadline = time.time() + 30  # a HUP before the handler is installed would end the child
        while not ready.exists() and time.time() < deadline:
            time.sleep(0.05)
        assert _daemon.reload("hup", pidfile, "HUP", system="none") is True
        deadline = time.time() + 5
        while not marker.exists() and time.time() < deadline:
            time.sleep(0.05)
        assert marker.read_text() == "reloaded"
    finally:
        _daemon.stop("hup", pidfile, system="none")


def test_reload_of_a_stopped_daemon_fails(tmp_path):
    with pytest.raises(LxdctlError) as err:
        _daemon.reload("nothing", str(tmp_path / "n.pid"), "HUP", system="none")
    assert "not running" in err.value.msg


def test_stop_escalates_to_sigkill(tmp_path):
    script = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)"
    pidfile = str(tmp_path / "k.pid")
    _daemon.start("stubborn", [sys.executable, "-c", script], pidfile, system="none")
    time.sleep(0.3)
    assert _daemon.stop("stubborn", pidfile, timeout=1, system="none") is True
    assert not _daemon.is_running(pidfile)


def test_signal_names():
    assert _daemon.signal_number("HUP") == signal.SIGHUP
    assert _daemon.signal_number("sigusr1") == signal.SIGUSR1
    with pytest.raises(LxdctlError):
        _daemon.signal_number("BOGUS")


# --- systemd: a fake systemctl ---------------------------------------------------------------
@pytest.fixture
def fake_systemctl(tmp_path, monkeypatch):
    """A systemctl that logs its arguments and keeps unit states in files."""
    state = tmp_path / "state"
    state.mkdir()
    log = tmp_path / "systemctl.log"
    script = tmp_path / "systemctl"
    script.write_text(textwrap.dedent("""\
        #!%s
        import os, sys
        state, log = %r, %r
        args = sys.argv[1:]
        open(log, "a").write(" ".join(args) + "\\n")
        unit = args[-1]
        path = os.path.join(state, unit)
        if args[0] == "is-active":
            sys.exit(0 if os.path.exists(path) else 3)
        if args[0] == "is-enabled":
            sys.exit(0 if os.path.exists(path + ".enabled") else 1)
        if args[0] == "enable":
            open(path + ".enabled", "w").close()
        if args[0] in ("start", "restart", "reload-or-restart"):
            open(path, "w").close()
        if args[0] == "stop" and os.path.exists(path):
            os.unlink(path)
        sys.exit(0)
    """ % (sys.executable, str(state), str(log))))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(_daemon, "SYSTEMCTL", str(script))

    def calls():
        return log.read_text().splitlines() if log.exists() else []

    return calls


def test_systemd_written_unit(fake_systemctl, private_dirs):
    argv = ["/usr/bin/pebble", "-config", "/etc/lxdctl/pebble/pebble-config.json"]
    assert _daemon.start("pebble", argv, "/run/lxdctl/pebble.pid", env={"PEBBLE_VA_NOSLEEP": "1"},
                         system="systemd") is True
    unit = (private_dirs / "units" / "lxdctl-pebble.service").read_text()
    assert "ExecStart=/usr/bin/pebble -config /etc/lxdctl/pebble/pebble-config.json" in unit
    assert "Environment=PEBBLE_VA_NOSLEEP=1" in unit
    assert fake_systemctl() == ["is-enabled --quiet lxdctl-pebble.service", "is-active --quiet lxdctl-pebble.service",
                                "daemon-reload", "enable lxdctl-pebble.service", "start lxdctl-pebble.service"]
    # A second start with the same unit changes nothing and reloads nothing.
    assert _daemon.start("pebble", argv, "/run/lxdctl/pebble.pid", env={"PEBBLE_VA_NOSLEEP": "1"},
                         system="systemd") is False
    assert fake_systemctl()[-2:] == ["is-enabled --quiet lxdctl-pebble.service", "is-active --quiet lxdctl-pebble.service"]
    # A changed command line is written and the running unit restarted.
    assert _daemon.start("pebble", argv + ["-strict"], "/run/lxdctl/pebble.pid", env={"PEBBLE_VA_NOSLEEP": "1"},
                         system="systemd") is True
    assert fake_systemctl()[-2:] == ["daemon-reload", "restart lxdctl-pebble.service"]
    assert _daemon.status("pebble", None, system="systemd") == "running"
    assert _daemon.stop("pebble", None, system="systemd") is True
    assert fake_systemctl()[-1] == "stop lxdctl-pebble.service"
    assert _daemon.stop("pebble", None, system="systemd") is False


def test_systemd_distribution_unit(fake_systemctl, private_dirs):
    assert _daemon.start("nginx", ["/usr/sbin/nginx"], "/run/nginx.pid", unit="nginx", system="systemd") is True
    # The distribution's unit is used as is, plus our drop-in that restarts it when it fails.
    assert [p.name for p in (private_dirs / "units").iterdir()] == ["nginx.service.d"]
    assert "Restart=on-failure" in (private_dirs / "units" / "nginx.service.d" / "lxdctl.conf").read_text()
    assert fake_systemctl()[-3:] == ["daemon-reload", "enable nginx.service", "start nginx.service"]
    assert _daemon.systemd_pending("nginx", [], unit="nginx") == []
    assert _daemon.start("nginx", ["/usr/sbin/nginx"], "/run/nginx.pid", unit="nginx", system="systemd") is False
    assert _daemon.reload("nginx", "/run/nginx.pid", "HUP", unit="nginx", system="systemd") is True
    assert fake_systemctl()[-1] == "reload-or-restart nginx.service"


def test_systemd_active_but_disabled_unit_is_enabled_not_restarted(fake_systemctl, private_dirs, tmp_path):
    (tmp_path / "state" / "redis-server.service").write_text("")  # active, not enabled
    assert _daemon.systemd_pending("redis", [], unit="redis-server") == ["drop-in", "enable"]
    assert _daemon.start("redis", [], None, unit="redis-server", system="systemd") is True
    assert fake_systemctl()[-2:] == ["daemon-reload", "enable redis-server.service"]
    assert _daemon.systemd_pending("redis", [], unit="redis-server") == []


def test_systemd_reload_of_stopped_unit_fails(fake_systemctl):
    with pytest.raises(LxdctlError) as err:
        _daemon.reload("redis", None, "HUP", unit="redis-server", system="systemd")
    assert "redis-server.service is not running" in err.value.msg


def test_systemd_failure_is_reported(tmp_path, monkeypatch):
    script = tmp_path / "systemctl"
    script.write_text("#!/bin/sh\n[ \"$1\" = is-active ] && exit 3\necho 'Unit lxd.service not found.' >&2\nexit 5\n")
    script.chmod(0o755)
    monkeypatch.setattr(_daemon, "SYSTEMCTL", str(script))
    with pytest.raises(LxdctlError) as err:
        _daemon.start("lxd", ["lxd"], None, unit="lxd", system="systemd")
    assert "Failed to start lxd" in err.value.msg and "Unit lxd.service not found" in err.value.msg


def test_render_unit_quotes_arguments():
    text = _daemon.render_unit("nginx", ["/usr/sbin/nginx", "-g", "daemon off; master_process on;"],
                               env={"A": "b c"}, user="www-data", forking=True, pidfile="/run/nginx.pid")
    assert 'ExecStart=/usr/sbin/nginx -g "daemon off; master_process on;"' in text
    assert 'Environment="A=b c"' in text
    assert "User=www-data" in text and "Type=forking" in text and "PIDFile=/run/nginx.pid" in text
    assert _daemon._quote_systemd("100%") == "100%%"
    assert _daemon._quote_systemd("a$b c") == '"a$$b c"'
