"""Fault injection and independent checks for the crash and fault tests (and the benches).

- ``run_cli(..., when=(pattern, action))`` runs the real CLI in its own process group and calls
  ``action(proc)`` the moment a progress line matching ``pattern`` appears on its stderr;
  ``kill_group`` (the usual action) kills the CLI, ansible-runner, ansible-playbook and the
  module processes at once with SIGKILL.  Progress lines come from ``cli/lxdctl/progress.py``
  ("  ok     <task> (1.2s)"), so a kill point is "right after task X", never a sleep.
- ``TcpProxy`` stands between lxdctl and one shared service: ``up``, ``down`` (connection
  refused) or ``reset`` (accepted, then reset).  With ``config_copy`` pointing LXDCTL_CONFIG's
  endpoint at it, a test takes *its* PowerDNS, PostgreSQL or Redis down without touching the
  daemons that other tests use.
- ``Census`` counts everything a project owns with clients that are not lxdctl: lxc, psql,
  redis-cli, dig, the nginx sites directory and sqlite3 on the state database.
"""
import json
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

BIN = os.path.dirname(sys.executable)
LXDCTL = os.path.join(BIN, "lxdctl")
PLATFORM_CONFIG = "/etc/lxdctl/platform.json"


# --- the CLI, killed or poked at a progress line -----------------------------------------------
class CliRun:
    def __init__(self, rc, out, err, fired, killed=()):
        self.returncode, self.stdout, self.stderr, self.fired = rc, out, err, fired
        self.killed = set(killed)  # the pids kill_group killed

    def __repr__(self):
        return "<lxdctl rc=%s fired=%s>\n%s\n%s" % (self.returncode, self.fired, self.stdout[-2000:], self.stderr[-4000:])


def kill_group(proc):
    """SIGKILL the CLI and everything under it, all at once: the CLI's process group and the
    ansible-playbook that ansible-runner starts on a pty in a session of its own, with its
    workers and module processes.  The tree is frozen with SIGSTOP first, so nothing forks
    past the kill; async jobs, which detach themselves, survive as they would a real crash."""
    frozen = set()
    while True:
        tree = set(descendants(proc.pid)) | {proc.pid}
        fresh = tree - frozen
        if not fresh:
            break
        for pid in fresh:
            _signal(pid, signal.SIGSTOP)
        frozen |= fresh
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for pid in frozen:
        _signal(pid, signal.SIGKILL)
    proc.killed_pids = frozen


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def descendants(root):
    """Pids of every living process below ``root`` (by parent pid, from /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def run_cli(*args, env=None, when=None, timeout=900):
    """Run ``lxdctl ARGS``; with ``when=(trigger, action)`` call ``action(proc)`` once, as soon as
    the trigger fires: a regex is matched against each stderr (progress) line, a callable is
    polled every 100 ms (an effect seen by an independent client, e.g. a new deployment row).
    Returns a ``CliRun``; ``fired`` tells whether the action ran."""
    proc = subprocess.Popen([LXDCTL] + [str(a) for a in args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=dict(os.environ, **(env or {})), start_new_session=True)
    out_chunks, err_lines, fired = [], [], threading.Event()
    out_thread = threading.Thread(target=lambda: out_chunks.append(proc.stdout.read()), daemon=True)
    out_thread.start()
    trigger, action = when if when else (None, None)
    pattern = re.compile(trigger) if isinstance(trigger, str) else None
    poller = None
    if callable(trigger):
        def poll():
            while proc.poll() is None:
                try:
                    hit = trigger()
                except Exception:  # noqa: BLE001 - a busy client this time; the next poll decides
                    hit = False
                if hit:
                    fired.set()
                    action(proc)
                    return
                time.sleep(0.1)
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
    deadline = time.monotonic() + timeout
    for raw in iter(proc.stderr.readline, b""):
        line = raw.decode("utf-8", "replace")
        err_lines.append(line)
        if pattern is not None and not fired.is_set() and pattern.search(line):
            fired.set()
            action(proc)
        if time.monotonic() > deadline:
            kill_group(proc)
            break
    rc = proc.wait(timeout=120)
    if poller is not None:
        poller.join(30)
    assert wait_dead(getattr(proc, "killed_pids", ())), "the killed processes did not die"
    out_thread.join(30)
    return CliRun(rc, b"".join(out_chunks).decode("utf-8", "replace"), "".join(err_lines), fired.is_set(),
                  getattr(proc, "killed_pids", ()))


def after_task(name):
    """The progress-line pattern of task ``name`` having finished (ok or changed)."""
    return r"^\s+(ok|changed)\s+%s" % re.escape(name)


def pid_alive(pid):
    """Whether ``pid`` runs (a zombie counts as dead)."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_dead(pids, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(pid_alive(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


