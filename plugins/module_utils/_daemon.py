# -*- coding: utf-8 -*-
"""Start, stop and reload the platform's daemons, with or without systemd.

lxdctl runs on hosts where systemd is PID 1 (our users' servers) and on hosts where it is
not (containers, CI machines, this project's test VM).  ``init_system()`` tells which; the
other functions do the right thing for either:

* without systemd a daemon is spawned detached (new session, stdin from /dev/null, stdout
  and stderr appended to ``/var/log/lxdctl/<name>.log``), its pid written to ``pidfile``,
  and the call waits until the daemon is ready (a TCP port or a unix socket accepts
  connections) or fails with the log's tail;
* with systemd, a distribution unit (``unit=``, e.g. ``postgresql@15-main``) is driven
  through ``systemctl``, or, when there is none, a unit ``lxdctl-<name>.service`` is written
  to ``/etc/systemd/system``.  Either way the unit ends up enabled (it comes back at boot),
  active, and restarted by systemd when it fails: a distribution unit gets the drop-in
  ``<unit>.d/lxdctl.conf`` for that, since some (nginx, postgresql@) have no ``Restart=``.

Daemons that fork themselves (``forking=True``, e.g. ``pg_ctlcluster``) write their own
pidfile; the call runs the command to completion and then checks it.

Every function raises ``LxdctlError`` with the daemon's name and what went wrong.  Nothing
goes through a shell: commands are argument lists.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import pwd
import signal as _signal
import socket
import subprocess
import time

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError
from ansible_collections.lxdctl.platform.plugins.module_utils import _procs

LOG_DIR = "/var/log/lxdctl"
UNIT_DIR = "/etc/systemd/system"
SYSTEMCTL = "systemctl"

_SIGNALS = {
    "HUP": _signal.SIGHUP,
    "USR1": _signal.SIGUSR1,
    "USR2": _signal.SIGUSR2,
    "TERM": _signal.SIGTERM,
    "INT": _signal.SIGINT,
    "QUIT": _signal.SIGQUIT,
}


# --- detection ----------------------------------------------------------------------------
def init_system(run_dir="/run/systemd/system", proc_root="/proc"):
    """``"systemd"`` when systemd is PID 1 and booted the host, else ``"none"``."""
    if not os.path.isdir(run_dir):
        return "none"
    try:
        with open(os.path.join(proc_root, "1", "comm")) as handle:
            comm = handle.read().strip()
    except (IOError, OSError):
        comm = ""
    if comm == "systemd":
        return "systemd"
    try:
        exe = os.path.basename(os.readlink(os.path.join(proc_root, "1", "exe")))
    except (IOError, OSError):
        exe = ""
    return "systemd" if exe == "systemd" else "none"


def read_pid(pidfile):
    """The pid in ``pidfile`` (first line, as PostgreSQL writes it), or None."""
    if not pidfile:
        return None
    try:
        with open(pidfile) as handle:
            first = handle.readline().strip()
    except (IOError, OSError):
        return None
    try:
        pid = int(first)
    except ValueError:
        return None
    return pid if pid > 0 else None


pid_alive = _procs.pid_alive  # kept under this name: callers and tests use it


def is_running(pidfile):
    """True when ``pidfile`` names a live process."""
    return pid_alive(read_pid(pidfile))


def port_open(port, host="127.0.0.1", timeout=0.5):
    try:
        conn = socket.create_connection((host, int(port)), timeout=timeout)
    except (socket.error, OSError, ValueError):
        return False
    conn.close()
    return True


def unix_open(path, timeout=0.5):
    if not path or not os.path.exists(path):
        return False
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except (socket.error, OSError):
        return False
    finally:
        sock.close()
    return True


def _ready(wait_port, wait_unix):
    if wait_port is None and not wait_unix:
        return True
    if wait_port is not None:
        host, port = _split_port(wait_port)
        if not port_open(port, host):
            return False
    if wait_unix and not unix_open(wait_unix):
        return False
    return True


def _split_port(wait_port):
    """``5432`` or ``"10.77.0.1:5432"`` -> (host, port)."""
    text = str(wait_port)
    if ":" in text:
        host, _, port = text.rpartition(":")
        return host.strip("[]") or "127.0.0.1", int(port)
    return "127.0.0.1", int(text)


def probe(wait_port=None, wait_unix=None):
    """True when the daemon's endpoint answers (``False`` when there is none to probe)."""
    if wait_port is None and not wait_unix:
        return False
    return _ready(wait_port, wait_unix)


