"""``lxdctl reconcile``: drift between the state store and reality, found and repaired.

One project (``rcl-app``) is created once and broken by hand with independent clients
(lxc, the PowerDNS API through curl, psql, redis-cli, an edit of its nginx site file, then
a stopped container and an edited env file);
orphans named for a project that does not exist (``rcl-gone``) are made the same way (its
memcached instance through the memcached_instance module, checked over a raw socket and /proc).  The
dry run must report exactly that and change nothing, the repair must put back exactly that
(checked with the same clients), and the orphans go only with --prune-orphans.  Names start
with ``rcl-``; the fixture removes what the tests made.
"""
import json
import os
import subprocess
import sys
import urllib.parse

import pytest

from lxdctl.collection import module_utils
from tests.integration.data_support import (memcached_stats, my_admin, pg_admin, pg_tenant, port_open, redis_admin,
                                            redis_tenant)
from tests.support.ansible_module import run_module

pytestmark = pytest.mark.integration

LXDCTL = os.path.join(os.path.dirname(sys.executable), "lxdctl")
APP = "rcl-app"
GONE = "rcl-gone"
ZONE = "lxdctl.test"
EXIT_DRIFT = 3
EDIT_MARK = "# edited by hand (test_reconcile)"



OUTPUTS = []  # every reconcile output, to check that no stored secret leaks into it
ORPHAN_MEMCACHED = {}  # the orphan memcached instance's address, port and pid, as made


def lxdctl(*args, timeout=900):
    proc = subprocess.run([LXDCTL] + list(args), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if args and args[0] == "reconcile":
        OUTPUTS.append(proc.stdout + proc.stderr)
    return proc


def reconcile_json(*args):
    proc = lxdctl("reconcile", "-o", "json", *args)
    assert proc.returncode in (0, EXIT_DRIFT), "rc=%s\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr[-3000:])
    return proc.returncode, json.loads(proc.stdout)


def sh(*argv, check=True, input=None):
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=120, input=input)
    if check and proc.returncode != 0:
        raise AssertionError("%s failed (rc=%s): %s %s" % (argv[0], proc.returncode, proc.stdout, proc.stderr))
    return proc


def pdns(cfg, method, path, body=None):
    """The PowerDNS API through curl (the key goes in on stdin, never on the command line)."""
    url = "%s/api/v1/servers/%s/zones/%s.%s" % (cfg["pdns"]["api_url"], cfg["pdns"].get("server_id", "localhost"),
                                                ZONE, path)
    argv = ["curl", "-sS", "-f", "-X", method, "-H", "@-", url]
    if body is not None:
        argv += ["-H", "Content-Type: application/json", "--data", json.dumps(body)]
    return sh(*argv, input="X-API-Key: %s\n" % cfg["pdns"]["api_key"]).stdout


def set_record(cfg, name, content):
    pdns(cfg, "PATCH", "", {"rrsets": [{"name": name + ".", "type": "A", "ttl": 300, "changetype": "REPLACE",
                                        "records": [{"content": content, "disabled": False}]}]})


def delete_record(cfg, name):
    pdns(cfg, "PATCH", "", {"rrsets": [{"name": name + ".", "type": "A", "changetype": "DELETE"}]})


def dig(cfg, name):
    return sh("dig", "+short", "@%s" % cfg["pdns"].get("dns_address", "127.0.0.1"),
              "-p", str(cfg["pdns"].get("dns_port", 5300)), name, "A").stdout.split()


def container_status(name):
    out = sh("lxc", "list", "^%s$" % name, "-c", "s", "-f", "csv").stdout.strip()
    return out or None


def pg_has(cfg, what, name):
    table, column = {"database": ("pg_database", "datname"), "role": ("pg_roles", "rolname")}[what]
    return pg_admin(cfg, "SELECT count(*) FROM %s WHERE %s = '%s'" % (table, column, name)) == "1"


def redis_users(cfg):
    return redis_admin(cfg, "ACL", "USERS").split()


def site_file(cfg, name):
    return os.path.join(cfg["nginx"]["sites_dir"], "%s.conf" % name)


