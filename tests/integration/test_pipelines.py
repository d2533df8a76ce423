"""Pipeline runs end to end: the real CLI, LXD, git, nginx and the state store.

The project is made with ``lxdctl create it-pipe-a --runtime python`` from a local git
repository (the python-hello sample plus a pipeline file and a unit test), so the deploy stage
really deploys (``lxdctl deploy``) and verify really checks the site (``lxdctl health-check``,
``lxdctl smoke-test``).  Checks go through independent clients: ``lxc list`` for the ephemeral
run container and its limits, the files under /var/lib/lxdctl/pipelines, HTTP to nginx with
the project's Host header, a local HTTP receiver for notifications, and
``lxdctl pipeline status/runs --output json``.

Project names start with ``it-pipe-``; the fixture deletes what it creates.
"""
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from lxdctl.collection import collections_path, module_utils

pytestmark = pytest.mark.integration

LXDCTL = os.path.join(os.path.dirname(sys.executable), "lxdctl")
NAME = "it-pipe-a"
RUN_DIR = "/var/lib/lxdctl/pipelines"

PIPELINE = """\
timeout: 60
limits: {cpu: 1, memory: 256MiB, processes: 64}
variables: {GREETING: hello}
build:
  script:
    - echo "building $PROJECT $BRANCH ${COMMIT} $GREETING"
    - mkdir -p dist && echo "built $COMMIT" > dist/app.txt
  artifacts: [dist/]
test:
  script:
    - python3 -m unittest -v test_ci
    - mkdir -p coverage && echo 91% > coverage/summary.txt
  coverage: coverage/
deploy:
  environment: {name: production, url: "https://$PROJECT.$DOMAIN"}
  script: [echo deploying]
verify:
"""

TEST_OK = ("import unittest\n\n\ndef add(a, b):\n    return a + b\n\n\n"
           "class T(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(2, 2), 4)\n")
TEST_BAD = TEST_OK.replace("4)", "5)")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = os.path.join(ROOT, "samples", "python-hello")