def log_path(name):
    return os.path.join(LOG_DIR, "%s.log" % name)


def _log_tail(name, lines=5):
    try:
        with open(log_path(name), "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 4096))
            text = handle.read().decode("utf-8", "replace")
    except (IOError, OSError):
        return ""
    tail = [line for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(tail)


def _wait(name, check, timeout, what, pid=None):
    deadline = time.time() + timeout
    delay = 0.05
    while True:
        if check():
            return
        if pid is not None and not pid_alive(pid):
            tail = _log_tail(name)
            raise LxdctlError(
                "Failed to start %s: the process exited before %s%s (log: %s)"
                % (name, what, (": " + tail) if tail else "", log_path(name))
            )
        if time.time() >= deadline:
            tail = _log_tail(name)
            raise LxdctlError(
                "Failed to start %s: not %s after %ss%s (log: %s)"
                % (name, what, timeout, (": " + tail) if tail else "", log_path(name))
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def _ready_text(wait_port, wait_unix):
    parts = []
    if wait_port is not None:
        parts.append("listening on %s" % (wait_port,))
    if wait_unix:
        parts.append("accepting connections on %s" % wait_unix)
    return " and ".join(parts) or "running"


# --- systemd ------------------------------------------------------------------------------
def unit_name(name, unit=None):
    if unit:
        return unit if "." in unit else unit + ".service"
    return "lxdctl-%s.service" % name


def _systemctl(*args):
    try:
        proc = subprocess.run([SYSTEMCTL] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True)
    except OSError as exc:
        raise LxdctlError("Failed to run systemctl %s: %s" % (" ".join(args), exc))
    return proc


def _systemctl_ok(context, *args):
    proc = _systemctl(*args)
    if proc.returncode != 0:
        raise LxdctlError("%s: systemctl %s: %s" % (context, " ".join(args),
                                                     (proc.stderr or proc.stdout).strip()))
    return proc


def unit_active(unit):
    return _systemctl("is-active", "--quiet", unit).returncode == 0


def unit_enabled(unit):
    """True when ``unit`` starts at boot (``static``, ``indirect`` and ``generated`` count, as
    ``systemctl is-enabled`` has them: those cannot be enabled and need not be)."""
    return _systemctl("is-enabled", "--quiet", unit).returncode == 0


def _quote_systemd(arg):
    """Quote one ExecStart word the way systemd parses it."""
    if arg and all(ch.isalnum() or ch in "-_./=:,@+%" for ch in arg):
        return arg.replace("%", "%%")
    return '"%s"' % arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")


def render_unit(name, argv, env=None, user=None, forking=False, pidfile=None):
    """The text of ``lxdctl-<name>.service``."""
    lines = [
        "# Written by lxdctl (role platform); changes are overwritten.",
        "[Unit]",
        "Description=lxdctl %s" % name,
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=%s" % ("forking" if forking else "simple"),
        "ExecStart=%s" % " ".join(_quote_systemd(arg) for arg in argv),
        "Restart=on-failure",
        "RestartSec=2",
    ]
    if forking and pidfile:
        lines.append("PIDFile=%s" % pidfile)
    if user:
        lines.append("User=%s" % user)
    for key in sorted(env or {}):
        lines.append("Environment=%s" % _quote_systemd("%s=%s" % (key, env[key])))
    lines += ["", "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


DROPIN = """# Written by lxdctl (role platform); changes are overwritten.
# The platform's daemons come back when they fail, whatever the distribution's unit says.
[Service]
Restart=on-failure
RestartSec=2
"""


def unit_path(name, unit_dir=None):
    return os.path.join(unit_dir or UNIT_DIR, unit_name(name))


def dropin_path(unit, unit_dir=None):
    return os.path.join(unit_dir or UNIT_DIR, unit_name(None, unit) + ".d", "lxdctl.conf")


def _differs(path, text):
    try:
        with open(path) as handle:
            return handle.read() != text
    except (IOError, OSError):
        return True


def _write_text(path, text, what):
    """Write ``text`` to ``path`` when it differs; return True when it changed."""
    if not _differs(path, text):
        return False
    try:
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        tmp = path + ".tmp"
        with open(tmp, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    except (IOError, OSError) as exc:
        raise LxdctlError("Failed to write the systemd %s %s: %s" % (what, path, exc))
    return True


def write_unit(name, text, unit_dir=None):
    """Write the unit when its text differs; return True when it changed."""
    return _write_text(unit_path(name, unit_dir), text, "unit")


def write_dropin(unit, unit_dir=None):
    """Write our drop-in for the distribution unit ``unit``; return True when it changed."""
    return _write_text(dropin_path(unit, unit_dir), DROPIN, "drop-in")


def systemd_pending(name, argv, env=None, user=None, forking=False, pidfile=None, unit=None):
    """What ``start`` would still do under systemd: a subset of ``["unit file", "drop-in",
    "enable", "start", "restart"]`` (empty when the daemon is as it should be).  Check mode
    reports from it; ``start`` does exactly these."""
    target = unit_name(name, unit)
    pending = []
    if unit:
        if _differs(dropin_path(unit), DROPIN):
            pending.append("drop-in")
    elif _differs(unit_path(name), render_unit(name, argv, env=env, user=user, forking=forking, pidfile=pidfile)):
        pending.append("unit file")
    if not unit_enabled(target):
        pending.append("enable")
    if not unit_active(target):
        pending.append("start")
    elif "unit file" in pending:
        pending.append("restart")  # the running process still has the old command line
    return pending


# --- the API ------------------------------------------------------------------------------
def status(name, pidfile, unit=None, wait_port=None, wait_unix=None, system=None):
    """``"running"``, ``"external"`` (answers, but not through our pidfile) or ``"stopped"``."""
    system = system or init_system()
    if system == "systemd":
        return "running" if unit_active(unit_name(name, unit)) else "stopped"
    if is_running(pidfile):
        return "running"
    if probe(wait_port, wait_unix):
        return "external"
    return "stopped"


def start(name, argv, pidfile, env=None, user=None, wait_port=None, wait_unix=None, timeout=30,
          unit=None, forking=False, system=None):
    """Start ``name`` unless it runs; return True when it was started.

    ``argv`` is the command (a list); ``env`` extra environment variables; ``user`` the
    account to run as (root keeps the process's own); ``wait_port`` a port or
    ``"host:port"`` and ``wait_unix`` a socket path that must accept connections before
    this returns.  ``unit`` names a distribution unit to use under systemd.
    """
    system = system or init_system()
    if system == "systemd":
        return _start_systemd(name, argv, pidfile, env, user, wait_port, wait_unix, timeout, unit, forking)
    if is_running(pidfile):
        _wait(name, lambda: _ready(wait_port, wait_unix), timeout, _ready_text(wait_port, wait_unix))
        return False
    if probe(wait_port, wait_unix):
        return False  # started by someone else (by hand, or a previous setup): leave it
    if not argv:
        raise LxdctlError("Failed to start %s: no command given" % name)
    _spawn(name, argv, pidfile, env, user, forking, timeout)
    pid = read_pid(pidfile)
    _wait(name, lambda: _ready(wait_port, wait_unix), timeout, _ready_text(wait_port, wait_unix), pid=pid)
    return True


def _start_systemd(name, argv, pidfile, env, user, wait_port, wait_unix, timeout, unit, forking):
    target = unit_name(name, unit)
    context = "Failed to start %s" % name
    pending = systemd_pending(name, argv, env=env, user=user, forking=forking, pidfile=pidfile, unit=unit)
    if "unit file" in pending:
        write_unit(name, render_unit(name, argv, env=env, user=user, forking=forking, pidfile=pidfile))
    if "drop-in" in pending:
        write_dropin(unit)
    if "unit file" in pending or "drop-in" in pending:
        _systemctl_ok(context, "daemon-reload")
    if "enable" in pending:
        _systemctl_ok(context, "enable", target)
    if "start" in pending:
        _systemctl_ok(context, "start", target)
    if "restart" in pending:
        _systemctl_ok(context, "restart", target)
    _wait(name, lambda: _ready(wait_port, wait_unix), timeout, _ready_text(wait_port, wait_unix))
    return bool(pending)


def _demote(user):
    """preexec_fn switching to ``user`` (uid, gid and supplementary groups)."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise LxdctlError("Failed to start: user %r does not exist" % user)

    def switch():
        os.initgroups(entry.pw_name, entry.pw_gid)
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)

    return entry, switch


def _spawn(name, argv, pidfile, env, user, forking, timeout):
    try:
        os.makedirs(LOG_DIR, 0o750)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise LxdctlError("Failed to start %s: cannot create %s: %s" % (name, LOG_DIR, exc))
    environ = dict(os.environ)
    environ.update(env or {})
    preexec = None
    if user and user != "root":
        entry, preexec = _demote(user)
        environ.update({"HOME": entry.pw_dir, "USER": entry.pw_name, "LOGNAME": entry.pw_name})
    try:
        log = open(log_path(name), "ab")
    except (IOError, OSError) as exc:
        raise LxdctlError("Failed to start %s: cannot open %s: %s" % (name, log_path(name), exc))
    try:
        with open(os.devnull, "rb") as devnull:
            try:
                proc = subprocess.Popen(argv, stdin=devnull, stdout=log, stderr=log, env=environ,
                                        close_fds=True, start_new_session=True, preexec_fn=preexec,
                                        cwd="/")
            except OSError as exc:
                raise LxdctlError("Failed to start %s: cannot run %s: %s" % (name, argv[0], exc.strerror or exc))
    finally:
        log.close()
    if forking:
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise LxdctlError("Failed to start %s: %s did not return within %ss" % (name, argv[0], timeout))
        if rc != 0:
            tail = _log_tail(name)
            raise LxdctlError("Failed to start %s: %s exited with %d%s (log: %s)"
                              % (name, argv[0], rc, (": " + tail) if tail else "", log_path(name)))
        _wait(name, lambda: is_running(pidfile), timeout, "writing its pidfile %s" % pidfile)
        return
    _write_pidfile(name, pidfile, proc.pid)


def _write_pidfile(name, pidfile, pid):
    if not pidfile:
        return
    try:
        directory = os.path.dirname(pidfile)
        if directory and not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        tmp = pidfile + ".tmp"
        with open(tmp, "w") as handle:
            handle.write("%d\n" % pid)
        os.rename(tmp, pidfile)
    except (IOError, OSError) as exc:
        raise LxdctlError("Failed to start %s: cannot write the pidfile %s: %s" % (name, pidfile, exc))


def stop(name, pidfile, timeout=15, unit=None, system=None, stop_signal="TERM"):
    """Stop ``name`` (``stop_signal``, then SIGKILL after ``timeout``); return True when it ran."""
    system = system or init_system()
    if system == "systemd":
        target = unit_name(name, unit)
        if not unit_active(target):
            return False
        _systemctl_ok("Failed to stop %s" % name, "stop", target)
        return True
    pid = read_pid(pidfile)
    if not pid_alive(pid):
        _remove(pidfile)
        return False
    try:
        os.kill(pid, signal_number(stop_signal))
    except OSError as exc:
        if exc.errno != errno.ESRCH:
            raise LxdctlError("Failed to stop %s (pid %d): %s" % (name, pid, exc.strerror))
    deadline = time.time() + timeout
    while pid_alive(pid) and time.time() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        try:
            os.kill(pid, _signal.SIGKILL)
        except OSError:
            pass
        deadline = time.time() + 5
        while pid_alive(pid) and time.time() < deadline:
            time.sleep(0.1)
        if pid_alive(pid):
            raise LxdctlError("Failed to stop %s: pid %d survived SIGKILL" % (name, pid))
    _remove(pidfile)
    return True


def _remove(path):
    try:
        if path:
            os.unlink(path)
    except OSError:
        pass


def signal_number(signal):
    if isinstance(signal, int):
        return signal
    key = str(signal).upper()
    key = key[3:] if key.startswith("SIG") else key
    if key not in _SIGNALS:
        raise LxdctlError("Unknown signal %r: use one of %s" % (signal, ", ".join(sorted(_SIGNALS))))
    return _SIGNALS[key]


def reload(name, pidfile, signal="HUP", unit=None, system=None):
    """Send ``signal`` (without systemd) or ``systemctl reload`` (with it); True when sent."""
    system = system or init_system()
    number = signal_number(signal)
    if system == "systemd":
        target = unit_name(name, unit)
        if not unit_active(target):
            raise LxdctlError("Failed to reload %s: %s is not running" % (name, target))
        _systemctl_ok("Failed to reload %s" % name, "reload-or-restart", target)
        return True
    pid = read_pid(pidfile)
    if not pid_alive(pid):
        raise LxdctlError("Failed to reload %s: it is not running (no live pid in %s)" % (name, pidfile))
    try:
        os.kill(pid, number)
    except OSError as exc:
        raise LxdctlError("Failed to reload %s (pid %d): %s" % (name, pid, exc.strerror))
    return True