# --- a platform configuration with one endpoint moved ------------------------------------------
def load_config(path=None):
    with open(path or os.environ.get("LXDCTL_CONFIG") or PLATFORM_CONFIG) as handle:
        return json.load(handle)


def config_copy(path, **sections):
    """Write a copy of the platform configuration to ``path`` with ``sections`` merged in
    (``pdns={"api_url": ...}``); returns ``{"LXDCTL_CONFIG": path}`` for a CLI env."""
    config = load_config()
    for name, values in sections.items():
        config[name] = dict(config.get(name) or {}, **values)
    fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(config, handle)
    return {"LXDCTL_CONFIG": str(path)}


# --- a platform daemon stopped, and started again exactly as role platform starts it ------------
PLATFORM_VARS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                             "roles", "platform", "vars", "main.yml")
DAEMON_OPTIONS = ("name", "unit", "argv", "pidfile", "user", "env", "wait_port", "wait_unix", "forking",
                  "stop_signal", "timeout")


def platform_daemon(name, **template_vars):
    """The ``daemon`` module's arguments for platform daemon ``name``: its entry of role
    platform's ``_platform_daemons``, rendered with ``template_vars`` (e.g. the nginx port).
    A template that needs a variable not given fails here, never with a guessed value."""
    import jinja2
    import yaml

    with open(PLATFORM_VARS) as handle:
        entries = [d for d in yaml.safe_load(handle)["_platform_daemons"] if d["name"] == name]
    assert len(entries) == 1, "no platform daemon %r" % name
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)

    def render(value):
        if isinstance(value, str):
            return env.from_string(value).render(**template_vars)
        if isinstance(value, list):
            return [render(v) for v in value]
        if isinstance(value, dict):
            return dict((k, render(v)) for k, v in value.items())
        return value

    return dict((key, render(entries[0][key])) for key in DAEMON_OPTIONS if key in entries[0])


class PlatformDaemonStopped:
    """``with PlatformDaemonStopped(args):`` the daemon is stopped through the ``daemon``
    module, as role platform would, and started again on the way out (``start()`` does it
    earlier), with the same arguments the role starts it with."""

    def __init__(self, daemon_args):
        self.args = daemon_args
        self.stopped = False

    def _run(self, state):
        from tests.support.ansible_module import run_module

        result = run_module("daemon", dict(self.args, state=state))
        assert not result.failed, result
        return result

    def __enter__(self):
        self._run("stopped")
        self.stopped = True
        return self

    def start(self):
        if self.stopped:
            self._run("started")
            self.stopped = False

    def __exit__(self, *exc):
        self.start()
        return False


