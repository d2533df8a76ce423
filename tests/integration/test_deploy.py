"""Deploys end to end, through the real CLI, LXD, nginx and the state store.

A python project is created with ``lxdctl create`` (container, PostgreSQL, Redis, DNS, nginx
site) and deployed from a local git repository made here.  Every check goes through an
independent client: HTTP requests to nginx on the bridge address with the project's Host
header, ``lxc exec`` for systemd and files in the container, and ``lxdctl deployments`` (the
state store) for the record.  A thread keeps requesting the site during a standard, a
blue-green, a canary and two rollbacks, and counts failed requests: there must be none.

Project names start with ``it-dep-``; the fixtures delete what they create.  The last test
checks that ``lxdctl delete`` removes the blue-green second container too.
"""
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.support.ansible_module import ansible_env

pytestmark = pytest.mark.integration

BIN = os.path.dirname(sys.executable)
LXDCTL = os.path.join(BIN, "lxdctl")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLES = os.path.join(ROOT, "samples")
NGINX = "http://10.77.0.1:80"
PY = "it-dep-py"
NODE = "it-dep-node"
GO = "it-dep-go"
TIMINGS = {}


# --- helpers -----------------------------------------------------------------------------
def lxdctl(*args, check=True, timeout=900):
    proc = subprocess.run([LXDCTL] + list(args), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError("lxdctl %s failed (rc=%s):\n%s\n%s" % (" ".join(args), proc.returncode, proc.stdout, proc.stderr))
    return proc


def sh(*argv, check=True, timeout=300, cwd=None):
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError("%s failed (rc=%s): %s %s" % (argv, proc.returncode, proc.stdout, proc.stderr))
    return proc


def domain(name):
    return "%s.lxdctl.test" % name


def get(name, path="/", timeout=5):
    req = urllib.request.Request(NGINX + path, headers={"Host": domain(name)})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, resp.read().decode()


def body(name, path="/"):
    status, text = get(name, path)
    assert status == 200, (status, text)
    return text.strip()


def deployments(name):
    return json.loads(lxdctl("deployments", name, "--output", "json").stdout)


def deploy(name, *args, check=True):
    started = time.monotonic()
    proc = lxdctl("deploy", name, *args, check=check)
    return proc, time.monotonic() - started


def failed_deploy(name, *args):
    proc, _ = deploy(name, *args, check=False)
    assert proc.returncode != 0, proc.stdout + proc.stderr
    return proc.stderr


def git_repo(path, files, message="init"):
    """A git repository at ``path`` with ``files`` ({name: text}) committed on main; the commit."""
    os.makedirs(path, exist_ok=True)
    if not os.path.isdir(os.path.join(path, ".git")):
        sh("git", "init", "-q", "-b", "main", cwd=path)
    for name, text in files.items():
        with open(os.path.join(path, name), "w") as handle:
            handle.write(text)
    sh("git", "add", "-A", cwd=path)
    sh("git", "-c", "user.email=it@lxdctl.test", "-c", "user.name=it", "commit", "-q", "--allow-empty", "-m", message, cwd=path)
    return sh("git", "rev-parse", "HEAD", cwd=path).stdout.strip()


def sample_files(sample):
    out = {}
    for name in os.listdir(os.path.join(SAMPLES, sample)):
        with open(os.path.join(SAMPLES, sample, name)) as handle:
            out[name] = handle.read()
    return out


def in_container(container, *argv, check=True):
    return sh("lxc", "exec", container, "--", *argv, check=check)


def wait_inactive(container, unit, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if in_container(container, "systemctl", "is-active", unit, check=False).stdout.strip() == "inactive":
            return True
        time.sleep(0.5)
    return False


def remove_project(name):
    lxdctl("delete", name, "--yes", check=False)
    for container in ("lxdctl-%s" % name, "lxdctl-%s-green" % name):
        sh("lxc", "delete", "--force", container, check=False)


class Hammer(threading.Thread):
    """Keeps requesting the site through nginx; counts failures and the releases seen."""

    def __init__(self, name):
        super().__init__(daemon=True)
        self.name_ = name
        self.stop = threading.Event()
        self.ok = 0
        self.failures = []
        self.seen = {}

    def run(self):
        while not self.stop.is_set():
            try:
                status, text = get(self.name_, timeout=10)
                if status != 200:
                    raise AssertionError("HTTP %d" % status)
                self.ok += 1
                self.seen[text.strip()] = self.seen.get(text.strip(), 0) + 1
            except Exception as exc:  # noqa: BLE001 - every failure counts
                self.failures.append("%s: %s" % (time.strftime("%H:%M:%S"), exc))
            time.sleep(0.02)

    def __enter__(self):
        self.start()
        time.sleep(0.3)
        return self

    def __exit__(self, *exc):
        time.sleep(0.5)
        self.stop.set()
        self.join(15)


# --- fixtures ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("it-dep-repo") / "python-hello")
    git_repo(path, sample_files("python-hello"), "python-hello v1")
    return path


@pytest.fixture(scope="module")
def py_project(repo):
    remove_project(PY)
    lxdctl("create", PY, "--runtime", "python", "--db", "postgres", "--cache", "redis", "--git", repo)
    yield PY
    remove_project(PY)


# --- the python project ------------------------------------------------------------------
def test_first_deploy_from_git(py_project, repo):
    head = sh("git", "rev-parse", "HEAD", cwd=repo).stdout.strip()
    proc, seconds = deploy(PY)
    TIMINGS["first deploy"] = seconds
    assert "v1" in proc.stdout and "success" in proc.stdout
    assert body(PY) == "python-hello release v1"
    assert body(PY, "/health") == "ok"
    db = json.loads(body(PY, "/db"))
    assert db["set"] and db["reachable"] and db["scheme"] == "postgresql"
    assert json.loads(body(PY, "/redis"))["reachable"]
    row = deployments(PY)[0]
    assert (row["version"], row["status"], row["deploy_type"], row["git_commit"]) == ("v1", "success", "standard", head)
    assert row["deployed_by"] and row["started_at"] and row["completed_at"]
    container = "lxdctl-%s" % PY
    show = in_container(container, "systemctl", "show", "lxdctl-app@blue", "-p", "User", "-p", "ActiveState",
                        "-p", "Restart", "-p", "EnvironmentFiles").stdout
    assert "User=app" in show and "ActiveState=active" in show and "Restart=on-failure" in show
    assert "/etc/lxdctl/slots/blue.env" in show
    assert in_container(container, "systemctl", "is-enabled", "lxdctl-app@blue").stdout.strip() == "enabled"
    owner = in_container(container, "sh", "-c", "stat -c %U /proc/$(systemctl show -p MainPID --value lxdctl-app@blue)").stdout
    assert owner.strip() == "app"
    logs = in_container(container, "journalctl", "-u", "lxdctl-app@blue", "--no-pager", "-o", "cat").stdout
    assert "python-hello release v1 listening" in logs
    assert in_container(container, "test", "-f", "/srv/app/releases/v1/app.py", check=False).returncode == 0


def test_auto_deploy_of_the_serving_commit_does_nothing(py_project, repo):
    head = sh("git", "rev-parse", "HEAD", cwd=repo).stdout.strip()
    count = len(deployments(PY))
    proc, _ = deploy(PY, "--auto", "--branch", "main", "--commit", head[:12])
    assert "already serving" in proc.stdout and head in proc.stdout, proc.stdout
    assert len(deployments(PY)) == count and body(PY) == "python-hello release v1"
    err = failed_deploy(PY, "--auto", "--branch", "dev", "--commit", head[:12])
    assert "only deploys the project's branch main" in err, err


def test_zero_downtime_standard_blue_green_canary_rollback(py_project, repo):
    container, green = "lxdctl-%s" % PY, "lxdctl-%s-green" % PY
    with Hammer(PY) as hammer:
        git_repo(repo, {"CHANGES": "v2\n"}, "v2")
        deploy(PY)
        assert body(PY) == "python-hello release v2"

        git_repo(repo, {"CHANGES": "v3\n"}, "v3")
        _, TIMINGS["blue-green deploy"] = deploy(PY, "--blue-green")
        assert body(PY) == "python-hello release v3"
        # the old container is kept, running, with its app stopped
        assert "RUNNING" in sh("lxc", "list", "--format", "csv", "-c", "s", "^%s$" % container).stdout
        assert wait_inactive(container, "lxdctl-app@green")  # after the drain delay
        config = sh("lxc", "config", "show", green).stdout
        assert "user.lxdctl.project: %s" % PY in config

        git_repo(repo, {"CHANGES": "v4\n"}, "v4")
        deploy(PY, "--canary", "50")
        seen = set(body(PY) for _ in range(40))
        assert seen == {"python-hello release v3", "python-hello release v4"}, seen
        assert deployments(PY)[0]["status"] == "deploying"
        deploy(PY, "--promote")
        assert set(body(PY) for _ in range(10)) == {"python-hello release v4"}
        assert deployments(PY)[0]["status"] == "success"

        _, TIMINGS["rollback"] = deploy(PY, "--rollback")
        assert set(body(PY) for _ in range(10)) == {"python-hello release v3"}
        _, TIMINGS["rollback --to v1 (other container)"] = deploy(PY, "--rollback", "--to", "v1")
        assert set(body(PY) for _ in range(10)) == {"python-hello release v1"}
    assert hammer.failures == [], hammer.failures[:10]
    assert hammer.ok > 50
    assert {"python-hello release v%d" % i for i in (1, 2, 3, 4)} <= set(hammer.seen)
    rows = deployments(PY)
    assert [(r["version"], r["deploy_type"], r["status"]) for r in rows[:6]] == [
        ("v1", "rollback", "success"),
        ("v3", "rollback", "rolled_back"),
        ("v4", "canary", "rolled_back"),
        ("v3", "blue_green", "success"),
        ("v2", "standard", "success"),
        ("v1", "standard", "success"),
    ]
    # code and env both: the rolled-back release runs with the env snapshot it was built with
    env = in_container(container, "cat", "/srv/app/slots/blue/.lxdctl/release.env").stdout
    assert "LXDCTL_RELEASE='v1'" in env and "DATABASE_URL=" in env


def test_canary_abort_and_blue_green_back(py_project, repo):
    with Hammer(PY) as hammer:
        deploy(PY, "--canary", "30")
        current = deployments(PY)[0]["version"]
        deploy(PY, "--abort")
        assert set(body(PY) for _ in range(10)) == {"python-hello release v1"}
        assert deployments(PY)[0]["status"] == "rolled_back"
        deploy(PY, "--blue-green")
    assert hammer.failures == [], hammer.failures[:10]
    assert body(PY) != "python-hello release %s" % current
    assert deployments(PY)[0]["deploy_type"] == "blue_green"


def _serving():
    return body(PY)


def test_failed_health_check_keeps_old_release(py_project, repo):
    before = _serving()
    with Hammer(PY) as hammer:
        err = failed_deploy(PY, "--health-path", "/no-such-page", "--health-timeout", "3")
    assert "failed its health check" in err and "HTTP 404" in err, err
    assert "Last app log lines" in err and "/no-such-page" in err, err
    assert hammer.failures == []
    assert _serving() == before
    row = deployments(PY)[0]
    assert row["status"] == "failed" and "health check" in row["error_message"]


def test_start_command_that_exits(py_project, tmp_path):
    before = _serving()
    src = tmp_path / "exits"
    shutil.copytree(os.path.join(SAMPLES, "python-hello"), str(src))
    (src / "Procfile").write_text("web: python3 -c \"import sys; print('boom: giving up'); sys.exit(3)\"\n")
    err = failed_deploy(PY, "--path", str(src), "--health-timeout", "20")
    assert "the start command exited" in err and "boom: giving up" in err, err
    assert _serving() == before


def test_bad_inputs_fail_clearly_and_old_release_serves(py_project, repo, tmp_path):
    before = _serving()
    count = len(deployments(PY))
    # unknown branch and commit
    assert "the branch 'nope' does not exist" in failed_deploy(PY, "--branch", "nope")
    assert "the commit deadbeef does not exist" in failed_deploy(PY, "--commit", "deadbeef")
    # option injection and remote helpers: refused by the CLI ...
    marker = tmp_path / "pwned"
    for url in ("--upload-pack=touch %s" % marker, "ext::sh -c touch% " + str(marker)):
        proc, _ = deploy(PY, "--repo", url, check=False)
        assert proc.returncode == 2 and "--repo" in proc.stderr, proc.stderr
    # ... and by the role, for ansible-playbook and AWX users
    for url in ("--upload-pack=touch %s" % marker, "ext::sh -c touch% " + str(marker)):
        proc = subprocess.run(
            [os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local",
             "-e", "ansible_python_interpreter=%s" % sys.executable,
             "-e", json.dumps({"deploy_project": PY, "deploy_repository": url}),
             os.path.join(ROOT, "playbooks", "deploy.yml")],
            capture_output=True, text=True, env=ansible_env(), timeout=300)
        assert proc.returncode != 0
        assert "deploy_repository: refused" in proc.stdout + proc.stderr, proc.stdout[-2000:]
    assert not marker.exists()
    # no runtime
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "README.md").write_text("nothing to run\n")
    assert "no runtime recognised" in failed_deploy(PY, "--path", str(plain))
    # a failing build: a requirement that cannot be installed (no package index here)
    broken = tmp_path / "broken"
    shutil.copytree(os.path.join(SAMPLES, "python-hello"), str(broken))
    (broken / "requirements.txt").write_text("lxdctl-no-such-package==9.9\n")
    err = failed_deploy(PY, "--path", str(broken))
    assert "pip install -r requirements.txt failed" in err and "lxdctl-no-such-package" in err, err
    # failing tests with --test
    failing = tmp_path / "failing"
    shutil.copytree(os.path.join(SAMPLES, "python-hello"), str(failing))
    (failing / "test_fail.py").write_text("import unittest\n\nclass T(unittest.TestCase):\n"
                                          "    def test_no(self):\n        self.assertEqual(1, 2)\n")
    err = failed_deploy(PY, "--path", str(failing), "--test")
    assert "python -m unittest (--test) failed" in err and "test_no" in err, err
    # --canary outside 1..99
    for value in ("0", "100"):
        proc, _ = deploy(PY, "--canary", value, check=False)
        assert proc.returncode == 2 and "--canary" in proc.stderr
    assert _serving() == before
    rows = deployments(PY)
    failed = [r for r in rows[: len(rows) - count]]
    assert len(failed) == 5 and all(r["status"] == "failed" and r["error_message"] for r in failed), failed


def test_path_deploy_with_tests(py_project):
    proc, _ = deploy(PY, "--path", os.path.join(SAMPLES, "python-hello"), "--test")
    version = deployments(PY)[0]["version"]
    assert body(PY) == "python-hello release %s" % version
    assert deployments(PY)[0]["git_commit"] is None


def test_old_releases_are_pruned_but_not_the_current_or_previous(py_project):
    def releases(name):
        out = in_container(name, "ls", "-1", "/srv/app/releases").stdout.split()
        return sorted(out, key=lambda v: int(v[1:]))

    serving = deployments(PY)[0]
    previous = serving["metadata"]["target"]
    container = previous["container"]  # a standard deploy builds where the current release runs
    before = releases(container)
    assert len(before) > 3, before  # the tests above left more than the 2 kept below
    deploy(PY, "--path", os.path.join(SAMPLES, "python-hello"), "--keep-releases", "2")
    row = deployments(PY)[0]
    assert row["status"] == "success" and row["metadata"]["target"]["container"] == container
    after = releases(container)
    kept = {row["version"], previous["release"]}
    newest_two = set(sorted(before + [row["version"]], key=lambda v: int(v[1:]))[-2:])
    assert set(after) == kept | newest_two, (before, after)
    gone = sorted(set(before) - set(after), key=lambda v: int(v[1:]))
    assert gone and [p["release"] for p in row["metadata"]["pruned"]] == gone
    assert all(p["container"] == container for p in row["metadata"]["pruned"])
    assert body(PY) == "python-hello release %s" % row["version"]
    # a pruned release is no longer offered for a rollback; the release before still is
    err = failed_deploy(PY, "--rollback", "--to", gone[0])
    assert "was pruned" in err and gone[0] in err, err
    assert body(PY) == "python-hello release %s" % row["version"]


def test_deploys_of_one_project_are_serialised(py_project):
    from lxdctl.collection import module_utils

    state = module_utils("_state")
    before = _serving()
    store = state.StateStore.open()
    try:
        store.acquire_lock("project:%s" % PY, pid=os.getpid())
        try:
            err = failed_deploy(PY, "--rollback")
            assert "locked by pid %d" % os.getpid() in err, err
        finally:
            store.release_lock("project:%s" % PY, pid=os.getpid())
        # a lock left by a killed process is taken over
        dead = subprocess.Popen(["true"])
        dead.wait()
        store.acquire_lock("project:%s" % PY, pid=dead.pid)
    finally:
        store.close()
    deploy(PY, "--rollback")
    assert _serving() != before


def test_a_killed_deploy_frees_the_lock_and_is_marked_failed(py_project, tmp_path):
    import signal

    before = _serving()
    slow = tmp_path / "slow"
    shutil.copytree(os.path.join(SAMPLES, "python-hello"), str(slow))
    (slow / "test_slow.py").write_text("import time, unittest\n\nclass T(unittest.TestCase):\n"
                                       "    def test_slow(self):\n        time.sleep(120)\n")
    proc = subprocess.Popen([LXDCTL, "deploy", PY, "--path", str(slow), "--test"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while deployments(PY)[0]["status"] != "building" and time.monotonic() < deadline:
        time.sleep(0.5)
    killed = deployments(PY)[0]
    assert killed["status"] == "building"
    # while it runs, a second deploy of the same project is refused
    assert "is locked by pid" in failed_deploy(PY, "--rollback")
    # kill the whole run: the CLI, and ansible-playbook with its workers (ansible-runner starts it in
    # a session of its own; it owns the lock)
    from lxdctl.collection import module_utils

    store = module_utils("_state").StateStore.open()
    try:
        owner = store.get_lock("project:%s" % PY)["owner_pid"]
    finally:
        store.close()
    assert owner and owner != proc.pid
    os.killpg(os.getpgid(owner), signal.SIGKILL)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while module_utils("_state").pid_alive(owner) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _serving() == before
    # LXD runs the killed build's test to its end: it is still there, in the serving container
    leftovers = {c: _marked_build_processes(c) for c in ("lxdctl-%s" % PY, "lxdctl-%s-green" % PY)}
    [where] = [c for c, pids in leftovers.items() if pids]
    # the next deploy builds there too (a standard deploy builds beside what serves), ending them first
    proc, _ = deploy(PY, "--path", os.path.join(SAMPLES, "python-hello"))
    assert _marked_build_processes(where) == []
    rows = dict((r["id"], r) for r in deployments(PY))
    assert rows[killed["id"]]["status"] == "failed" and "interrupted" in rows[killed["id"]]["error_message"]
    assert _serving() != before


def _marked_build_processes(container):
    """Pids in the container whose environment carries the build mark (app_release BUILD_MARK)."""
    found = in_container(container, "sh", "-c", "grep -lz '^LXDCTL_BUILD_OF=' /proc/[0-9]*/environ 2>/dev/null || true",
                         check=False).stdout
    return sorted(line.split("/")[2] for line in found.split())


# --- node and go, deployed in parallel ---------------------------------------------------
@pytest.fixture(scope="module")
def other_projects():
    for name in (NODE, GO):
        remove_project(name)
    lxdctl("create", NODE, "--runtime", "node", "--cache", "redis")
    lxdctl("create", GO, "--runtime", "go", "--db", "postgres")
    yield
    for name in (NODE, GO):
        remove_project(name)


def test_node_and_go_samples_deploy_in_parallel(other_projects):
    # a project without a recorded repository needs --path
    err = failed_deploy(NODE)
    assert "has no git repository: deploy with --path DIR" in err, err
    procs = {name: subprocess.Popen([LXDCTL, "deploy", name, "--path", os.path.join(SAMPLES, sample), "--test"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, sample in ((NODE, "node-hello"), (GO, "go-hello"))}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, (name, out, err)
    assert body(NODE) == "node-hello release %s" % deployments(NODE)[0]["version"]
    assert json.loads(body(NODE, "/redis"))["reachable"]
    assert body(GO) == "go-hello release v1"
    assert json.loads(body(GO, "/db"))["reachable"]
    rows = deployments(GO)
    assert rows[0]["status"] == "success" and rows[0]["metadata"]["runtime"] == "go"


def test_report_timings():
    print("\ndeploy timings (s): %s" % ", ".join("%s %.1f" % kv for kv in TIMINGS.items()))


def test_delete_removes_the_blue_green_container(py_project):
    green = "lxdctl-%s-green" % PY
    assert sh("lxc", "info", green, check=False).returncode == 0, "the blue-green tests above made it"
    lxdctl("delete", PY, "--yes")
    for container in ("lxdctl-%s" % PY, green):
        assert sh("lxc", "info", container, check=False).returncode != 0, container
