"""The API server on the PostgreSQL state backend (``LXDCTL_DATABASE_URL=postgresql://...``).

A fresh database ``it_apipg_<random>`` on the platform's PostgreSQL (created as the platform
admin, dropped afterwards) holds the state; ``lxdctl serve`` runs on it.  Checked with psql,
independent of the store's code: tokens are stored hashed, expire and are revoked; project
listings follow the token's scope; a job runs once to success, its events stream, and it
survives ``kill -9`` of the server; logins make sessions; denials are audited.
"""
import json
import os
import re
import secrets
import subprocess
import sys
import time

import psycopg2
import psycopg2.sql
import pytest

from tests.integration.test_api_server import Server, make_token, noop_job, run_cli, wait_job, ws_connect
from lxdctl.api import websocket

pytestmark = pytest.mark.integration

A, B = "apipg-one", "apipg-two"


def _admin(pg, dbname="postgres"):
    conn = psycopg2.connect(host=pg["host"], port=pg["port"], user=pg["admin_user"], password=pg["admin_password"],
                            dbname=dbname, connect_timeout=10)
    conn.autocommit = True
    return conn


@pytest.fixture(scope="module")
def pg_env(tmp_path_factory):
    pg = json.load(open("/etc/lxdctl/platform.json"))["postgres"]
    name = "it_apipg_%s" % secrets.token_hex(4)
    admin = _admin(pg)
    with admin.cursor() as cur:
        cur.execute(psycopg2.sql.SQL("CREATE DATABASE {}").format(psycopg2.sql.Identifier(name)))
    tmp = str(tmp_path_factory.mktemp("apipg"))
    env = dict(os.environ)
    for key in ("LXDCTL_SERVER", "LXDCTL_TOKEN", "LXDCTL_LOCAL"):
        env.pop(key, None)
    url = "postgresql://%s:%s@%s:%s/%s" % (pg["admin_user"], pg["admin_password"], pg["host"], pg["port"], name)
    env.update(LXDCTL_DATABASE_URL=url, LXDCTL_STATE_KEY_FILE="%s/state.key" % tmp, XDG_CONFIG_HOME="%s/.config" % tmp,
               LXDCTL_API_RATE="1000/2000", LXDCTL_API_IP_RATE="1000/2000", TMP=tmp, TMPDIR=tmp)
    code = ("from lxdctl.collection import module_utils\n"
            "s = module_utils('_state').StateStore.open()\n"
            "s.upsert_project('%s', runtime='python', port=8000, status='running')\n"
            "s.upsert_project('%s', runtime='node', port=3000, status='running', description='secret-of-b')\n" % (A, B))
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    try:
        yield env, psql_conn(pg, name)
    finally:
        with admin.cursor() as cur:
            cur.execute(psycopg2.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psycopg2.sql.Identifier(name)))
        admin.close()