# --- a TCP proxy that can be taken down or made to fail ----------------------------------------
class TcpProxy:
    """127.0.0.1:<port> forwarding to ``target``; ``mode`` is up, down (refused) or reset."""

    def __init__(self, target_host, target_port):
        self.target = (target_host, int(target_port))
        self.port = _free_port()
        self.mode = "up"
        self._listener = None
        self._stop = threading.Event()
        self._conns = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self._open()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._close_listener()
        self._drop_connections()
        self._thread.join(5)

    def set(self, mode):
        """Switch mode; ``down`` closes the listening socket (refused) and every open connection."""
        assert mode in ("up", "down", "reset"), mode
        self.mode = mode
        if mode == "down":
            self._close_listener()
            self._drop_connections()
        elif mode == "reset":
            self._drop_connections(reset=True)
            self._open()
        else:
            self._open()

    def _open(self):
        with self._lock:
            if self._listener is not None:
                return
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self.port))
            sock.listen(64)
            self._listener = sock

    def _close_listener(self):
        with self._lock:
            sock, self._listener = self._listener, None
        if sock is not None:
            sock.close()

    def _drop_connections(self, reset=True):
        with self._lock:
            conns, self._conns = self._conns, []
        for sock in conns:
            _close(sock, reset)

    def _serve(self):
        while not self._stop.is_set():
            with self._lock:
                listener = self._listener
            if listener is None:
                time.sleep(0.05)
                continue
            try:
                ready, _, _ = select.select([listener], [], [], 0.1)
                if not ready:
                    continue
                client, _ = listener.accept()
            except (OSError, ValueError):
                continue
            if self.mode == "reset":
                _close(client, reset=True)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                _close(client, reset=True)
                continue
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    def _pipe(self, a, b):
        socks = [a, b]
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select(socks, [], [], 0.2)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (b if sock is a else a).sendall(data)
        except (OSError, ValueError):
            pass
        finally:
            _close(a)
            _close(b)


def _close(sock, reset=False):
    try:
        if reset:  # SO_LINGER 0: the peer gets a RST, as from a crashing server
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- independent clients -----------------------------------------------------------------------
def sh(*argv, check=True, timeout=120, env=None, input=None):
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout, input=input,
                          env=dict(os.environ, **(env or {})))
    if check and proc.returncode != 0:
        raise AssertionError(redacted("%s failed (rc=%s): %s %s" % (argv[:3], proc.returncode, proc.stdout[-500:],
                                                                    proc.stderr[-500:])))
    return proc


def redacted(text):
    """``text`` without the passwords of URLs in it (an assertion message may be printed)."""
    return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1****@", str(text))


def sqlite_path(config):
    url = (config.get("state") or {}).get("url") or "sqlite:////var/lib/lxdctl/state/state.db"
    assert url.startswith("sqlite:///"), "these checks read a SQLite state"
    return url[len("sqlite:///"):]


def integrity(db_path):
    """``PRAGMA integrity_check`` by the sqlite3 client: "ok" when the file is sound."""
    return sh("sqlite3", "-readonly", db_path, "PRAGMA integrity_check;").stdout.strip()