def lxdctl(*args, check=True, timeout=300):
    proc = subprocess.run([LXDCTL] + list(args), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError("lxdctl %s failed (rc=%s):\n%s\n%s" % (" ".join(args), proc.returncode, proc.stdout, proc.stderr))
    return proc


def git(repo, *args):
    return subprocess.run(["git", "-C", repo, "-c", "user.email=it@lxdctl.test", "-c", "user.name=it"] + list(args),
                          check=True, capture_output=True, text=True).stdout.strip()


def commit_files(repo, branch, files, base="main"):
    if branch != "main":
        git(repo, "checkout", "-q", "-B", branch, base)
    elif subprocess.run(["git", "-C", repo, "rev-parse", "-q", "--verify", "HEAD"], capture_output=True).returncode == 0:
        git(repo, "checkout", "-q", "main")
    for rel, text in files.items():
        with open(os.path.join(repo, rel), "w") as handle:
            handle.write(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "branch %s" % branch)
    sha = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")
    return sha


def ci_containers():
    out = subprocess.run(["lxc", "list", "--format", "json"], check=True, capture_output=True, text=True).stdout
    return dict((c["name"], c) for c in json.loads(out) if c["name"].startswith("lxdctl-ci-%s-" % NAME))


def runs(name=NAME):
    return json.loads(lxdctl("pipeline", "runs", name, "--output", "json").stdout)


def wait_running(branch, seconds=120):
    """Until the newest run is this branch's and running in its container (right after the
    trigger there may be no run at all yet: this file's first run, when run alone)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        newest = runs()
        if newest and newest[0]["branch"] == branch and newest[0]["status"] == "running" and ci_containers():
            return newest[0]
        time.sleep(0.3)
    raise AssertionError("no running run of branch %s: %s" % (branch, runs()[:1]))


def wait_log(text, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if text in lxdctl("pipeline", "logs", NAME).stdout:
            return
        time.sleep(0.3)
    raise AssertionError("%r never reached the log:\n%s" % (text, lxdctl("pipeline", "logs", NAME).stdout[-3000:]))


def processes_of_run(number):
    """Processes started for run ``number``'s deploy (their environment names it), by /proc."""
    marker = ("LXDCTL_ACTOR=pipeline run #%d" % number).encode() + b"\0"
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/environ" % pid, "rb") as handle:
                if marker in handle.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def deploy_converges():
    """A deploy by hand after a killed one takes the dead deploy's lock over and serves."""
    lxdctl("deploy", NAME, "--branch", "main", timeout=600)
    request = urllib.request.Request("http://10.77.0.1/", headers={"Host": "%s.lxdctl.test" % NAME})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200 and b"python-hello" in response.read()
    assert json.loads(lxdctl("deployments", NAME, "--output", "json").stdout)[0]["status"] == "success"


def status(run=None):
    args = ["pipeline", "status", NAME, "--output", "json"] + (["--run", str(run)] if run else [])
    return json.loads(lxdctl(*args).stdout)


class Receiver(http.server.BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Receiver.received.append((self.path, json.loads(body.decode())))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def _cleanup():
    for name in ci_containers():
        subprocess.run(["lxc", "delete", "--force", name], capture_output=True)
    store = module_utils("_state").StateStore.open()
    try:
        exists = store.get_project(NAME) is not None
    finally:
        store.close()
    if exists:
        lxdctl("delete", NAME, "--yes")
    shutil.rmtree(os.path.join(RUN_DIR, NAME), ignore_errors=True)


@pytest.fixture(scope="module")
def receiver():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()


@pytest.fixture(scope="module")
def project(tmp_path_factory, receiver):
    _cleanup()
    repo = str(tmp_path_factory.mktemp("pipe-repo") / "app")
    shutil.copytree(SAMPLE, repo)
    subprocess.run(["git", "init", "-q", "-b", "main", repo], check=True)
    sha = commit_files(repo, "main", {".lxdctl.yml": PIPELINE, "test_ci.py": TEST_OK})
    lxdctl("create", NAME, "--runtime", "python", "--port", "8000", "--git", repo)
    lxdctl("pipeline", "create", NAME, "--notify-slack", receiver + "/slack", "--notify-discord", receiver + "/discord")
    yield {"repo": repo, "main": sha}
    _cleanup()


def test_create_rejects_a_malformed_file(project):
    repo = project["repo"]
    commit_files(repo, "malformed", {".lxdctl.yml": "test:\n  script: [a, b\n"})
    proc = lxdctl("pipeline", "create", NAME, "--branch", "malformed", check=False)
    assert proc.returncode == 1 and "line 3, column 1" in proc.stderr and "malformed YAML" in proc.stderr
    commit_files(repo, "unknown-key", {".lxdctl.yml": "test:\n  scripts: [pytest]\n"})
    proc = lxdctl("pipeline", "create", NAME, "--branch", "unknown-key", check=False)
    assert proc.returncode == 1 and "unknown key 'scripts'" in proc.stderr and "line 2, column 3" in proc.stderr
    # a run of a commit whose file is broken fails before any container is made, saying where
    proc = lxdctl("pipeline", "trigger", NAME, "--branch", "malformed", check=False)
    assert proc.returncode == 1
    run = status()
    assert run["status"] == "failed" and run["stages"] == []
    assert ".lxdctl.yml, line 3, column 1: malformed YAML" in lxdctl("pipeline", "logs", NAME).stdout


def test_successful_run_in_an_ephemeral_container(project, receiver):
    Receiver.received.clear()
    proc = subprocess.Popen([LXDCTL, "pipeline", "trigger", NAME], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, stdin=subprocess.DEVNULL)
    seen = None
    deadline = time.time() + 120
    while time.time() < deadline and seen is None and proc.poll() is None:
        found = ci_containers()
        if found:
            seen = list(found.values())[0]
        time.sleep(0.3)
    assert seen is not None, "no run container appeared"
    config = seen["config"]
    # throwaway: made for this run only (its id is on it), removed by the role's always: block,
    # and ephemeral, so LXD deletes it on its own when it stops (a killed run's too)
    assert config["user.lxdctl.pipeline-run"].isdigit()
    assert seen["ephemeral"] is True
    assert config["limits.cpu"] == "1" and config["limits.memory"] == "256MiB" and config["limits.processes"] == "64"
    images = json.loads(subprocess.run(["lxc", "image", "list", "--format", "json"], check=True, capture_output=True,
                                       text=True).stdout)
    python_image = [i["fingerprint"] for i in images if any(a["name"] == "lxdctl-python" for a in i["aliases"])]
    assert config["volatile.base_image"] in python_image  # the project's runtime image
    assert seen["profiles"] == ["lxdctl"]  # isolated port on the bridge, like the project's own container
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    assert ci_containers() == {}, "the run container outlived the run"

    run = status()
    assert run["status"] == "success" and run["commit"] == project["main"] and run["branch"] == "main"
    assert [(s["name"], s["status"]) for s in run["stages"]] == [
        ("build", "success"), ("test", "success"), ("deploy", "success"), ("verify", "success")]
    # logs: the variables were substituted, the test output was kept
    logs = lxdctl("pipeline", "logs", NAME).stdout
    assert "building %s main %s hello" % (NAME, project["main"]) in logs
    assert "test_add" in logs and "OK" in logs
    assert run["environment"] == {"name": "production", "url": "https://%s.lxdctl.test" % NAME}
    # deploy took the path of `lxdctl deploy` (a recorded deployment of this commit, served by
    # nginx) and verify ran the checks
    assert "lxdctl deploy %s --branch main --commit %s" % (NAME, project["main"]) in logs
    deployments = json.loads(lxdctl("deployments", NAME, "--output", "json").stdout)
    assert deployments[0]["status"] == "success" and deployments[0]["git_commit"] == project["main"]
    request = urllib.request.Request("http://10.77.0.1/", headers={"Host": "%s.lxdctl.test" % NAME})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200 and b"python-hello" in response.read()
    assert "lxdctl health-check %s" % NAME in logs and "lxdctl smoke-test %s" % NAME in logs
    # artifacts and coverage copied out of the container
    base = os.path.join(RUN_DIR, NAME, str(run["run"]))
    with open(os.path.join(base, "build", "dist", "app.txt")) as handle:
        assert handle.read().strip() == "built %s" % project["main"]
    with open(os.path.join(base, "test", "coverage", "summary.txt")) as handle:
        assert handle.read().strip() == "91%"
    assert sorted(run["files"]) == ["build/dist/app.txt", "test/coverage/summary.txt"]
    # notifications (Slack: text, Discord: content)
    paths = dict(Receiver.received)
    assert "succeeded" in paths["/slack"]["text"] and "succeeded" in paths["/discord"]["content"]


def test_failing_test_stage_stops_the_run(project):
    Receiver.received.clear()
    sha = commit_files(project["repo"], "broken", {"test_ci.py": TEST_BAD})
    proc = lxdctl("pipeline", "trigger", NAME, "--branch", "broken", check=False)
    assert proc.returncode == 1
    run = status()
    assert run["status"] == "failed" and run["commit"] == sha
    assert [(s["name"], s["status"]) for s in run["stages"]] == [("build", "success"), ("test", "failed")]
    logs = lxdctl("pipeline", "logs", NAME, "--run", str(run["run"])).stdout
    assert "AssertionError" in logs and "== stage deploy" not in logs and "deploying" not in logs
    deployments = json.loads(lxdctl("deployments", NAME, "--output", "json").stdout)
    assert all(d["git_commit"] != sha for d in deployments)
    assert any("failed" in body.get("text", "") for path, body in Receiver.received if path == "/slack")
    assert ci_containers() == {}


def test_timeout_stops_an_endless_script(project):
    slow = PIPELINE.replace("    - python3 -m unittest -v test_ci\n", "    - sleep 1000\n").replace(
        "  coverage: coverage/\n", "  coverage: coverage/\n  timeout: 5\n")
    commit_files(project["repo"], "slow", {".lxdctl.yml": slow})
    proc = lxdctl("pipeline", "trigger", NAME, "--branch", "slow", check=False)
    assert proc.returncode == 1
    run = status()
    assert run["status"] == "failed" and run["stages"], lxdctl("pipeline", "logs", NAME).stdout
    assert run["stages"][-1] == dict(run["stages"][-1], name="test", status="timeout")
    assert run["stages"][-1]["seconds"] < 100  # stopped at 5 s (plus the kill), not after sleep 1000
    assert "timed out after 5 seconds" in lxdctl("pipeline", "logs", NAME).stdout
    assert ci_containers() == {}


def test_endless_output_and_fork_bomb_are_contained(project):
    hostile = ("limits: {cpu: 1, memory: 256MiB, processes: 64}\n"
               "build:\n  script: ['yes lxdctl-endless-output']\n"
               "test:\n  timeout: 30\n  script: ['bomb() { bomb | bomb & }; bomb; sleep 2; echo the-bomb-ended']\n")
    commit_files(project["repo"], "hostile", {".lxdctl.yml": hostile})
    proc = lxdctl("pipeline", "trigger", NAME, "--branch", "hostile", check=False)
    assert proc.returncode == 1
    run = status()
    assert [(s["name"], s["status"]) for s in run["stages"]] == [("build", "failed")]
    logs = lxdctl("pipeline", "logs", NAME).stdout
    assert "[output truncated at 65536 bytes" in logs
    assert len(logs) < 200 * 1024
    # `lxdctl test` runs only the test stage: the fork bomb, held by limits.processes
    proc = lxdctl("test", NAME, "--branch", "hostile", check=False)
    run = status()
    assert run["trigger"] == "lxdctl test" and [s["name"] for s in run["stages"]] == ["test"]
    assert run["stages"][0]["status"] in ("success", "failed")  # ended by itself, not by the timeout
    logs = lxdctl("pipeline", "logs", NAME).stdout
    assert "Cannot fork" in logs or "Resource temporarily unavailable" in logs
    assert subprocess.run(["true"]).returncode == 0  # the host still forks
    assert ci_containers() == {}


def test_lxdctl_test_runs_only_the_test_stage(project):
    proc = lxdctl("test", NAME, "--commit", project["main"])
    assert "run #" in proc.stdout and "success" in proc.stdout
    run = status()
    assert run["only"] == ["test"] and [(s["name"], s["status"]) for s in run["stages"]] == [("test", "success")]
    assert "== stage build" not in lxdctl("pipeline", "logs", NAME).stdout


def _same_shape(log, number):
    """A run's log without what differs between two runs of the same commit: number, trigger, times."""
    log = log.replace("run #%d" % number, "run #N").replace("/%s/%d/" % (NAME, number), "/%s/N/" % NAME)
    log = re.sub(r"^(lxdctl pipeline run #N of %s) \(.*\)$" % NAME, r"\1", log, flags=re.M)
    return re.sub(r"\((\d+\.\d+)s\)|in \d+\.\d+s", "(T)", log)


def test_ansible_playbook_makes_the_same_run_as_the_cli(project):
    """The run is the playbook's: ansible-playbook with the same inputs as `lxdctl test --commit`
    gives the same stages, files and log, in the same records."""
    cli_run = status()
    assert cli_run["only"] == ["test"] and cli_run["commit"] == project["main"]
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path())
    extravars = {"pipeline_project": NAME, "pipeline_only": ["test"], "pipeline_commit": project["main"]}
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
                           os.path.join(ROOT, "playbooks", "pipeline_run.yml"), "-e", json.dumps(extravars)],
                          capture_output=True, text=True, env=env, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = status()
    assert run["run"] == cli_run["run"] + 1 and run["trigger"] == "ansible-playbook"
    for key in ("status", "branch", "commit", "only", "environment"):
        assert run[key] == cli_run[key], key
    assert [(s["name"], s["status"]) for s in run["stages"]] == [(s["name"], s["status"]) for s in cli_run["stages"]]
    assert run["files"] == cli_run["files"] == ["test/coverage/summary.txt"]
    with open(os.path.join(RUN_DIR, NAME, str(run["run"]), "test", "coverage", "summary.txt")) as handle:
        assert handle.read().strip() == "91%"
    logs = [lxdctl("pipeline", "logs", NAME, "--run", str(r["run"])).stdout for r in (cli_run, run)]
    assert _same_shape(logs[0], cli_run["run"]) == _same_shape(logs[1], run["run"])
    assert ci_containers() == {}


