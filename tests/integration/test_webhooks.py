"""Push webhooks against a real ``lxdctl serve`` on 127.0.0.1: signatures, routing, the queue.

A project record (runtime python, a local git repository made here) with a one-stage pipeline
is wired to ``acme/it-pipe-w`` by ``lxdctl pipeline setup --github`` / ``--gitlab``; its secret
comes from ``lxdctl pipeline secret``.  Requests are signed here with hmac; the run that a
push queues is executed by the server's job dispatcher in an ephemeral container, and checked
with ``lxdctl pipeline runs/status --output json``.

Project names start with ``it-pipe-``; the fixture deletes what it creates.
"""
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest

from lxdctl.collection import module_utils
from tests.support.cli import LXDCTL, lxdctl

pytestmark = pytest.mark.integration

NAME = "it-pipe-w"
SLUG = "acme/it-pipe-w"
GL_SLUG = "acme-group/it-pipe-w"
PIPELINE = "timeout: 60\ntest:\n  script:\n    - echo \"webhook-run $BRANCH $COMMIT\"\n"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def runs():
    return json.loads(lxdctl("pipeline", "runs", NAME, "--output", "json").stdout)


def wait_run(number, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = [r for r in runs() if r["run"] == number]
        if found and found[0]["status"] in ("success", "failed", "cancelled"):
            return found[0]
        time.sleep(0.5)
    raise AssertionError("run %d did not finish: %r" % (number, runs()))


def _cleanup(store):
    if store.get_project(NAME):
        store.delete_project(NAME)
    shutil.rmtree("/var/lib/lxdctl/pipelines/%s" % NAME, ignore_errors=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    state = module_utils("_state")
    store = state.StateStore.open()
    _cleanup(store)
    repo = str(tmp_path_factory.mktemp("wh-repo") / "app")
    os.makedirs(repo)
    git = ["git", "-C", repo, "-c", "user.email=it@lxdctl.test", "-c", "user.name=it"]
    subprocess.run(["git", "init", "-q", "-b", "main", repo], check=True)
    with open(os.path.join(repo, ".lxdctl.yml"), "w") as handle:
        handle.write(PIPELINE)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "init"], check=True)
    sha = subprocess.run(git + ["rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    store.upsert_project(NAME, runtime="python", git_repository=repo, git_branch="main", status="running")
    lxdctl("pipeline", "create", NAME)
    outdir = str(tmp_path_factory.mktemp("wh-ci"))
    lxdctl("pipeline", "setup", NAME, "--github", SLUG, "--output-dir", outdir)
    lxdctl("pipeline", "setup", NAME, "--gitlab", GL_SLUG, "--output-dir", outdir)
    secret = lxdctl("pipeline", "secret", NAME).stdout.strip()
    port = free_port()
    proc = subprocess.Popen([LXDCTL, "serve", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None, proc.stdout.read().decode()
            time.sleep(0.2)
    yield {"url": "http://127.0.0.1:%d" % port, "secret": secret, "sha": sha}
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    _cleanup(store)
    store.close()


def post(server, path, body, headers):
    data = json.dumps(body).encode()
    headers = dict(headers, **{"Content-Type": "application/json"})
    request = urllib.request.Request(server["url"] + path, data=data, headers=headers, method="POST")
    started = time.time()
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, answer = response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        status, answer = exc.code, json.loads(exc.read() or b"null")
    return status, answer, time.time() - started


def github(server, body, event="push", delivery=None, secret=None, signature=None):
    data = json.dumps(body).encode()
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4())}
    key = server["secret"] if secret is None else secret
    if signature is None and key:
        signature = "sha256=" + hmac.new(key.encode(), data, hashlib.sha256).hexdigest()
    if signature:
        headers["X-Hub-Signature-256"] = signature
    return post(server, "/webhook/github", body, headers)


def push(server, full_name=SLUG):
    return {"ref": "refs/heads/main", "after": server["sha"], "repository": {"full_name": full_name}}


def test_ping_is_answered(server):
    status, answer, took = github(server, {"zen": "Design for failure.", "repository": {"full_name": SLUG}}, event="ping")
    assert status == 200 and answer["status"] == "pong" and took < 3


def test_missing_or_wrong_signature_is_401(server):
    before = len(runs())
    status, answer, took = github(server, push(server), secret="")
    assert status == 401 and "missing" in answer["error"] and took < 3
    status, _, _ = github(server, push(server), secret="not-the-secret")
    assert status == 401
    status, _, _ = github(server, push(server), signature="sha256=" + "0" * 64)
    assert status == 401
    assert len(runs()) == before


def test_unknown_repository_is_404(server):
    status, answer, _ = github(server, push(server, full_name="acme/nobody"))
    assert status == 404 and answer["error"] == "unknown repository"


def test_signed_push_runs_once_and_replay_is_ignored(server):
    before = len(runs())
    delivery = str(uuid.uuid4())
    status, answer, took = github(server, push(server), delivery=delivery)
    assert status == 202 and answer["status"] == "queued" and took < 3, (status, answer, took)
    number = answer["pipeline_run"]
    status, again, _ = github(server, push(server), delivery=delivery)
    assert status == 200 and again["status"] == "duplicate"
    run = wait_run(number)
    assert run["status"] == "success" and run["commit"] == server["sha"] and run["trigger"].startswith("github push")
    logs = lxdctl("pipeline", "logs", NAME, "--run", str(number)).stdout
    assert "webhook-run main %s" % server["sha"] in logs
    time.sleep(1)
    assert len(runs()) == before + 1  # exactly one run for the delivery, replay included


def test_gitlab_token(server):
    body = {"object_kind": "push", "ref": "refs/heads/main", "checkout_sha": server["sha"], "after": server["sha"],
            "project": {"path_with_namespace": GL_SLUG}}
    status, _, _ = post(server, "/webhook/gitlab", body, {"X-Gitlab-Event": "Push Hook"})
    assert status == 401
    status, _, _ = post(server, "/webhook/gitlab", body, {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "wrong"})
    assert status == 401
    wrong_repo = dict(body, project={"path_with_namespace": "acme-group/nobody"})
    status, _, _ = post(server, "/webhook/gitlab", wrong_repo, {"X-Gitlab-Token": server["secret"]})
    assert status == 404
    event = str(uuid.uuid4())
    headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": server["secret"], "X-Gitlab-Event-UUID": event}
    status, answer, took = post(server, "/webhook/gitlab", body, headers)
    assert status == 202 and took < 3
    status, again, _ = post(server, "/webhook/gitlab", body, headers)
    assert status == 200 and again["status"] == "duplicate"
    assert wait_run(answer["pipeline_run"])["status"] == "success"
