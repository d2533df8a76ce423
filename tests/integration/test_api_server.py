"""The API server for real: ``lxdctl serve`` on 127.0.0.1 with a temporary SQLite state.

* every route of the router table with no token, a wrong token and another project's token;
* a job survives ``kill -9`` of the server and ends exactly once;
* a job's events stream live over the WebSocket;
* the remote CLI prints what the local CLI prints, with local files too (``--env``, ``--path``,
  ``--output-dir``): error messages and generated files the same, and for real a remote create
  with an env file and a deploy of an uploaded directory that nginx then serves;
* exec is ``GET /api/containers/:id/exec``, plain (JSON) and interactive (WebSocket), checked with lxc;
* 429 after the rate limit; audit entries for a mutation and a denial; no token in any log.

The PostgreSQL state backend is in test_api_postgres.py, HTTPS in test_api_tls.py.
"""
import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from lxdctl.api import websocket

A, B = "apia-one", "apib-two"
LXDCTL = [sys.executable, "-m", "lxdctl.main"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, tmp, env, extra_env=None, args=(), scheme="http"):
        self.tmp = tmp
        self.env = dict(env, **(extra_env or {}))
        self.port = free_port()
        self.args = list(args)
        self.url = "%s://127.0.0.1:%d" % (scheme, self.port)
        self.proc = None
        self.logs = []

    def start(self):
        log = open(os.path.join(self.tmp, "server-%d-%d.log" % (self.port, len(self.logs))), "w")
        self.logs.append(log.name)
        self.proc = subprocess.Popen(LXDCTL + ["serve", "--host", "127.0.0.1", "--port", str(self.port)] + self.args,
                                     env=self.env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                assert self.proc.poll() is None, open(log.name).read()
                time.sleep(0.05)
        raise AssertionError("the server did not start")

    def kill9(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_text(self):
        return "".join(open(name).read() for name in self.logs)

    def call(self, method, path, token=None, body=None, headers=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", "Bearer " + token)
        for key, value in (headers or {}).items():
            req.add_header(key, value)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read().decode(), dict(resp.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(), dict(exc.headers)


def run_cli(env, *args, **kwargs):
    return subprocess.run(LXDCTL + list(args), env=env, capture_output=True, text=True, timeout=120, **kwargs)


def run_bin(env, *args, **kwargs):
    """The installed ``lxdctl`` script: usage errors name the program as a user sees it."""
    return subprocess.run([os.path.join(os.path.dirname(sys.executable), "lxdctl")] + list(args), env=env,
                          capture_output=True, text=True, timeout=300, **kwargs)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("api"))
    env = dict(os.environ)
    for key in ("LXDCTL_SERVER", "LXDCTL_TOKEN", "LXDCTL_LOCAL"):
        env.pop(key, None)
    env.update(LXDCTL_DATABASE_URL="sqlite:///%s/state.db" % tmp, LXDCTL_STATE_KEY_FILE="%s/state.key" % tmp,
               XDG_CONFIG_HOME=os.path.join(tmp, ".config"), LXDCTL_API_RATE="1000/2000",
               LXDCTL_API_IP_RATE="1000/2000", TMP=tmp, TMPDIR=tmp)
    code = ("from lxdctl.collection import module_utils\n"
            "s = module_utils('_state').StateStore.open()\n"
            "s.upsert_project('%s', runtime='python', port=8000, domain='%s.apitest.example', status='running')\n"
            "s.upsert_project('%s', runtime='node', port=3000, domain='%s.apitest.example', status='running',"
            " description='secret-of-b')\n" % (A, A, B, B))
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return env


def make_token(env, *args):
    done = run_cli(env, "token", "create", *args)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert re.match(r"^lxdctl_[0-9a-f]{8}_\S{43}$", token)
    return token


@pytest.fixture(scope="module")
def tokens(env):
    return {
        "admin": make_token(env, "apitest-admin", "--role", "admin", "--all-projects"),
        "a": make_token(env, "apitest-a", "--role", "developer", "--project", A),
        "a_read": make_token(env, "apitest-a-read", "--role", "viewer", "--project", A, "--read-only"),
    }


@pytest.fixture(scope="module")
def server(env, tokens):
    srv = Server(env["TMP"], env).start()
    yield srv
    srv.stop()
    # no generated token ever appears in the server's output
    text = srv.log_text()
    for token in tokens.values():
        assert token not in text


def wait_job(server, token, job_id, until=("success", "failed", "cancelled"), timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        status, body, _ = server.call("GET", "/api/jobs/%d" % job_id, token)
        if status == 200 and json.loads(body)["job"]["status"] in until:
            return json.loads(body)["job"]
        time.sleep(0.1)
    raise AssertionError("job %s did not reach %s: %s" % (job_id, until, body))


def noop_job(server, token, seconds, marker, project=None):
    extravars = {"noop_wait_seconds": seconds, "noop_wait_marker": marker}
    if project:
        extravars["project_name"] = project
    status, body, _ = server.call("POST", "/api/jobs", token, {"playbook": "noop_wait", "extravars": extravars})
    assert status == 202, body
    return json.loads(body)["job_id"]


# --- the sweep ------------------------------------------------------------------------
def test_every_route_denies_without_the_right_token(server, tokens, env):
    status, body, _ = server.call("GET", "/api/openapi.json", tokens["admin"])
    assert status == 200
    doc = json.loads(body)
    b_job = noop_job(server, tokens["admin"], 0, os.path.join(env["TMP"], "b-marker"), project=B)
    b_token_id = tokens["admin"].split("_")[1]
    secret_markers = (B, "secret-of-b", "node")
    ops = [(m.upper(), p, op) for p, item in doc["paths"].items() for m, op in item.items()]
    assert len(ops) >= 30
    body_for_b = {"name": B, "project": B, "db": "postgres", "fqdn": "x.%s.apitest.example" % B, "type": "A",
                  "content": "10.77.0.9", "argv": ["status", B], "command": ["true"], "playbook": "noop_wait",
                  "role": "viewer", "projects": [B]}
    checked = 0
    for method, path, op in ops:
        concrete = path.replace("{id}", str(b_job) if path.startswith("/api/jobs/") else
                                b_token_id if path.startswith("/api/tokens/") else B)
        public = op["x-permission"] == "public"
        project_route = "{id}" in path and not path.startswith("/api/tokens/") or \
            any(k in (op.get("requestBody") or {}).get("content", {}).get("application/json", {}).get(
                "schema", {}).get("properties", {}) for k in ("project", "name"))
        for who, token in (("none", None), ("wrong", "lxdctl_%s_%s" % (b_token_id, "A" * 43)),
                           ("garbage", "nonsense"), ("other project", tokens["a"]), ("a read-only", tokens["a_read"])):
            status, text, _ = server.call(method, concrete, token, body_for_b if method in ("POST", "PUT") else None)
            label = "%s %s with %s token: %s %s" % (method, concrete, who, status, text[:200])
            if public:
                assert status in (400, 401, 403, 404), label
                continue
            if who in ("none", "wrong", "garbage"):
                assert status == 401, label
            elif project_route or op["x-permission"] == "admin" or \
                    method not in ("GET", "HEAD") and path != "/api/logout":
                assert status in (403, 404), label
            else:
                assert status in (200, 403, 404), label
            for marker in secret_markers:
                assert marker not in text, label
            checked += 1
    assert checked >= 4 * (len(ops) - 4)
    # and the right tokens do get through
    assert server.call("GET", "/api/projects/%s" % A, tokens["a"])[0] == 200
    status, text, _ = server.call("GET", "/api/projects", tokens["a"])
    assert status == 200 and [p["name"] for p in json.loads(text)["projects"]] == [A]
    status, text, _ = server.call("GET", "/api/projects", tokens["admin"])
    assert [p["name"] for p in json.loads(text)["projects"]] == [A, B]


# --- jobs: durable across kill -9 -------------------------------------------------------
def test_job_survives_kill_9_and_ends_exactly_once(server, tokens, env):
    marker = os.path.join(env["TMP"], "kill-marker")
    job_id = noop_job(server, tokens["admin"], 4, marker)
    wait_job(server, tokens["admin"], job_id, until=("running",))
    deadline = time.time() + 20
    while not (os.path.exists(marker) and "start" in open(marker).read()):
        assert time.time() < deadline, "the job never started its playbook"
        time.sleep(0.1)
    server.kill9()
    server.start()
    job = wait_job(server, tokens["admin"], job_id)
    assert job["status"] == "success", job
    assert job["attempts"] == 1
    lines = open(marker).read().split()
    assert lines.count("start") == 1 and lines.count("end") == 1
    # the events: one start of the worker and one end
    status, text, _ = server.call("GET", "/api/jobs/%d" % job_id, tokens["admin"])
    assert status == 200


def test_job_events_stream_live_over_websocket(server, tokens, env):
    job_id = noop_job(server, tokens["a"] and tokens["admin"], 2, os.path.join(env["TMP"], "ws-marker"))
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(("GET /api/jobs/%d/events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n"
                  % (job_id, key, tokens["admin"])).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    assert ("Sec-WebSocket-Accept: %s" % websocket.accept_key(key)).encode() in head
    received = []  # (monotonic time, frame)
    buf = rest
    closed = False
    while not closed:
        frames, buf = websocket.parse_frames(buf)
        for fin, opcode, payload in frames:
            if opcode == websocket.OP_CLOSE:
                closed = True
                break
            received.append((time.monotonic(), json.loads(payload)))
        if not closed:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    sock.close()
    assert closed
    kinds = [f.get("event", {}).get("event") for _, f in received if "event" in f]
    assert "playbook_on_task_start" in kinds and "playbook_on_stats" in kinds
    first_runner = next(t for t, f in received if f.get("event", {}).get("type") == "runner")
    end = received[-1]
    assert end[1]["type"] == "job" and end[1]["status"] == "success"
    assert end[0] - first_runner > 1.0  # events arrived while the job ran (it waits 2 s), not at the end
    seqs = [f["seq"] for _, f in received if "seq" in f]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))


def test_post_create_is_acknowledged_fast_and_runs_the_cli_validation(server, tokens):
    started = time.monotonic()
    status, text, headers = server.call("POST", "/api/projects", tokens["a"], {"name": A + "x"} and
                                        {"name": A, "runtime": "cobol"})
    elapsed = time.monotonic() - started
    # A exists: a create is refused at once
    assert status == 409
    started = time.monotonic()
    status, text, headers = server.call("POST", "/api/projects", tokens["admin"], {"name": "apic-new", "runtime": "cobol"})
    elapsed = time.monotonic() - started
    # acknowledged before the job runs: a create takes seconds, the answer well under one
    assert status == 202 and elapsed < 1.0, (status, elapsed)
    job = wait_job(server, tokens["admin"], json.loads(text)["job_id"])
    assert job["status"] == "failed" and "runtime" in job["error"]  # the same click validation as the CLI


# --- remote CLI ----------------------------------------------------------------------
def test_remote_cli_prints_what_the_local_cli_prints(server, tokens, env):
    remote = dict(env, LXDCTL_SERVER=server.url, LXDCTL_TOKEN=tokens["admin"])
    for args in (["list", "--output", "json"], ["list"], ["status", "nosuch"], ["deployments", A, "--output", "json"]):
        local = run_cli(env, *args)
        far = run_cli(remote, *args)
        assert (far.returncode, far.stdout, far.stderr) == (local.returncode, local.stdout, local.stderr), args
    assert json.loads(run_cli(remote, "list", "--output", "json").stdout)[0]["name"] == A
    # a project token: its own project yes, another one no, and init never
    scoped = dict(env, LXDCTL_SERVER=server.url, LXDCTL_TOKEN=tokens["a"])
    assert run_cli(scoped, "deployments", A).returncode == 0
    denied = run_cli(scoped, "deployments", B)
    assert denied.returncode == 1 and "404" in denied.stderr and "secret-of-b" not in denied.stdout + denied.stderr
    assert run_cli(scoped, "list").returncode == 1
    refused = run_cli(scoped, "init", "--yes")
    assert refused.returncode == 1 and "only on the server's host" in refused.stderr
    # config set server/token: the same as the environment
    config_env = dict(env)
    assert run_cli(config_env, "config", "set", "server", server.url).returncode == 0
    assert run_cli(config_env, "config", "set", "token", tokens["admin"]).returncode == 0
    path = os.path.join(env["XDG_CONFIG_HOME"], "lxdctl", "config.json")
    assert os.stat(path).st_mode & 0o777 == 0o600
    shown = run_cli(config_env, "config", "show", "--output", "json")
    assert tokens["admin"] not in shown.stdout and json.loads(shown.stdout)["mode"] == "remote"
    assert run_cli(config_env, "list", "--output", "json").stdout == run_cli(dict(env, LXDCTL_LOCAL="1"), "list",
                                                                              "--output", "json").stdout
    os.unlink(path)


# --- rate limits and audit ------------------------------------------------------------
def test_rate_limit_answers_429_with_retry_after(env, tokens):
    srv = Server(env["TMP"], env, {"LXDCTL_API_RATE": "1/3"}).start()
    try:
        answers = [srv.call("GET", "/api/me", tokens["a"]) for _ in range(8)]
        codes = [a[0] for a in answers]
        assert codes[:3] == [200, 200, 200] and 429 in codes
        limited = next(a for a in answers if a[0] == 429)
        assert int(limited[2]["Retry-After"]) >= 1
        assert srv.call("GET", "/api/me", tokens["admin"])[0] == 200  # per token
    finally:
        srv.stop()


def test_audit_has_a_mutation_and_a_denial_once(server, tokens, env):
    before = json.loads(run_cli(env, "audit", "--output", "json", "--limit", "1").stdout)[0]["id"]
    status, text, _ = server.call("POST", "/api/tokens", tokens["admin"],
                                  {"name": "apitest-audit", "role": "viewer", "projects": [A], "scope": "read"})
    assert status == 201
    new_token = json.loads(text)["token"]
    path = "/api/projects/%s/deployments?probe=%s" % (B, os.urandom(4).hex())
    assert server.call("GET", path, tokens["a"])[0] == 404
    done = run_cli(env, "audit", "--output", "json", "--limit", "50")
    assert done.returncode == 0
    entries = [e for e in json.loads(done.stdout) if e["id"] > before]
    assert new_token not in done.stdout and tokens["a"] not in done.stdout
    created = [e for e in entries if e["action"] == "api token create"]
    assert len(created) == 1 and created[0]["actor"] == "token:%s" % tokens["admin"].split("_")[1]
    denials = [e for e in entries if e["action"] == "api denied" and e["detail"]["path"] == path.split("?")[0]
               and e["detail"]["status"] == 404]
    assert len(denials) == 1 and denials[0]["project"] == B and denials[0]["actor"] == "token:%s" % tokens["a"].split("_")[1]
    # a remote mutation is audited with its command and option names, never its values
    secret = "apitest-secret-%s" % os.urandom(6).hex()
    remote = dict(env, LXDCTL_SERVER=server.url, LXDCTL_TOKEN=tokens["a"])
    run_cli(remote, "env", "set", A, "APITEST_KEY=" + secret)
    run_cli(remote, "create", A, "--git=https://user:%s@git.example/x.git" % secret, "--runtime=cobol")
    audit_text = run_cli(env, "audit", "--output", "json", "--limit", "20").stdout
    assert '"api cli env set"' in audit_text and '"api cli create"' in audit_text and "--git" in audit_text
    assert secret not in audit_text and secret not in server.log_text()
    by_project = json.loads(run_cli(env, "audit", "--project", B, "--output", "json").stdout)
    assert any(e["action"] == "api denied" for e in by_project)
    assert all(e["project"] == B for e in by_project)


def test_job_whose_worker_died_too_is_requeued_exactly_once(server, tokens, env):
    """kill -9 of the server *and* of the job's worker: the restarted server kills what is left of
    the attempt (ansible-playbook too) and runs the job once more; a second loss would fail it."""
    import sqlite3

    marker = os.path.join(env["TMP"], "requeue-marker")
    job_id = noop_job(server, tokens["admin"], 3, marker)
    deadline = time.time() + 20
    while not (os.path.exists(marker) and "start" in open(marker).read()):
        assert time.time() < deadline, "the job never started its playbook"
        time.sleep(0.1)
    db = sqlite3.connect(env["LXDCTL_DATABASE_URL"][len("sqlite:///"):])
    worker = db.execute("SELECT worker_pid FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]
    server.kill9()
    os.killpg(worker, signal.SIGKILL)
    server.start()
    job = wait_job(server, tokens["admin"], job_id)
    assert job["status"] == "success" and job["attempts"] == 2, job
    assert "re-queued once" in (job["error"] or "") or job["error"] is None
    time.sleep(3.5)  # had the first attempt's playbook survived, it would write its "end" now
    lines = open(marker).read().split()
    assert lines.count("start") == 2 and lines.count("end") == 1, lines
    db.close()


def test_login_with_password_and_totp_gives_a_session(server, env):
    from lxdctl.api import auth

    password = "apitest-" + os.urandom(8).hex()
    done = subprocess.run(LXDCTL + ["user", "create", "apitest-alice", "--role", "developer", "--password-stdin",
                                    "--totp"], env=env, input=password + "\n", capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    secret = re.search(r"secret=([A-Z2-7]+)", done.stdout).group(1)
    assert run_cli(env, "user", "grant", "apitest-alice", A, "--role", "viewer").returncode == 0
    login = {"user": "apitest-alice", "password": password, "totp": auth.totp(auth.b32_key(secret))}
    assert server.call("POST", "/api/login", None, dict(login, totp="000000"))[0] == 401
    assert server.call("POST", "/api/login", None, dict(login, password="wrong-password"))[0] == 401
    status, text, headers = server.call("POST", "/api/login", None, login)
    assert status == 200, text
    cookie = headers["Set-Cookie"].split(";")[0]
    assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
    status, text, _ = server.call("GET", "/api/me", None, headers={"Cookie": cookie})
    assert status == 200 and json.loads(text)["actor"] == "user:apitest-alice"
    assert server.call("GET", "/api/projects/%s" % A, None, headers={"Cookie": cookie})[0] == 200
    assert server.call("GET", "/api/projects/%s" % B, None, headers={"Cookie": cookie})[0] == 404
    # a viewer may not change A; a cookie mutation without the X-Lxdctl-Request header is refused (CSRF)
    assert server.call("DELETE", "/api/projects/%s" % A, None, headers={"Cookie": cookie,
                                                                       "X-Lxdctl-Request": "1"})[0] == 403
    assert server.call("POST", "/api/logout", None, headers={"Cookie": cookie})[0] == 401
    assert server.call("POST", "/api/logout", None, headers={"Cookie": cookie, "X-Lxdctl-Request": "1"})[0] == 200
    assert server.call("GET", "/api/me", None, headers={"Cookie": cookie})[0] == 401
    assert password not in server.log_text() and password not in run_cli(env, "audit", "-o", "json").stdout


def test_cancel_a_running_job_and_pipelines_without_or_with_their_kind(server, tokens, env):
    marker = os.path.join(env["TMP"], "cancel-marker")
    job_id = noop_job(server, tokens["admin"], 30, marker)
    deadline = time.time() + 20
    while not (os.path.exists(marker) and "start" in open(marker).read()):
        assert time.time() < deadline
        time.sleep(0.1)
    assert server.call("POST", "/api/jobs/%d/cancel" % job_id, tokens["a"])[0] == 404  # not A's job
    status, text, _ = server.call("POST", "/api/jobs/%d/cancel" % job_id, tokens["admin"])
    assert status == 200
    job = wait_job(server, tokens["admin"], job_id, timeout=20)
    assert job["status"] == "cancelled"
    # the pipeline routes delegate to the job kind "pipeline" of the pipelines code, or say 501
    probe = subprocess.run([sys.executable, "-c", "from lxdctl.api import extensions, jobs; extensions.load(); "
                            "print(jobs.has_kind('pipeline'))"], env=env, capture_output=True, text=True)
    status, text, _ = server.call("GET", "/api/pipelines/%s/status" % A, tokens["a"])
    assert status == 200 and json.loads(text)["pipelines"] == []
    status, text, _ = server.call("POST", "/api/pipelines/%s/trigger" % A, tokens["a"], {})
    if probe.stdout.strip() == "False":
        assert status == 501 and "pipeline" in json.loads(text)["error"]
    else:
        assert status == 404 and "no pipeline" in json.loads(text)["error"]


def ws_connect(server, path, token):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n"
                  % (path, key, token)).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock, rest


@pytest.fixture(scope="module")
def container(env):
    """A real container for project apia-logs (state row only: no playbook needed to read its logs)."""
    name = "apia-logs"
    container = "lxdctl-" + name
    subprocess.run(["lxc", "delete", "--force", container], capture_output=True)
    subprocess.run(["lxc", "launch", "lxdctl-base", container, "-p", "lxdctl"], check=True, capture_output=True)
    try:
        code = ("from lxdctl.collection import module_utils\n"
                "s = module_utils('_state').StateStore.open()\n"
                "s.upsert_project('%s', runtime='python', port=8000, status='running', container_name='%s')\n"
                % (name, container))
        subprocess.run([sys.executable, "-c", code], env=env, check=True)
        deadline = time.time() + 60
        while subprocess.run(["lxc", "exec", container, "--", "journalctl", "-n", "1"],
                             capture_output=True).returncode != 0:
            assert time.time() < deadline, "journald did not come up"
            time.sleep(0.5)
        yield name, container
    finally:
        subprocess.run(["lxc", "delete", "--force", container], capture_output=True)


def test_project_logs_stream_live_over_websocket(server, tokens, env, container):
    """A real container: lines logged after the WebSocket opened arrive as text frames."""
    name, container = container
    token = make_token(env, "apitest-logs", "--role", "viewer", "--project", name, "--read-only")
    assert server.call("GET", "/api/projects/%s/logs" % name, tokens["a"])[0] == 404
    sock, buf = ws_connect(server, "/api/projects/%s/logs?system=true&tail=0" % name, token)
    word = "apitest-live-%s" % os.urandom(4).hex()
    time.sleep(1)
    subprocess.run(["lxc", "exec", container, "--", "logger", word], check=True)
    lines = []
    deadline = time.time() + 20
    while not any(word in line for line in lines):
        assert time.time() < deadline, lines
        frames, buf = websocket.parse_frames(buf)
        lines += [p.decode() for _, op, p in frames if op == websocket.OP_TEXT]
        if not any(word in line for line in lines):
            buf += sock.recv(65536)
    sock.sendall(websocket.frame(b"\x03\xe8", websocket.OP_CLOSE, mask=b"abcd"))
    sock.close()


def ws_messages(sock, buf):
    """Every frame until the server's close: ``[(opcode, payload)]``."""
    got = []
    while True:
        frames, buf = websocket.parse_frames(buf)
        for _fin, opcode, payload in frames:
            got.append((opcode, payload))
            if opcode == websocket.OP_CLOSE:
                return got
        chunk = sock.recv(65536)
        if not chunk:
            return got
        buf += chunk


def test_exec_is_a_get_plain_or_interactive_over_websocket(server, tokens, env, container):
    """GET /api/containers/:id/exec as the spec lists it: JSON for a plain GET, stdin/stdout frames
    over a WebSocket; checked in the container with lxc."""
    from urllib.parse import urlencode

    name, container = container
    dev = make_token(env, "apitest-exec", "--role", "developer", "--project", name)
    viewer = make_token(env, "apitest-exec-ro", "--role", "viewer", "--project", name, "--read-only")
    marker = "/tmp/apitest-exec-%s" % os.urandom(4).hex()
    query = "?" + urlencode([("command", "sh"), ("command", "-c"), ("command", 'touch "$1"; echo out; echo err >&2; exit 3'),
                             ("command", "sh"), ("command", marker), ("root", "true")])
    path = "/api/containers/%s/exec" % name
    assert server.call("GET", path + query, viewer)[0] == 403  # exec changes things: write needed
    assert server.call("GET", path + query, tokens["a"])[0] == 404
    assert server.call("POST", path, dev, {"command": ["true"]})[0] == 405
    assert server.call("GET", path, dev)[0] == 400  # no command
    assert subprocess.run(["lxc", "exec", container, "--", "test", "-e", marker]).returncode == 1
    status, text, _ = server.call("GET", path + query, dev)
    assert status == 200, text
    assert json.loads(text) == {"exit_code": 3, "stdout": "out\n", "stderr": "err\n"}
    assert subprocess.run(["lxc", "exec", container, "--", "test", "-e", marker]).returncode == 0
    # interactive: what the client writes is the command's stdin; an empty frame closes it
    sock, buf = ws_connect(server, path + "?command=sh&command=-c&command=" +
                           "read%20a%3B%20echo%20got-%24a%3B%20cat%20%3E%26%202%3B%20exit%205&root=true", dev)
    sock.sendall(websocket.frame(b"line-one\n", websocket.OP_BINARY, mask=b"abcd"))
    sock.sendall(websocket.frame(b"to-stderr\n", websocket.OP_BINARY, mask=b"efgh"))
    sock.sendall(websocket.frame(b"", websocket.OP_BINARY, mask=b"ijkl"))
    got = ws_messages(sock, buf)
    sock.close()
    out = b"".join(p[1:] for op, p in got if op == websocket.OP_BINARY and p[:1] == b"\x01")
    err = b"".join(p[1:] for op, p in got if op == websocket.OP_BINARY and p[:1] == b"\x02")
    assert out == b"got-line-one\n" and err == b"to-stderr\n", got
    texts = [json.loads(p) for op, p in got if op == websocket.OP_TEXT]
    assert texts == [{"exit_code": 5}] and got[-1][0] == websocket.OP_CLOSE
    audit = json.loads(run_cli(env, "audit", "--project", name, "--output", "json", "--limit", "10").stdout)
    assert len([e for e in audit if e["action"] == "api exec"]) == 2
    assert marker not in json.dumps(audit)  # the command's words are not kept: they may hold secrets


# --- remote CLI with local files -------------------------------------------------------
def test_remote_files_errors_and_generated_ci_files_match_local(server, tokens, env, tmp_path):
    """--env/--path/--output-dir name the caller's files: the same answers and files as locally."""
    import filecmp

    remote = dict(env, LXDCTL_SERVER=server.url, LXDCTL_TOKEN=tokens["a"])
    here, there = tmp_path / "local", tmp_path / "remote"
    for cwd in (here, there):
        cwd.mkdir(parents=True)
        (cwd / "bad.env").write_text("GOOD=1\nnot a pair\n")
        (cwd / "a-file").write_text("x\n")
    cases = [["create", A, "--env", "bad.env"], ["create", A, "--env=nosuch.env"], ["deploy", A, "--path", "a-file"],
             ["pipeline", "setup", A, "--github", "o/r", "--output-dir", "out"],
             ["pipeline", "setup", A, "--github", "o/r", "--output-dir", "out"],  # unchanged
             ["pipeline", "setup", A, "--jenkins"]]
    for args in cases:
        local = run_bin(env, *args, cwd=str(here))
        far = run_bin(remote, *args, cwd=str(there))
        assert (far.returncode, far.stdout, far.stderr) == (local.returncode, local.stdout, local.stderr), args
        assert "lxdctl-upload-" not in far.stdout + far.stderr
    assert "line 2 is not KEY=VALUE" in run_bin(remote, *cases[0], cwd=str(there)).stderr  # the server read it
    compared = filecmp.dircmp(str(here), str(there))
    assert not compared.diff_files and not compared.left_only and not compared.right_only
    assert (there / "out" / ".github" / "workflows" / "lxd-deploy.yml").is_file() and (there / "Jenkinsfile").is_file()
    # a file that differs stays the caller's unless --force; then it is overwritten, locally
    (there / "Jenkinsfile").write_text("mine\n")
    far = run_bin(remote, "pipeline", "setup", A, "--jenkins", cwd=str(there))
    assert far.returncode == 1 and "Jenkinsfile exists and differs" in far.stderr and str(tmp_path) not in far.stderr
    assert (there / "Jenkinsfile").read_text() == "mine\n"
    assert run_bin(remote, "pipeline", "setup", A, "--jenkins", "--force", cwd=str(there)).returncode == 0
    assert (there / "Jenkinsfile").read_text() == (here / "Jenkinsfile").read_text()
    # a raw path without its upload names the server's files: refused, nothing read
    status, text, _ = server.call("POST", "/api/cli", tokens["a"], {"argv": ["create", A, "--env", "/etc/shadow"]})
    assert status == 400 and "without its upload" in text and "root" not in text
    # the server's private directories are gone
    leftovers = [n for n in os.listdir(env["TMP"]) if n.startswith("lxdctl-cli-")]
    assert leftovers == []


def test_remote_create_with_env_file_and_deploy_of_a_local_directory(server, tokens, env, tmp_path):
    """For real: the env file's values land in the container, the uploaded directory is what serves."""
    name = "apid-dep"
    sample = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "samples",
                          "python-hello")
    src = tmp_path / "src"
    subprocess.run(["cp", "-r", sample, str(src)], check=True)
    (src / "node_modules").mkdir()
    (src / "node_modules" / "big").write_bytes(os.urandom(1 << 20))  # deploy skips it: never sent
    (tmp_path / "app.env").write_text("APIDEP_GREETING='hello from a file'\n")
    remote = dict(env, LXDCTL_SERVER=server.url, LXDCTL_TOKEN=tokens["admin"])
    if subprocess.run(["lxc", "info", "lxdctl-" + name], capture_output=True).returncode == 0:
        run_bin(env, "delete", name, "--yes")  # left by an interrupted run
    try:
        done = run_bin(remote, "create", name, "--runtime", "python", "--env", "app.env", cwd=str(tmp_path))
        assert done.returncode == 0, done.stdout + done.stderr
        container = "lxdctl-" + name
        env_file = subprocess.run(["lxc", "exec", container, "--", "cat", "/etc/lxdctl/app.env"], capture_output=True,
                                  text=True, check=True).stdout
        assert "APIDEP_GREETING" in env_file and "hello from a file" in env_file
        started = time.monotonic()
        done = run_bin(remote, "deploy", name, "--path", "src", "--no-build", cwd=str(tmp_path))
        sys.stderr.write("remote deploy --path: %.1f s\n" % (time.monotonic() - started))
        assert done.returncode == 0, done.stdout + done.stderr
        assert "v1" in done.stdout and "success" in done.stdout
        assert "lxdctl-upload-" not in done.stdout + done.stderr  # no server path shows
        req = urllib.request.Request("http://10.77.0.1:80/", headers={"Host": "%s.lxdctl.test" % name})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.read().decode().strip() == "python-hello release v1"
        assert [n for n in os.listdir(env["TMP"]) if n.startswith("lxdctl-cli-")] == []
    finally:
        done = run_bin(env, "delete", name, "--yes")
        assert done.returncode == 0, done.stderr
