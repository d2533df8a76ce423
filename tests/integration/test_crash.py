"""Crash consistency: ``kill -9`` of the whole CLI process group at chosen points, then a rerun.

A kill point is a progress line of the CLI ("task X finished"), or for a restore the moment
its scratch database appears, so every run kills at the same step.  The killed group is the
CLI, ansible-runner, ansible-playbook and its module processes (``tests/support/faults.py``).
After each kill the test reruns the command (or deletes) and checks with clients that are not
lxdctl (lxc, psql, redis-cli, dig, curl, the nginx sites directory, sqlite3 on the state) that
there is exactly one of everything, that the site serves one healthy release, and that a
delete leaves nothing behind.  The lock of a killed run is left in the state with a dead owner
pid; the rerun takes it over at once (``_state.StateStore._lock_stale``), it does not wait for
the 30-minute expiry.

The tests run in order on one project (``it-crash-a``); each step starts from the state the
previous one left, as a user's rerun would.  CI kills a create at three points; more points,
too slow for CI's budget, run with ``LXDCTL_CRASH_MATRIX=full python -m pytest
tests/integration/test_crash.py`` (the container, the database and the Redis user each just
made, before the rest).
"""
import json
import os
import time

import pytest

from tests.support.faults import Census, http_get, kill_group, load_config, pid_alive, run_cli, sh

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = os.path.join(ROOT, "samples", "python-hello")
NAME = "it-crash-a"
FQDN = "%s.lxdctl.test" % NAME
DB = "p_it_crash_a"
STATE_DB = "/var/lib/lxdctl/state/state.db"
SITES_DIR = "/etc/nginx/lxdctl-sites"
CREATE = ("create", NAME, "--runtime", "python", "--db", "postgres", "--cache", "redis")
DEPLOY = ("deploy", NAME, "--path", SAMPLE, "--no-build")


@pytest.fixture(scope="module")
def census():
    return Census(load_config())


@pytest.fixture(scope="module")
def address(census):
    return census.config.get("public_address") or census.config["lxd"]["bridge_address"]


@pytest.fixture
def project(census):
    """The project, running: the previous test left it so, or it is created again here."""
    if census.status(NAME) != "running":
        ok(*CREATE)
    return NAME


def ok(*args, **kwargs):
    run = run_cli(*args, **kwargs)
    assert run.returncode == 0, run
    return run


def killed_when(trigger, *args):
    run = run_cli(*args, when=(trigger, kill_group))
    assert run.fired and run.returncode == -9, run
    row = lock_row()
    if row:  # the killed run's lock stays behind, but with a dead owner: the rerun takes it over
        owner = sh("ps", "-o", "pid,stat,args", "-p", row["owner_pid"], check=False).stdout
        assert not pid_alive(row["owner_pid"]), (row, owner, sorted(run.killed))
    return run


def lock_row():
    out = sh("sqlite3", "-readonly", "-cmd", ".timeout 10000", "-json", STATE_DB,
             "SELECT owner_pid FROM locks WHERE name = 'project:%s';" % NAME).stdout.strip()
    return json.loads(out)[0] if out else None


def deployments():
    return json.loads(ok("deployments", NAME, "--output", "json").stdout)


def serving(settle=15):
    """The one release the site serves, checked healthy.  Right after a kill that landed in an
    nginx reload, old workers may still answer for a moment: wait (up to ``settle`` s) until
    every request gets the same release."""
    deadline = time.monotonic() + settle
    while True:
        status, health = http_get(FQDN, "/health")
        bodies = {http_get(FQDN)[1].strip() for _ in range(6)}
        if (status, health.strip()) == (200, "ok") and len(bodies) == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert (status, health.strip()) == (200, "ok"), (status, health)
    assert len(bodies) == 1 and next(iter(bodies)).startswith("python-hello release v"), bodies
    return bodies.pop()


def assert_deploys_settled():
    rows = deployments()
    assert rows[0]["status"] == "success", rows[:3]
    unsettled = [(r["version"], r["status"]) for r in rows if r["status"] in ("pending", "building", "deploying")]
    assert unsettled == [], unsettled
    return rows


def setup_module():
    if Census(load_config()).leftovers(NAME, FQDN):  # an earlier, interrupted run's
        run_cli("delete", NAME, "--yes")


def teardown_module():
    if Census(load_config()).leftovers(NAME, FQDN):
        run_cli("delete", NAME, "--yes")
    for container in ("lxdctl-%s" % NAME, "lxdctl-%s-green" % NAME):
        sh("lxc", "delete", "--force", container, check=False)


# --- create ------------------------------------------------------------------------------------
# Kill points are effects seen by independent clients, so they hold whatever the tasks are called.
def appears(check):
    """Trigger: ``check()`` becomes true (it must be false when the run starts)."""
    assert not check(), "the kill point is reached before the run starts"
    return check