def my_host(cfg):
    """The account host pattern lxdctl gives MariaDB tenants: the platform's subnet."""
    return module_utils("_mysql").subnet_host_pattern(cfg["lxd"]["subnet"])


def make_orphans(cfg):
    """Everything lxdctl would name for project rcl-gone, which the state does not have."""
    sh("lxc", "init", cfg["lxd"]["images"]["base"], "lxdctl-%s" % GONE, "-p", cfg["lxd"]["profile"])
    pg_admin(cfg, "CREATE ROLE p_rcl_gone LOGIN")
    pg_admin(cfg, "CREATE DATABASE p_rcl_gone OWNER p_rcl_gone")
    my_admin(cfg, "CREATE DATABASE p_rcl_gone")
    my_admin(cfg, "CREATE USER 'p_rcl_gone'@'%s' IDENTIFIED BY 'rcl-test-only'" % my_host(cfg))
    redis_admin(cfg, "ACL", "SETUSER", "p-%s" % GONE, "on", ">rcl-test-only", "~%s:*" % GONE, "+get")
    set_record(cfg, "%s.%s" % (GONE, ZONE), cfg["public_address"])
    with open(site_file(cfg, GONE), "w") as handle:
        handle.write("server {\n    listen 80;\n    server_name %s.%s;\n    return 404;\n}\n" % (GONE, ZONE))
    cache = run_module("memcached_instance", {"name": GONE, "memory_mb": 16})
    assert not cache.failed and cache.changed, cache
    stats = memcached_stats(cache["listen"], cache["port"])
    ORPHAN_MEMCACHED.update(listen=cache["listen"], port=cache["port"], pid=int(stats["pid"]))


def remove_orphans(cfg):
    sh("lxc", "delete", "--force", "lxdctl-%s" % GONE, check=False)
    pg_admin(cfg, "DROP DATABASE IF EXISTS p_rcl_gone")
    pg_admin(cfg, "DROP ROLE IF EXISTS p_rcl_gone")
    my_admin(cfg, "DROP DATABASE IF EXISTS p_rcl_gone")
    my_admin(cfg, "DROP USER IF EXISTS 'p_rcl_gone'@'%s'" % my_host(cfg))
    redis_admin(cfg, "ACL", "DELUSER", "p-%s" % GONE)
    pdns(cfg, "PATCH", "", {"rrsets": [{"name": "%s.%s." % (GONE, ZONE), "type": "A", "changetype": "DELETE"}]})
    if os.path.exists(site_file(cfg, GONE)):
        os.unlink(site_file(cfg, GONE))
    cache = run_module("memcached_instance", {"name": GONE, "state": "absent"})
    assert not cache.failed, cache


EXPECTED_ORPHANS = {
    ("container", "lxdctl-rcl-gone"), ("postgres_database", "p_rcl_gone"), ("postgres_role", "p_rcl_gone"),
    ("mysql_database", "p_rcl_gone"), ("mysql_user", "p_rcl_gone"),
    ("redis_user", "p-rcl-gone"), ("dns_record", "rcl-gone.lxdctl.test"), ("site", "rcl-gone"),
    ("memcached_instance", "rcl-gone"),
}