def psql_conn(pg, name):
    def query(sql):
        done = subprocess.run(["psql", "-h", str(pg["host"]), "-p", str(pg["port"]), "-U", pg["admin_user"], "-d", name,
                               "-At", "-F", "|", "-c", sql], env=dict(os.environ, PGPASSWORD=pg["admin_password"]),
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return [line.split("|") for line in done.stdout.splitlines()]
    return query


@pytest.fixture(scope="module")
def pg_server(pg_env):
    env, _psql = pg_env
    srv = Server(env["TMP"], env).start()
    yield srv
    srv.stop()


def test_tokens_are_hashed_expire_and_are_revoked_on_postgres(pg_env, pg_server):
    env, psql = pg_env
    admin = make_token(env, "apipg-admin", "--role", "admin", "--all-projects")
    dev = make_token(env, "apipg-dev", "--role", "developer", "--project", A)
    short = make_token(env, "apipg-short", "--role", "viewer", "--project", A, "--expires", "3s")
    rows = dict((r[0], r[1:]) for r in psql("SELECT token_id, token_hash, name FROM api_tokens"))
    for token in (admin, short, dev):
        token_id = token.split("_")[1]
        assert token_id in rows and token not in "|".join(rows[token_id]) and token.split("_")[2] not in rows[token_id][0]
    assert pg_server.call("GET", "/api/me", short)[0] == 200
    status, text, _ = pg_server.call("GET", "/api/projects", dev)
    assert status == 200 and [p["name"] for p in json.loads(text)["projects"]] == [A]
    status, text, _ = pg_server.call("GET", "/api/projects", admin)
    assert [p["name"] for p in json.loads(text)["projects"]] == [A, B]
    status, text, _ = pg_server.call("GET", "/api/projects/%s" % B, dev)
    assert status == 404 and "secret-of-b" not in text
    expires = psql("SELECT expires_at FROM api_tokens WHERE token_id = '%s'" % short.split("_")[1])[0][0]
    assert expires  # then it stops working on its own, with no restart
    deadline = time.time() + 20
    while pg_server.call("GET", "/api/me", short)[0] == 200:
        assert time.time() < deadline, "the token did not expire (%s)" % expires
        time.sleep(0.5)
    assert pg_server.call("GET", "/api/me", short)[0] == 401  # expired
    status, text, _ = pg_server.call("DELETE", "/api/tokens/%s" % dev.split("_")[1], admin)
    assert status == 200, text
    assert pg_server.call("GET", "/api/me", dev)[0] == 401  # revoked
    revoked = psql("SELECT revoked_at IS NOT NULL FROM api_tokens WHERE token_id = '%s'" % dev.split("_")[1])
    assert revoked == [["t"]]
    # every denial above is in the audit log, once, in PostgreSQL
    denials = psql("SELECT detail FROM audit_log WHERE action = 'api denied'")
    assert len([d for d in denials if '"/api/projects/%s"' % B in d[0] and "404" in d[0]]) == 1
    assert not any(token in "|".join(r[0] for r in psql("SELECT detail FROM audit_log")) for token in (admin, dev))


def test_a_job_runs_once_streams_and_survives_kill_9_on_postgres(pg_env, pg_server):
    env, psql = pg_env
    admin = make_token(env, "apipg-jobs", "--role", "admin", "--all-projects")
    marker = os.path.join(env["TMP"], "pg-marker")
    job_id = noop_job(pg_server, admin, 2, marker, project=A)
    sock, buf = ws_connect(pg_server, "/api/jobs/%d/events" % job_id, admin)
    deadline = time.time() + 30
    while not (os.path.exists(marker) and "start" in open(marker).read()):
        assert time.time() < deadline, "the job never started its playbook"
        time.sleep(0.1)
    # the first events arrived over the WebSocket while the job runs
    frames = []
    while not any(json.loads(p).get("event", {}).get("type") == "runner" for _f, op, p in frames if op == 1):
        chunk = sock.recv(65536)
        assert chunk, frames
        buf += chunk
        got, buf = websocket.parse_frames(buf)
        frames += got
    sock.close()
    pg_server.kill9()
    pg_server.start()
    job = wait_job(pg_server, admin, job_id)
    assert job["status"] == "success" and job["attempts"] == 1 and job["project"] == A, job
    lines = open(marker).read().split()
    assert lines.count("start") == 1 and lines.count("end") == 1
    assert psql("SELECT status, attempts FROM jobs WHERE id = %d" % job_id) == [["success", "1"]]
    seqs = [int(r[0]) for r in psql("SELECT seq FROM job_events WHERE job_id = %d ORDER BY seq" % job_id)]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) > 3
    # another project's token cannot see it
    other = make_token(env, "apipg-b", "--role", "developer", "--project", B)
    assert pg_server.call("GET", "/api/jobs/%d" % job_id, other)[0] == 404


def test_login_session_and_remote_cli_on_postgres(pg_env, pg_server):
    from lxdctl.api import auth

    env, psql = pg_env
    password = "apipg-" + os.urandom(8).hex()
    done = subprocess.run([sys.executable, "-m", "lxdctl.main", "user", "create", "apipg-alice", "--role", "viewer",
                           "--password-stdin", "--totp"], env=env, input=password + "\n", capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    secret = re.search(r"secret=([A-Z2-7]+)", done.stdout).group(1)
    assert run_cli(env, "user", "grant", "apipg-alice", A, "--role", "viewer").returncode == 0
    login = {"user": "apipg-alice", "password": password, "totp": auth.totp(auth.b32_key(secret))}
    status, text, headers = pg_server.call("POST", "/api/login", None, login)
    assert status == 200, text
    cookie = headers["Set-Cookie"].split(";")[0]
    status, text, _ = pg_server.call("GET", "/api/projects", None, headers={"Cookie": cookie})
    assert status == 200 and [p["name"] for p in json.loads(text)["projects"]] == [A]
    assert psql("SELECT count(*) FROM sessions WHERE revoked_at IS NULL") == [["1"]]
    # the remote CLI against a server on PostgreSQL state prints what the local CLI prints
    admin = make_token(env, "apipg-cli", "--role", "admin", "--all-projects")
    remote = dict(env, LXDCTL_SERVER=pg_server.url, LXDCTL_TOKEN=admin)
    for args in (["list", "--output", "json"], ["token", "list", "--output", "json"]):
        local, far = run_cli(env, *args), run_cli(remote, *args)
        assert (far.returncode, far.stdout, far.stderr) == (local.returncode, local.stdout, local.stderr), args
