"""Dependency faults: a service down or failing at a step, LXD restarted mid-deploy, a full disk.

PowerDNS, PostgreSQL and Redis are faulted through ``TcpProxy``: a copy of the platform
configuration (``LXDCTL_CONFIG``) points their endpoints at proxies this test controls, so
taking a service "down" (connection refused) or making it "fail" (connections reset) never
touches the daemons other tests share.  nginx fails through ``LXDCTL_NGINX_BINARY``: a wrapper
whose ``-t`` rejects the configuration; nginx stopped is the shared nginx itself, stopped and
started again through the ``daemon`` module with role platform's own arguments.  The full disk is a 1 MiB tmpfs holding the state
database of another configuration copy.

Each fault must give a clear error naming the service, a non-zero exit, a sound state
(``PRAGMA integrity_check`` = ok) and a rerun, once the fault is gone, that converges to
exactly one of everything.  Only the LXD restart and nginx stopped touch a shared daemon (for
seconds, restored on the way out); they run in CI's serial run like the rest.  Names start with
``it-fault-``.
"""
import json
import os
import shutil
import signal
import stat
import subprocess
import time

import pytest

from tests.support.faults import (LXDCTL, Census, PlatformDaemonStopped, TcpProxy, config_copy, http_get, integrity,
                                  load_config, platform_daemon, run_cli, sh, sqlite_path)

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = os.path.join(ROOT, "samples", "python-hello")
NAME = "it-fault-a"
FQDN = "%s.lxdctl.test" % NAME
DISK = "it-fault-disk"
LXD_PIDFILE = "/run/lxdctl/lxd.pid"
CREATE = ("create", NAME, "--runtime", "python", "--db", "postgres", "--cache", "redis")


@pytest.fixture(scope="module")
def config():
    return load_config()


@pytest.fixture(scope="module")
def census(config):
    return Census(config)


@pytest.fixture(scope="module")
def address(config):
    return config.get("public_address") or config["lxd"]["bridge_address"]


@pytest.fixture(scope="module")
def proxies(config, tmp_path_factory):
    """One proxy per faultable service, all up, and a config copy that goes through them."""
    pdns_port = int(config["pdns"]["api_url"].rsplit(":", 1)[1].split("/")[0])
    with TcpProxy("127.0.0.1", pdns_port) as pdns, \
            TcpProxy(config["postgres"]["host"], config["postgres"]["port"]) as pg, \
            TcpProxy(config["redis"]["host"], config["redis"]["port"]) as redis:
        env = config_copy(tmp_path_factory.mktemp("it-fault-config") / "platform.json",
                          pdns={"api_url": "http://127.0.0.1:%d" % pdns.port},
                          postgres={"host": "127.0.0.1", "port": pg.port},
                          redis={"host": "127.0.0.1", "port": redis.port})
        yield {"pdns": pdns, "postgres": pg, "redis": redis, "env": env}


def setup_module():
    if Census(load_config()).leftovers(NAME, FQDN):  # an earlier, interrupted run's
        run_cli("delete", NAME, "--yes")


def teardown_module():
    if Census(load_config()).leftovers(NAME, FQDN):
        run_cli("delete", NAME, "--yes")
    sh("lxc", "delete", "--force", "lxdctl-%s" % NAME, check=False)