def process_alive(pid):
    """True while ``pid`` is a process that has not exited (a zombie has)."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (IOError, OSError):
        return False


def orphans_present(cfg):
    """The orphans that still exist, read with the independent clients."""
    found = set()
    if container_status("lxdctl-%s" % GONE):
        found.add(("container", "lxdctl-rcl-gone"))
    if pg_has(cfg, "database", "p_rcl_gone"):
        found.add(("postgres_database", "p_rcl_gone"))
    if pg_has(cfg, "role", "p_rcl_gone"):
        found.add(("postgres_role", "p_rcl_gone"))
    if my_admin(cfg, "SELECT count(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = 'p_rcl_gone'") == "1":
        found.add(("mysql_database", "p_rcl_gone"))
    if my_admin(cfg, "SELECT count(*) FROM mysql.user WHERE User = 'p_rcl_gone'") != "0":
        found.add(("mysql_user", "p_rcl_gone"))
    if "p-%s" % GONE in redis_users(cfg):
        found.add(("redis_user", "p-rcl-gone"))
    if dig(cfg, "%s.%s" % (GONE, ZONE)):
        found.add(("dns_record", "rcl-gone.lxdctl.test"))
    if os.path.exists(site_file(cfg, GONE)):
        found.add(("site", "rcl-gone"))
    # Its port answers memcached's stats, or its process is still there.
    if port_open(ORPHAN_MEMCACHED["listen"], ORPHAN_MEMCACHED["port"]) or process_alive(ORPHAN_MEMCACHED["pid"]):
        found.add(("memcached_instance", "rcl-gone"))
    return found


@pytest.fixture(scope="module")
def broken(platform_config):
    """rcl-app created, then broken by hand in five places; rcl-gone's orphans made."""
    cfg = platform_config
    if lxdctl("status", APP).returncode == 0:  # left over from an interrupted run
        lxdctl("delete", APP, "--yes")
    remove_orphans(cfg)
    proc = lxdctl("create", APP, "--db", "postgres", "--cache", "redis", "--runtime", "python")
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(site_file(cfg, APP)) as handle:
        site = handle.read()
    sh("lxc", "delete", "--force", "lxdctl-%s" % APP)
    delete_record(cfg, "%s.%s" % (APP, ZONE))
    pg_admin(cfg, "DROP DATABASE p_rcl_app WITH (FORCE)")
    pg_admin(cfg, "DROP ROLE p_rcl_app")
    redis_admin(cfg, "ACL", "DELUSER", "p-%s" % APP)
    with open(site_file(cfg, APP), "w") as handle:
        handle.write(site.replace("{", "{\n    %s" % EDIT_MARK, 1))
    make_orphans(cfg)
    yield {"cfg": cfg, "site": site}
    lxdctl("delete", APP, "--yes")
    remove_orphans(cfg)


def drift_resources(report, name):
    project = [p for p in report["projects"] if p["name"] == name]
    assert len(project) == 1, report["projects"]
    return {item["resource"] for item in project[0]["drift"]}


def test_dry_run_reports_the_drift_and_the_orphans_and_changes_nothing(broken):
    cfg = broken["cfg"]
    rc, report = reconcile_json("--dry-run", APP, GONE)
    assert rc == EXIT_DRIFT
    # The JSON shape scripts rely on.
    assert set(report) == {"dry_run", "drift_found", "in_sync", "projects", "orphans"}
    assert report["dry_run"] is True and report["drift_found"] is True and report["in_sync"] is False
    assert [p["name"] for p in report["projects"]] == [APP]
    project = report["projects"][0]
    assert set(project) >= {"name", "status", "action", "drift", "in_sync", "repaired"}
    assert (project["action"], project["in_sync"], project["repaired"]) == ("create", False, False)
    for item in project["drift"]:
        assert set(item) >= {"task", "module", "resource"}
    # Exactly what was broken: the container, the record, the database, the Redis user, the site.
    assert drift_resources(report, APP) == {"container", "dns", "postgres", "redis", "site"}
    site_diff = [d for d in project["drift"] if d["resource"] == "site"][0]["diff"]
    assert EDIT_MARK in site_diff["before"] and EDIT_MARK not in site_diff["after"]
    assert {(o["kind"], o["name"]) for o in report["orphans"]} == EXPECTED_ORPHANS
    assert {o["project"] for o in report["orphans"]} == {GONE}
    assert not any(o["pruned"] for o in report["orphans"])
    cache = [o for o in report["orphans"] if o["kind"] == "memcached_instance"]
    assert cache[0]["port"] == ORPHAN_MEMCACHED["port"]
    # Nothing changed.
    assert container_status("lxdctl-%s" % APP) is None
    assert dig(cfg, "%s.%s" % (APP, ZONE)) == []
    assert not pg_has(cfg, "database", "p_rcl_app") and not pg_has(cfg, "role", "p_rcl_app")
    assert "p-%s" % APP not in redis_users(cfg)
    with open(site_file(cfg, APP)) as handle:
        assert EDIT_MARK in handle.read()
    assert orphans_present(cfg) == EXPECTED_ORPHANS