def test_create_killed_at_three_points_is_completed_by_a_rerun(census, address):
    # 1: the state row exists, the container is being made (in the background)
    killed_when(appears(lambda: census.state_rows(NAME)[0] == 1), *CREATE)
    assert census.status(NAME) in ("creating", "error")
    row = lock_row()
    assert row and not pid_alive(row["owner_pid"]), row  # left by a dead owner, taken over below
    if os.environ.get("LXDCTL_CRASH_MATRIX") == "full":
        ok("delete", NAME, "--yes")
        for check in (lambda: census.containers(NAME) != [], lambda: census.databases(NAME) != [],
                      lambda: census.redis_users(NAME) != []):
            killed_when(appears(check), *CREATE)
            ok("delete", NAME, "--yes")
            census.assert_gone(NAME, FQDN)
        killed_when(appears(lambda: census.state_rows(NAME)[0] == 1), *CREATE)
    # 2: the DNS record is served: the database and the cache user were made before it
    killed_when(appears(lambda: census.records(FQDN) != []), *CREATE)
    # 3: the nginx site is published, the project is not marked running yet
    killed_when(appears(lambda: census.sites(NAME) != []), *CREATE)
    ok(*CREATE)  # the dead owner's lock is taken over at once, not after its expiry
    census.assert_one(NAME, FQDN, address)
    assert census.status(NAME) == "running"
    env = sh("lxc", "exec", "lxdctl-" + NAME, "--", "cat", "/etc/lxdctl/app.env").stdout
    assert env.count("DATABASE_URL=") == 1 and env.count("REDIS_URL=") == 1


# --- deploys -----------------------------------------------------------------------------------
def latest_deployment_id():
    out = sh("sqlite3", "-readonly", "-cmd", ".timeout 10000", STATE_DB, "SELECT max(d.id) FROM deployments d "
             "JOIN projects p ON p.id = d.project_id WHERE p.name = '%s';" % NAME).stdout.strip()
    return int(out or 0)


def new_deployment():
    """Trigger: the deploy has recorded its deployment row (nothing is built or switched yet)."""
    before = latest_deployment_id()
    return lambda: latest_deployment_id() > before


def site_switched():
    """Trigger: the nginx site file changed, i.e. the switch to the new release happened."""
    path = os.path.join(SITES_DIR, "%s.conf" % NAME)
    with open(path) as handle:
        before = handle.read()

    def changed():
        try:
            with open(path) as handle:
                return handle.read() != before
        except OSError:
            return False

    return changed


def test_standard_deploy_killed_before_and_after_the_switch(project, census, address):
    ok(*DEPLOY)
    first = serving()
    killed_when(new_deployment(), *DEPLOY)
    assert serving() == first  # nothing switched: the old release still serves
    killed_when(site_switched(), *DEPLOY)
    serving()  # switched, but not recorded: one healthy release serves
    ok(*DEPLOY)
    rows = assert_deploys_settled()
    assert serving() == "python-hello release %s" % rows[0]["version"]
    census.assert_one(NAME, FQDN, address, green=None)


def test_blue_green_deploy_killed_is_completed_by_a_rerun(project, census, address):
    killed_when(new_deployment(), *DEPLOY, "--blue-green")
    serving()
    killed_when(site_switched(), *DEPLOY, "--blue-green")
    serving()
    ok(*DEPLOY, "--blue-green")
    rows = assert_deploys_settled()
    assert rows[0]["deploy_type"] == "blue_green"
    assert serving() == "python-hello release %s" % rows[0]["version"]
    census.assert_one(NAME, FQDN, address, green=True)


def test_canary_killed_after_the_split_then_promoted(project, census, address):
    killed_when(site_switched(), *DEPLOY, "--canary", "50")
    ok(*DEPLOY, "--canary", "50")
    ok("deploy", NAME, "--promote")
    rows = assert_deploys_settled()
    assert serving() == "python-hello release %s" % rows[0]["version"]
    census.assert_one(NAME, FQDN, address, green=True)


# --- restore -----------------------------------------------------------------------------------
def test_restore_killed_while_loading_leaves_the_database_whole(project, census, address):
    # the app's own credentials, from its env file: the data is the tenant's, as an app makes it
    url = sh("lxc", "exec", "lxdctl-" + NAME, "--", "sh", "-c", ". /etc/lxdctl/app.env; echo $DATABASE_URL").stdout.strip()

    def app_sql(sql):
        return sh("psql", url, "-tAXc", sql).stdout.strip()

    # enough rows, and an index to build, that the load takes seconds: the kill lands inside it
    app_sql("DROP TABLE IF EXISTS crash_marker; CREATE TABLE crash_marker AS "
            "SELECT g AS id, md5(g::text) AS pad FROM generate_series(1, 1000000) g; "
            "CREATE INDEX crash_marker_pad ON crash_marker (pad)")
    ok("db", "backup", NAME)
    app_sql("DELETE FROM crash_marker WHERE id > 10")
    # kill while pg_restore loads the scratch copy: the project's database is untouched
    killed_when(appears(lambda: len(census.databases(NAME)) > 1), "db", "restore", NAME, "--yes")
    assert app_sql("SELECT count(*) FROM crash_marker") == "10"
    ok("db", "restore", NAME, "--yes")
    assert census.databases(NAME) == [DB]  # the killed run's scratch copy is gone
    assert app_sql("SELECT count(*) FROM crash_marker") == "1000000"  # the app reaches the restored data
    census.assert_one(NAME, FQDN, address, green=None)


# --- delete ------------------------------------------------------------------------------------
def test_delete_killed_twice_then_rerun_leaves_nothing(project, census):
    killed_when(appears(lambda: census.sites(NAME) == []), "delete", NAME, "--yes")
    killed_when(appears(lambda: census.containers(NAME) == []), "delete", NAME, "--yes")
    ok("delete", NAME, "--yes")
    census.assert_gone(NAME, FQDN)
    assert http_get(FQDN)[0] not in (200, 502, 503, 504)