class Census:
    """How many of each thing project ``name`` owns, as independent clients see them."""

    def __init__(self, config):
        self.config = config

    def psql(self, sql, database="postgres"):
        pg = self.config["postgres"]
        return sh("psql", "-h", pg["host"], "-p", pg["port"], "-U", pg["admin_user"], "-d", database, "-tAXc", sql,
                  env={"PGPASSWORD": pg["admin_password"]}).stdout.strip()

    def redis(self, *args):
        rd = self.config["redis"]
        return sh("redis-cli", "-h", rd["host"], "-p", rd["port"], "--user", rd["admin_user"], "--pass",
                  rd["admin_password"], "--no-auth-warning", *args).stdout.strip()

    def containers(self, name):
        listing = json.loads(sh("lxc", "list", "--format", "json", "^lxdctl-%s(-green)?$" % name).stdout)
        return sorted(i["name"] for i in listing)

    def databases(self, name):
        """Every PostgreSQL database of the project, the restore's scratch copies included."""
        base = "p_" + name.replace("-", "_")
        out = self.psql("SELECT datname FROM pg_database WHERE datname = '%s' OR datname LIKE '%s\\_\\_%%' "
                        "OR datname ~ '^%s_[ro][0-9a-f]{6}$' ORDER BY 1" % (base, base, base))
        return out.split()

    def roles(self, name):
        return self.psql("SELECT rolname FROM pg_roles WHERE rolname = 'p_%s'" % name.replace("-", "_")).split()

    def redis_users(self, name):
        return [u for u in self.redis("ACL", "USERS").split() if u == "p-%s" % name]

    def records(self, fqdn):
        dns = self.config["pdns"]
        return sh("dig", "+short", "@%s" % dns.get("dns_address", "127.0.0.1"), "-p", dns.get("dns_port", 5300),
                  fqdn, "A").stdout.split()

    def sites(self, name):
        sites_dir = self.config["nginx"]["sites_dir"]
        return sorted(f for f in os.listdir(sites_dir) if f == "%s.conf" % name or
                      (f.startswith(".lxdctl-") and f.endswith(".tmp")))

    def state_rows(self, name, db_path=None):
        """(projects, databases, dns_records, locks) rows of the project in the state database."""
        db_path = db_path or sqlite_path(self.config)
        sql = ("SELECT (SELECT count(*) FROM projects WHERE name = '{n}'),"
               " (SELECT count(*) FROM databases d JOIN projects p ON p.id = d.project_id WHERE p.name = '{n}'),"
               " (SELECT count(*) FROM dns_records r JOIN projects p ON p.id = r.project_id WHERE p.name = '{n}'),"
               " (SELECT count(*) FROM locks WHERE name = 'project:{n}');").format(n=name)
        return tuple(int(x) for x in sh("sqlite3", "-readonly", "-cmd", ".timeout 10000", db_path, sql
                                        ).stdout.strip().split("|"))

    def status(self, name, db_path=None):
        db_path = db_path or sqlite_path(self.config)
        return sh("sqlite3", "-readonly", "-cmd", ".timeout 10000", db_path,
                  "SELECT status FROM projects WHERE name = '%s';" % name).stdout.strip()

    def snapshot(self, name, fqdn, db_path=None):
        return {
            "containers": self.containers(name),
            "databases": self.databases(name),
            "roles": self.roles(name),
            "redis_users": self.redis_users(name),
            "records": self.records(fqdn),
            "sites": self.sites(name),
            "state": self.state_rows(name, db_path),
        }

    def leftovers(self, name, fqdn):
        """Whether anything of project ``name`` exists (so a cleanup run is needed at all)."""
        return bool(self.containers(name) or self.databases(name) or self.records(fqdn) or self.sites(name)
                    or self.status(name))

    def assert_gone(self, name, fqdn, db_path=None):
        """Nothing of project ``name`` is left anywhere: no container, database, role, ACL user,
        DNS record, nginx site or state row (lock included)."""
        snap = self.snapshot(name, fqdn, db_path)
        assert snap == {"containers": [], "databases": [], "roles": [], "redis_users": [], "records": [],
                        "sites": [], "state": (0, 0, 0, 0)}, snap
        return snap

    def assert_one(self, name, fqdn, address, db_path=None, green=False):
        """Exactly one of everything (a second container only for blue-green), the record points
        at the platform, and no lock is left behind."""
        snap = self.snapshot(name, fqdn, db_path)
        base = "p_" + name.replace("-", "_")
        want = ["lxdctl-%s" % name] + (["lxdctl-%s-green" % name] if green else [])
        if green is None:  # either: blue-green deploys keep a second container, others none
            want = snap["containers"][:2] if snap["containers"][:1] == want else want
        assert snap["containers"] == want, snap
        assert snap["databases"] == [base] and snap["roles"] == [base], snap
        assert snap["redis_users"] == ["p-%s" % name], snap
        assert snap["records"] == [address], snap
        assert snap["sites"] == ["%s.conf" % name], snap
        assert snap["state"][0] == 1 and snap["state"][3] == 0, snap
        return snap


def http_get(fqdn, path="/", timeout=10):
    """(status, body) of ``path`` through the platform's nginx, by Host header."""
    proc = sh("curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", timeout, "-H", "Host: %s" % fqdn,
              "http://127.0.0.1%s" % path, check=False, timeout=timeout + 10)
    text, _, code = proc.stdout.rpartition("\n")
    return int(code or 0), text