def test_reconcile_repairs_the_drift_and_keeps_the_orphans(broken):
    cfg = broken["cfg"]
    rc, report = reconcile_json(APP, GONE)
    # Repaired, but orphans are left without --prune-orphans: still "needs attention".
    assert rc == EXIT_DRIFT
    assert report["dry_run"] is False and report["in_sync"] is False
    assert {"container", "dns", "postgres", "redis", "site"} <= drift_resources(report, APP)
    assert report["projects"][0]["repaired"] is True
    assert container_status("lxdctl-%s" % APP) == "RUNNING"
    assert dig(cfg, "%s.%s" % (APP, ZONE)) == [cfg["public_address"]]
    assert pg_has(cfg, "database", "p_rcl_app") and pg_has(cfg, "role", "p_rcl_app")
    assert "p-%s" % APP in redis_users(cfg)
    with open(site_file(cfg, APP)) as handle:
        site = handle.read()
    assert EDIT_MARK not in site
    # The new container has a new address, which the site now points at.
    address = sh("lxc", "list", "^lxdctl-%s$" % APP, "-c", "4", "-f", "csv").stdout.split()[0]
    assert address in site
    env = sh("lxc", "exec", "lxdctl-%s" % APP, "--", "cat", "/etc/lxdctl/app.env").stdout
    passwords = [urllib.parse.unquote(urllib.parse.urlsplit(line.split("=", 1)[1].strip("'")).password or "")
                 for line in env.splitlines() if line.startswith(("DATABASE_URL=", "REDIS_URL="))]
    assert len(passwords) == 2 and all(passwords)
    # The repaired role and Redis user take the stored passwords, and no output shows them.
    login = pg_tenant(cfg, "SELECT current_user", "p_rcl_app", passwords[0], "p_rcl_app")
    assert login.returncode == 0 and login.stdout.strip() == "p_rcl_app", login.stderr
    assert redis_tenant(cfg, "p-%s" % APP, passwords[1], "SET", "%s:probe" % APP, "1") == "OK"
    assert not any(secret in output for secret in passwords for output in OUTPUTS)
    assert {(o["kind"], o["name"]) for o in report["orphans"]} == EXPECTED_ORPHANS
    assert not any(o["pruned"] for o in report["orphans"])
    assert orphans_present(cfg) == EXPECTED_ORPHANS


def test_prune_orphans_removes_them_and_a_stopped_container_and_edited_env_are_repaired(broken):
    cfg = broken["cfg"]
    container = "lxdctl-%s" % APP
    sh("lxc", "exec", container, "--", "sh", "-c", "echo 'RCL_HAND_EDIT=1' >> /etc/lxdctl/app.env")
    sh("lxc", "stop", "--force", container)
    rc, report = reconcile_json("--prune-orphans", APP, GONE)
    assert rc == 0
    assert report["in_sync"] is True
    assert {"container", "env_file"} <= drift_resources(report, APP)
    assert not drift_resources(report, APP) & {"dns", "postgres", "redis"}
    assert {(o["kind"], o["name"]) for o in report["orphans"]} == EXPECTED_ORPHANS
    assert all(o["pruned"] for o in report["orphans"])
    assert orphans_present(cfg) == set()
    assert container_status(container) == "RUNNING"
    env = sh("lxc", "exec", container, "--", "cat", "/etc/lxdctl/app.env").stdout
    assert "RCL_HAND_EDIT" not in env and "DATABASE_URL=" in env
    assert dig(cfg, "%s.%s" % (APP, ZONE)) == [cfg["public_address"]]


def test_bad_names_are_refused_before_anything_runs():
    proc = lxdctl("reconcile", "--dry-run", "Bad_Name")
    assert proc.returncode == 2
    assert "NAME" in proc.stderr or "names" in proc.stderr
    assert "lowercase letters" in proc.stderr