def test_cancel_kills_a_running_run(project):
    commit_files(project["repo"], "sleepy", {".lxdctl.yml": "test:\n  script: [echo napping, sleep 1000]\n"})
    proc = subprocess.Popen([LXDCTL, "pipeline", "trigger", NAME, "--branch", "sleepy"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    # The stage's lines reach the stored log when the stage ends, so wait for the run and its
    # container instead, then give the stage a moment to reach its sleep.
    wait_running("sleepy")
    time.sleep(3)
    follow = subprocess.Popen([LXDCTL, "pipeline", "logs", NAME, "--follow"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    time.sleep(1.5)
    assert follow.poll() is None  # still following the running run
    assert lxdctl("pipeline", "cancel", NAME).stdout.startswith("%s: cancelled run" % NAME)
    proc.communicate(timeout=60)
    assert proc.returncode == 1
    followed, _ = follow.communicate(timeout=30)
    assert "== stage test" in followed and "cancelled" in followed
    assert status()["status"] == "cancelled"
    assert ci_containers() == {}
    assert "no queued or running run" in lxdctl("pipeline", "cancel", NAME).stdout


def test_deploy_stage_honours_the_stage_timeout(project):
    """The deploy stage's host part (lxdctl deploy) is killed, process tree and all, when the
    stage's timeout passes; the killed deploy is a crash the next deploy converges from."""
    slow = PIPELINE.replace("  script: [echo deploying]\n", "  script: [echo deploying]\n  timeout: 2\n")
    commit_files(project["repo"], "deploy-timeout", {".lxdctl.yml": slow})
    started = time.time()
    proc = lxdctl("pipeline", "trigger", NAME, "--branch", "deploy-timeout", check=False)
    assert proc.returncode == 1 and time.time() - started < 240
    run = status()
    assert run["status"] == "failed" and run["branch"] == "deploy-timeout"
    assert [(s["name"], s["status"]) for s in run["stages"]] == [
        ("build", "success"), ("test", "success"), ("deploy", "timeout")]
    logs = lxdctl("pipeline", "logs", NAME).stdout
    assert "$ lxdctl deploy %s --branch deploy-timeout" % NAME in logs
    assert "stage deploy stopped: timed out after 2 seconds" in logs and "== stage verify" not in logs
    assert processes_of_run(run["run"]) == [], "a process of the killed deploy is still running"
    assert ci_containers() == {}
    deploy_converges()


def test_cancel_during_the_deploy_stage_stops_it_promptly(project):
    commit_files(project["repo"], "deploy-cancel", {".lxdctl.yml": PIPELINE, "cancel.txt": "deploy, then cancel\n"})
    proc = subprocess.Popen([LXDCTL, "pipeline", "trigger", NAME, "--branch", "deploy-cancel"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    number = wait_running("deploy-cancel")["run"]
    wait_log("$ lxdctl deploy %s --branch deploy-cancel" % NAME)
    time.sleep(1)  # into the deploy's playbook
    assert processes_of_run(number), "the deploy is not running"
    cancelled_at = time.time()
    assert lxdctl("pipeline", "cancel", NAME).stdout == "%s: cancelled run #%d\n" % (NAME, number)
    proc.communicate(timeout=60)
    assert proc.returncode == 1 and time.time() - cancelled_at < 30
    run = status(number)
    assert run["status"] == "cancelled"
    assert [(s["name"], s["status"]) for s in run["stages"]][-1] == ("deploy", "cancelled")
    assert "stage deploy stopped: the run was cancelled" in lxdctl("pipeline", "logs", NAME).stdout
    assert processes_of_run(number) == [], "a process of the cancelled deploy is still running"
    assert ci_containers() == {}
    deploy_converges()


def test_runs_lists_every_run(project):
    listed = runs()
    numbers = [r["run"] for r in listed]
    assert numbers == sorted(numbers, reverse=True) and len(numbers) >= 6
    assert set(r["status"] for r in listed) <= {"success", "failed", "cancelled"}
    table = lxdctl("pipeline", "runs", NAME).stdout
    assert table.splitlines()[0].split()[:3] == ["RUN", "STATUS", "BRANCH"]


def test_a_run_whose_runner_died_is_not_run_again(project):
    from lxdctl.pipelines import run as runmod

    dead = subprocess.Popen(["true"])
    dead.wait()
    store = module_utils("_state").StateStore.open()
    try:
        row = runmod.queue_run(NAME, trigger="it", store=store)
        store.update_pipeline_run(row["id"], status="running", logs="half a log\n")
        store.acquire_lock("pipeline-run:%d" % row["id"], pid=dead.pid)
    finally:
        store.close()
    assert runmod.execute_run(NAME, row["id"]) == "failed"
    run = status(row["run_number"])
    assert run["status"] == "failed" and run["stages"] == []
    logs = lxdctl("pipeline", "logs", NAME, "--run", str(row["run_number"])).stdout
    assert logs.startswith("half a log\n") and "interrupted" in logs
    # a finished run is never started again
    assert runmod.execute_run(NAME, row["id"]) == "failed"
    assert ci_containers() == {}