def failed(run, *words):
    """The run failed with a clear error: non-zero, one "Error:" line naming every word."""
    assert run.returncode == 1, run
    errors = [line for line in run.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, run
    for word in words:
        assert word.lower() in errors[0].lower(), (word, errors[0])
    return errors[0]


def state_sound(census, db_path=None):
    assert integrity(db_path or sqlite_path(census.config)) == "ok"


# --- create: each service faulted at its step ----------------------------------------------------
@pytest.mark.parametrize("service,mode,words", [
    ("postgres", "reset", ["PostgreSQL"]),
    ("redis", "down", ["Redis"]),
    ("pdns", "down", ["PowerDNS API", "cannot reach"]),
])
def test_create_with_a_service_faulted_fails_clearly(proxies, census, service, mode, words):
    proxies[service].set(mode)
    try:
        run = run_cli(*CREATE, env=proxies["env"])
    finally:
        proxies[service].set("up")
    failed(run, *words)
    state_sound(census)
    assert census.status(NAME) == "error"  # recorded as failed: a rerun completes it, delete removes it
    assert census.state_rows(NAME)[3] == 0  # the lock was released on the way out


def test_create_with_nginx_failing_keeps_nginx_serving(proxies, census, tmp_path):
    wrapper = tmp_path / "nginx"
    wrapper.write_text('#!/bin/sh\nfor a in "$@"; do [ "$a" = -t ] && { echo "nginx: [emerg] injected fault" >&2; '
                       'exit 1; }; done\nexec %s "$@"\n' % shutil.which("nginx"))
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    run = run_cli(*CREATE, env=dict(proxies["env"], LXDCTL_NGINX_BINARY=str(wrapper)))
    failed(run, "nginx rejected", "injected fault")
    assert census.sites(NAME) == []  # the rejected site was taken back out
    assert sh("nginx", "-t", check=False).returncode == 0
    state_sound(census)


def test_create_with_nginx_stopped_fails_clearly_then_the_rerun_converges(census, address, config):
    nginx = platform_daemon("nginx", platform_nginx_http_port=config["nginx"]["http_port"])
    with PlatformDaemonStopped(nginx) as stopped:
        assert sh("curl", "-s", "-o", "/dev/null", "--max-time", "5", "http://127.0.0.1/lxdctl-health",
                  check=False).returncode != 0  # nothing answers on port 80
        run = run_cli(*CREATE, timeout=600)
        failed(run, "nginx is not running", NAME)
        assert census.sites(NAME) == []  # a site no nginx serves is not left behind as if published
        state_sound(census)
        assert census.status(NAME) == "error"
        assert census.state_rows(NAME)[3] == 0
        stopped.start()
    assert http_get("nothing.lxdctl.test", "/lxdctl-health") == (200, "ok\n")  # the platform's nginx is back
    rerun = run_cli(*CREATE)
    assert rerun.returncode == 0, rerun
    state_sound(census)
    census.assert_one(NAME, FQDN, address)
    assert census.status(NAME) == "running"
    # The project's site serves: its name reaches the project's upstream (no app deployed yet,
    # so nginx answers 502), where a name without a site gets the platform's 404.
    assert http_get(FQDN)[0] == 502
    assert http_get("it-fault-nosite.lxdctl.test")[0] == 404


def test_rerun_after_the_faults_converges(census, address):
    run = run_cli(*CREATE)
    assert run.returncode == 0, run
    census.assert_one(NAME, FQDN, address)
    assert census.status(NAME) == "running"
    env = sh("lxc", "exec", "lxdctl-" + NAME, "--", "cat", "/etc/lxdctl/app.env").stdout
    assert ":%d/" % census.config["postgres"]["port"] in env  # the real endpoint again, not a proxy's


# --- LXD restarted in the middle of a deploy -----------------------------------------------------
def _lxd_pid():
    out = sh("pgrep", "-x", "lxd", check=False).stdout.split()
    for pid in out:
        with open("/proc/%s/cmdline" % pid, "rb") as handle:
            argv = handle.read().split(b"\0")
        if b"--group" in argv:  # the daemon, not one of its fork* helpers
            return int(pid), [a.decode() for a in argv if a]
    return None, None


def _restart_lxd():
    """Stop the LXD daemon (SIGTERM: instances keep running) and start it again as it was."""
    pid, argv = _lxd_pid()
    assert pid, "no LXD daemon found"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and os.path.exists("/proc/%d" % pid):
        time.sleep(0.1)
    new = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    if os.path.exists(LXD_PIDFILE):  # the platform role's record of the daemon it started
        with open(LXD_PIDFILE, "w") as handle:
            handle.write("%d\n" % new.pid)
    sh("lxd", "waitready", "--timeout", "60", timeout=90)


def _ensure_lxd():
    if sh("lxc", "info", check=False, timeout=30).returncode != 0:
        sh(LXDCTL, "init", "--yes", "--no-nat", "--with-pebble", timeout=600)


def test_lxd_restarted_during_a_deploy(census, address):
    if census.status(NAME) != "running":
        assert run_cli(*CREATE).returncode == 0
    count = ("SELECT count(*) FROM deployments d JOIN projects p ON p.id = d.project_id WHERE p.name = '%s';"
             % NAME)
    state = ("sqlite3", "-readonly", "-cmd", ".timeout 10000", sqlite_path(census.config), count)
    before = sh(*state).stdout.strip()

    def deployment_recorded():
        return sh(*state).stdout.strip() != before

    try:
        run = run_cli("deploy", NAME, "--path", SAMPLE, "--no-build",
                      when=(deployment_recorded, lambda proc: _restart_lxd()))
    finally:
        _ensure_lxd()
    assert run.fired, run
    if run.returncode != 0:  # it may ride the restart out; if not, the error says where
        failed(run)
    state_sound(census)
    assert "RUNNING" in sh("lxc", "list", "--format", "csv", "-c", "s", "^lxdctl-%s$" % NAME).stdout
    rerun = run_cli("deploy", NAME, "--path", SAMPLE, "--no-build")
    assert rerun.returncode == 0, rerun
    status, body = http_get(FQDN, "/health")
    assert (status, body.strip()) == (200, "ok")
    rows = json.loads(run_cli("deployments", NAME, "--output", "json").stdout)
    assert rows[0]["status"] == "success"
    assert [r for r in rows if r["status"] in ("pending", "building", "deploying")] == []


# --- delete with PowerDNS failing, then again -----------------------------------------------------
def test_delete_with_powerdns_failing_then_rerun_removes_everything(proxies, census):
    proxies["pdns"].set("reset")
    try:
        run = run_cli("delete", NAME, "--yes", env=proxies["env"])
    finally:
        proxies["pdns"].set("up")
    failed(run, "PowerDNS")
    state_sound(census)
    assert census.records(FQDN) != []  # the step that failed left its record for the rerun
    run = run_cli("delete", NAME, "--yes")
    assert run.returncode == 0, run
    census.assert_gone(NAME, FQDN)


# --- the state directory full ---------------------------------------------------------------------
@pytest.fixture
def small_state(tmp_path):
    """A configuration copy whose state database lives on a 1 MiB tmpfs."""
    mount = tmp_path / "state"
    mount.mkdir(mode=0o700)
    db = mount / "state.db"
    env = config_copy(tmp_path / "platform.json", state={"url": "sqlite:///%s" % db})
    census = Census(load_config())

    def clean():  # delete removes derived names even for a project its state does not know
        if census.containers(DISK) or census.databases(DISK) or census.records("%s.lxdctl.test" % DISK):
            run_cli("delete", DISK, "--yes", env=env)

    sh("mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", mount)
    try:
        clean()  # what an earlier, interrupted run left
        yield {"env": env, "db": str(db), "dir": str(mount)}
    finally:
        if os.path.exists(os.path.join(str(mount), "filler")):
            os.unlink(os.path.join(str(mount), "filler"))
        clean()
        sh("lxc", "delete", "--force", "lxdctl-%s" % DISK, check=False)
        sh("umount", "-l", mount, check=False)


def _fill(directory):
    """Take every free block of ``directory``'s filesystem; returns the filler's path."""
    path = os.path.join(directory, "filler")
    block = b"\0" * 4096
    with open(path, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(block)
        except OSError:
            pass
    return path


def test_state_disk_full_fails_clearly_and_the_rerun_converges(small_state, census, address):
    env, db = small_state["env"], small_state["db"]
    fqdn = "%s.lxdctl.test" % DISK
    create = ("create", DISK, "--db", "postgres", "--cache", "redis")
    assert run_cli("list", env=env).returncode == 0  # the new state database, migrated
    sh("sqlite3", db, "PRAGMA wal_checkpoint(TRUNCATE);")  # no slack left in the WAL file
    # full before the run: the state cannot even be opened, and the error says why; nothing is made
    filler = _fill(small_state["dir"])
    failed(run_cli("list", env=env), "state database", "is full")
    failed(run_cli(*create, env=env))
    assert census.containers(DISK) == [] and census.databases(DISK) == [] and census.records(fqdn) == []
    os.unlink(filler)  # (SQLite needs a little space to open a WAL database even to read it)
    assert integrity(db) == "ok"
    # full in the middle (once the DNS record is served): the run fails, the state stays sound
    sh("sqlite3", db, "PRAGMA wal_checkpoint(TRUNCATE);")
    fillers = []
    run = run_cli(*create, env=env, when=(lambda: census.records(fqdn) != [],
                                          lambda proc: fillers.append(_fill(small_state["dir"]))))
    assert run.fired, run
    failed(run)
    os.unlink(fillers[0])
    assert integrity(db) == "ok"
    # space again: the rerun completes the project (the dead run's lock is taken over)
    rerun = run_cli(*create, env=env)
    assert rerun.returncode == 0, rerun
    assert integrity(db) == "ok"
    census.assert_one(DISK, fqdn, address, db_path=db)
    assert run_cli("delete", DISK, "--yes", env=env).returncode == 0
    census.assert_gone(DISK, fqdn, db_path=db)
