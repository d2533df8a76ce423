"""The project lifecycle end to end, through the real CLI and the real services.

Every piece is checked with an independent client: lxc, psql, mariadb, redis-cli, dig, curl,
a raw memcached socket, and the state store read by ``lxdctl list`` / ``status``.  Project
names start with ``it-proj-``; fixtures delete what they create.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse

import pytest

from tests.support.ansible_module import ansible_env
from tests.support.faults import kill_group

pytestmark = pytest.mark.integration

BIN = os.path.dirname(sys.executable)
LXDCTL = os.path.join(BIN, "lxdctl")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUTPUTS = []  # every CLI output of this module, to check that no generated secret leaks
TIMINGS = {}

PG = "it-proj-pg"
PG_DOMAIN = "it-proj-pg-app.lxdctl.test"


# --- helpers -------------------------------------------------------------------------------
def lxdctl(*args, check=True, timeout=900, env=None):
    proc = subprocess.run([LXDCTL] + list(args), capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})), stdin=subprocess.DEVNULL)
    OUTPUTS.append(proc.stdout + proc.stderr)
    if check and proc.returncode != 0:
        raise AssertionError("lxdctl %s failed (rc=%s):\n%s\n%s" % (" ".join(args), proc.returncode, proc.stdout,
                                                                    proc.stderr))
    return proc


def changes(proc):
    match = re.search(r"done: (\d+) change", proc.stderr)
    assert match, proc.stderr
    return int(match.group(1))


def redacted(text):
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1****@", str(text))


def sh(*argv, check=True, timeout=120, input=None):
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(redacted("%s failed (rc=%s): %s %s" % (argv, proc.returncode, proc.stdout, proc.stderr)))
    return proc


def url_parts(url):
    """A URL's parts without its password (safe to show in an assertion)."""
    split = urllib.parse.urlsplit(url)
    return {"scheme": split.scheme, "username": split.username, "hostname": split.hostname, "port": split.port,
            "path": split.path}


def url_password(url):
    return urllib.parse.unquote(urllib.parse.urlsplit(url).password or "")


class Env(dict):
    """The app's variables; never printed whole (they hold passwords), even by a failed assert."""

    def __repr__(self):
        return "<env %s>" % ", ".join(sorted(self))


def container_env(name):
    """The app's env file as the app sees it: sourced by sh inside the container."""
    script = 'set -a; . /etc/lxdctl/app.env; set +a; env -0'
    out = subprocess.run(["lxc", "exec", "lxdctl-" + name, "--", "sh", "-c", script], capture_output=True,
                         timeout=60, check=True).stdout.decode()
    return Env(item.split("=", 1) for item in out.split("\0") if "=" in item)


def lxc_instance(name):
    listing = json.loads(sh("lxc", "list", "--format", "json", "lxdctl-" + name).stdout)
    return next((i for i in listing if i["name"] == "lxdctl-" + name), None)


def dig(name):
    return sh("dig", "+short", "@127.0.0.1", "-p", "5300", name, "A").stdout.split()


def http_status(domain, scheme="http", path="/"):
    port = 80 if scheme == "http" else 443
    proc = sh("curl", "-sk", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "--max-time", "20",
              "--resolve", "%s:%d:127.0.0.1" % (domain, port), "%s://%s%s" % (scheme, domain, path), check=False)
    code, _, redirect = proc.stdout.partition(" ")
    return int(code or 0), redirect


def psql_admin(config, sql):
    pg = config["postgres"]
    return subprocess.run(
        ["psql", "-h", pg["host"], "-p", str(pg["port"]), "-U", pg["admin_user"], "-d", "postgres", "-tAc", sql],
        capture_output=True, text=True, timeout=60, check=True,
        env=dict(os.environ, PGPASSWORD=pg["admin_password"])).stdout.strip()


def mariadb_admin(config, sql):
    my = config["mysql"]
    return subprocess.run(["mariadb", "-h", my["host"], "-P", str(my["port"]), "-u", my["admin_user"], "-N", "-B",
                           "-e", sql], capture_output=True, text=True, timeout=60, check=True,
                          env=dict(os.environ, MYSQL_PWD=my["admin_password"])).stdout.strip()


def redis_admin(config, *args):
    rd = config["redis"]
    return subprocess.run(["redis-cli", "-h", rd["host"], "-p", str(rd["port"]), "--user", rd["admin_user"],
                           "--pass", rd["admin_password"], "--no-auth-warning"] + list(args),
                          capture_output=True, text=True, timeout=60, check=True).stdout.strip()


def memcached_version(servers):
    host, port = servers.split(",")[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"version\r\n")
        return sock.recv(100).decode()


def listed(name):
    projects = json.loads(lxdctl("list", "--output", "json").stdout)
    return next((p for p in projects if p["name"] == name), None)


def force_delete(name):
    subprocess.run([LXDCTL, "delete", name, "--yes"], capture_output=True, timeout=900, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def git_repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("it-proj-git")
    bare = root / "app.git"
    sh("git", "init", "-q", "--bare", "-b", "main", str(bare))
    work = root / "work"
    sh("git", "init", "-q", "-b", "main", str(work))
    (work / "README").write_text("app\n")
    sh("git", "-C", str(work), "add", "README")
    sh("git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "init")
    sh("git", "-C", str(work), "push", "-q", str(bare), "main")
    return str(bare)


@pytest.fixture(scope="module")
def pg_project(tmp_path_factory, git_repo):
    """it-proj-pg: postgres + redis + a custom domain + an env file + a git link + limits."""
    force_delete(PG)
    env_file = tmp_path_factory.mktemp("it-proj-env") / "app.env"
    env_file.write_text("# app settings\nGREETING=hello world\nTEMPLATE={{ 7*7 }}\nexport QUOTED='it''s'\n")
    args = ["create", PG, "--db", "postgres", "--cache", "redis", "--runtime", "python", "--port", "8000",
            "--domain", PG_DOMAIN, "--git", git_repo, "--branch", "main", "--env", str(env_file),
            "--cpu", "1", "--memory", "256MiB"]
    started = time.monotonic()
    first = lxdctl(*args)
    TIMINGS["create"] = time.monotonic() - started
    yield {"args": args, "first": first}
    lxdctl("delete", PG, "--yes", check=False)


# --- the postgres + redis project ------------------------------------------------------------
def test_create_reports_the_project(pg_project):
    out = pg_project["first"].stdout
    assert "http://%s" % PG_DOMAIN in out
    assert "lxdctl-%s" % PG in out
    assert changes(pg_project["first"]) > 0
    print("create took %.1fs" % TIMINGS["create"])


def test_container_runs_with_limits_and_labels(pg_project):
    inst = lxc_instance(PG)
    assert inst is not None and inst["status"] == "Running"
    config = inst["config"]
    assert config["user.lxdctl.project"] == PG
    assert config["user.lxdctl.runtime"] == "python"
    assert config["limits.cpu"] == "1"
    assert config["limits.memory"] == "256MiB"
    assert "lxdctl" in inst["profiles"]


def test_env_file_is_private_to_the_app_and_complete(pg_project):
    stat = sh("lxc", "exec", "lxdctl-" + PG, "--", "stat", "-c", "%a %U %G", "/etc/lxdctl/app.env").stdout.split()
    assert stat == ["600", "app", "app"]
    env = container_env(PG)
    assert env["PORT"] == "8000"
    assert env["GREETING"] == "hello world"
    assert env["TEMPLATE"] == "{{ 7*7 }}"
    assert env["QUOTED"] == "it''s"
    parts = url_parts(env["DATABASE_URL"])
    assert parts == {"scheme": "postgresql", "username": "p_it_proj_pg", "hostname": "10.77.0.1", "port": 5432,
                     "path": "/p_it_proj_pg"}
    redis_ok = env["REDIS_URL"].startswith("redis://p-it-proj-pg:") and env["REDIS_URL"].endswith("@10.77.0.1:6379/0")
    assert redis_ok
    assert env["REDIS_KEY_PREFIX"] == "it-proj-pg:"


def test_database_url_works_with_psql(pg_project):
    env = container_env(PG)
    out = sh("psql", env["DATABASE_URL"], "-tAc", "select current_user, current_database()").stdout.strip()
    assert out == "p_it_proj_pg|p_it_proj_pg"
    sh("psql", env["DATABASE_URL"], "-c", "create table if not exists t (x int)")


def test_redis_url_works_within_its_prefix_only(pg_project):
    env = container_env(PG)
    ok = sh("redis-cli", "--no-auth-warning", "-u", env["REDIS_URL"], "SET", "it-proj-pg:greeting", "hi").stdout
    assert ok.strip() == "OK"
    denied = sh("redis-cli", "--no-auth-warning", "-u", env["REDIS_URL"], "SET", "other:greeting", "hi",
                check=False)
    assert "NOPERM" in denied.stdout + denied.stderr


def test_dns_points_at_the_platform(pg_project, platform_config):
    assert dig(PG_DOMAIN) == [platform_config["public_address"]]


def test_nginx_routes_the_domain_to_the_container(pg_project):
    code, _ = http_status(PG_DOMAIN)
    assert code in (502, 503, 504), code  # the site exists; nothing listens before a deploy
    other, _ = http_status("it-proj-no-such-site.lxdctl.test")
    assert other != code or other == 404
    conf = open("/etc/nginx/lxdctl-sites/%s.conf" % PG).read()
    assert PG_DOMAIN in conf and "%s:8000" % lxc_address(PG) in conf


def lxc_address(name):
    inst = json.loads(sh("lxc", "list", "--format", "json", "lxdctl-" + name).stdout)[0]
    for nic, data in (inst["state"]["network"] or {}).items():
        for addr in data["addresses"]:
            if nic != "lo" and addr["family"] == "inet" and addr["scope"] == "global":
                return addr["address"]
    return None


def test_list_shows_the_project(pg_project):
    row = listed(PG)
    assert row["status"] == "running"
    assert row["runtime"] == "python" and row["domain"] == PG_DOMAIN and row["port"] == 8000
    assert row["address"] == lxc_address(PG)
    assert row["db"] == "postgres" and row["cache"] == "redis"
    started = time.monotonic()
    lxdctl("list", "--output", "json")
    assert time.monotonic() - started < 3


def test_status_shows_every_piece(pg_project, git_repo):
    info = json.loads(lxdctl("status", PG, "--output", "json").stdout)
    assert info["status"] == "running"
    assert info["container"]["status"] == "Running" and info["container"]["ipv4"] == lxc_address(PG)
    assert info["container"]["memory_bytes"] > 0
    assert [d["type"] for d in info["databases"]] == ["postgresql"]
    assert "****" in info["databases"][0]["connection_string"]
    assert info["cache"]["type"] == "redis"
    assert info["dns"][0]["content"] == "10.77.0.1"
    assert info["site"]["exists"] is True
    assert info["git"] == {"repository": git_repo, "branch": "main"}
    assert info["last_deployment"] is None
    assert info["tls"] is None
    table = lxdctl("status", PG).stdout
    assert "Running" in table and PG_DOMAIN in table


def test_second_identical_create_changes_nothing(pg_project):
    again = lxdctl(*pg_project["args"])
    assert changes(again) == 0, again.stderr
    dry = lxdctl(*(pg_project["args"] + ["--dry-run"]))
    assert changes(dry) == 0 and "would be made" in dry.stderr


def test_dry_run_of_a_new_project_creates_nothing(platform_config):
    name = "it-proj-dry"
    proc = lxdctl("create", name, "--db", "postgres", "--cache", "redis", "--ssl", "--dry-run")
    assert changes(proc) > 0 and "would be made" in proc.stderr
    assert listed(name) is None and lxc_instance(name) is None
    assert psql_admin(platform_config, "select count(*) from pg_database where datname = 'p_it_proj_dry'") == "0"
    assert dig("%s.lxdctl.test" % name) == []
    assert not os.path.exists("/etc/nginx/lxdctl-sites/%s.conf" % name)


def test_env_set_and_unset_round_trip(pg_project):
    tricky = "line one\nline two {{ 7*7 }} {% raw %} $HOME `id` 'q' \"dq\""
    lxdctl("env", "set", PG, "TRICKY=" + tricky, "PLAIN=1")
    env = container_env(PG)
    assert env["TRICKY"] == tricky and env["PLAIN"] == "1"
    shown = json.loads(lxdctl("env", PG, "--output", "json").stdout)
    assert shown["TRICKY"] == tricky
    assert "********" in shown["DATABASE_URL"]
    revealed = json.loads(lxdctl("env", PG, "--output", "json", "--show-secrets").stdout)
    same = revealed["DATABASE_URL"] == env["DATABASE_URL"]
    assert same
    OUTPUTS.pop()  # --show-secrets prints the password by design; keep it out of the leak check
    lxdctl("env", "unset", PG, "TRICKY")
    env = container_env(PG)
    assert "TRICKY" not in env and env["PLAIN"] == "1" and "DATABASE_URL" in env
    assert "TRICKY" not in json.loads(lxdctl("env", PG, "--output", "json").stdout)


def test_db_create_adds_a_mysql_database(pg_project, platform_config):
    lxdctl("db", "create", PG, "--db", "mysql")
    env = container_env(PG)
    schemes = dict((key, env[key].split(":")[0]) for key in ("DATABASE_URL", "POSTGRES_URL", "MYSQL_URL"))
    assert schemes == {"DATABASE_URL": "postgresql", "POSTGRES_URL": "postgresql", "MYSQL_URL": "mysql"}
    # a create run again keeps the added database
    assert changes(lxdctl(*pg_project["args"])) == 0
    assert "MYSQL_URL" in container_env(PG)
    url = url_parts(env["MYSQL_URL"])
    out = subprocess.run(["mariadb", "-h", url["hostname"], "-P", str(url["port"]), "-u", url["username"], "-N", "-B",
                          url["path"].lstrip("/"), "-e", "select database()"], capture_output=True, text=True,
                         timeout=60, env=dict(os.environ, MYSQL_PWD=url_password(env["MYSQL_URL"])), check=True).stdout
    assert out.strip() == "p_it_proj_pg"
    info = json.loads(lxdctl("status", PG, "--output", "json").stdout)
    assert sorted(d["type"] for d in info["databases"]) == ["mysql", "postgresql"]


def test_no_generated_secret_leaks(pg_project):
    env = container_env(PG)
    secrets = [url_password(env[k]) for k in ("DATABASE_URL", "REDIS_URL", "MYSQL_URL") if k in env]
    assert len(secrets) == 3 and all(len(s) >= 16 for s in secrets)
    leaks = sum(1 for output in OUTPUTS for secret in secrets if secret in output)
    assert leaks == 0
    data = b""
    for path in ("/var/lib/lxdctl/state/state.db", "/var/lib/lxdctl/state/state.db-wal"):
        if os.path.exists(path):
            with open(path, "rb") as handle:
                data += handle.read()
    stored = sum(1 for secret in secrets if secret.encode() in data)
    assert stored == 0


def test_delete_removes_every_piece(pg_project, platform_config):
    env = container_env(PG)
    backup_dir = "/var/lib/lxdctl/backups/%s" % PG
    cron_file = "/etc/cron.d/lxdctl-backup-%s" % PG
    lxdctl("db", "backup", PG, "--db", "postgres")  # it has a MariaDB database too (db create test)
    lxdctl("db", "backup", PG, "--db", "postgres", "--schedule", "daily")
    assert os.listdir(backup_dir) and os.path.exists(cron_file)
    lxdctl("delete", PG, "--yes")
    assert not os.path.exists(backup_dir) or not os.listdir(backup_dir)
    assert not os.path.exists(cron_file)
    assert lxc_instance(PG) is None
    assert psql_admin(platform_config, "select count(*) from pg_database where datname = 'p_it_proj_pg'") == "0"
    assert psql_admin(platform_config, "select count(*) from pg_roles where rolname = 'p_it_proj_pg'") == "0"
    assert mariadb_admin(platform_config, "select count(*) from information_schema.schemata "
                                          "where schema_name = 'p_it_proj_pg'") == "0"
    assert mariadb_admin(platform_config, "select count(*) from mysql.user where user = 'p_it_proj_pg'") == "0"
    assert "p-it-proj-pg" not in redis_admin(platform_config, "ACL", "USERS").split()
    assert redis_admin(platform_config, "--scan", "--pattern", "it-proj-pg:*") == ""
    denied = sh("redis-cli", "--no-auth-warning", "-u", env["REDIS_URL"], "PING", check=False)
    assert "PONG" not in denied.stdout
    assert dig(PG_DOMAIN) == []
    assert not os.path.exists("/etc/nginx/lxdctl-sites/%s.conf" % PG)
    assert http_status(PG_DOMAIN)[0] not in (502, 503, 504)
    assert listed(PG) is None
    gone = lxdctl("status", PG, check=False)
    assert gone.returncode == 1 and "does not exist" in gone.stderr
    rerun = lxdctl("delete", PG, "--yes")
    assert changes(rerun) == 0


# --- the other shapes ---------------------------------------------------------------------------
def test_runner_artifacts_hold_no_generated_secret(tmp_path):
    """Keep ansible-runner's private dir (LXDCTL_KEEP_ARTIFACTS) for a create and a delete and
    search every file in it for the passwords the create generated."""
    name = "it-proj-art"
    force_delete(name)
    keep = tmp_path / "artifacts"
    keep.mkdir()
    try:
        lxdctl("create", name, "--db", "postgres", "--cache", "redis", env={"LXDCTL_KEEP_ARTIFACTS": str(keep)})
        env = container_env(name)
        secrets = [url_password(env["DATABASE_URL"]), url_password(env["REDIS_URL"])]
        assert all(len(secret) >= 16 for secret in secrets)
        lxdctl("delete", name, "--yes", env={"LXDCTL_KEEP_ARTIFACTS": str(keep)})
        files = [os.path.join(root, f) for root, _, names in os.walk(str(keep)) for f in names]
        events = [f for f in files if os.sep + "job_events" + os.sep in f]
        assert len(events) > 50, "expected the runs' event files to be kept"
        for path in files:
            with open(path, "rb") as handle:
                data = handle.read()
            for secret in secrets:
                assert secret.encode() not in data, "a generated password is in %s" % path
    finally:
        force_delete(name)


def test_mysql_and_memcached_project(platform_config):
    name = "it-proj-my"
    force_delete(name)
    try:
        lxdctl("create", name, "--db", "mysql", "--cache", "memcached", "--runtime", "go")
        env = container_env(name)
        url = url_parts(env["DATABASE_URL"])
        assert (url["scheme"], url["username"], url["hostname"]) == ("mysql", "p_it_proj_my", "10.77.0.1")
        out = subprocess.run(["mariadb", "-h", url["hostname"], "-P", str(url["port"]), "-u", url["username"], "-N",
                              "-B", "p_it_proj_my", "-e", "select current_user()"], capture_output=True, text=True,
                             timeout=60, env=dict(os.environ, MYSQL_PWD=url_password(env["DATABASE_URL"])),
                             check=True).stdout
        assert out.startswith("p_it_proj_my@")
        servers = env["MEMCACHED_SERVERS"]
        assert servers.startswith("10.77.0.1:")
        assert memcached_version(servers).startswith("VERSION")
        assert "REDIS_URL" not in env and "DATABASE_URL" in env
        assert dig("%s.lxdctl.test" % name) == ["10.77.0.1"]
        row = listed(name)
        assert row["db"] == "mysql" and row["cache"] == "memcached" and row["runtime"] == "go"
        lxdctl("delete", name, "--yes")
        assert lxc_instance(name) is None
        assert mariadb_admin(platform_config, "select count(*) from information_schema.schemata "
                                              "where schema_name = 'p_it_proj_my'") == "0"
        with pytest.raises(OSError):
            memcached_version(servers)
        assert dig("%s.lxdctl.test" % name) == []
    finally:
        force_delete(name)


def test_keep_data_keeps_the_database_and_cache_keys(platform_config):
    name = "it-proj-keep"
    force_delete(name)
    try:
        lxdctl("create", name, "--db", "postgres", "--cache", "redis")
        env = container_env(name)
        sh("psql", env["DATABASE_URL"], "-c", "create table kept (x int); insert into kept values (42)")
        sh("redis-cli", "--no-auth-warning", "-u", env["REDIS_URL"], "SET", "it-proj-keep:k", "v")
        lxdctl("delete", name, "--yes", "--keep-data")
        assert lxc_instance(name) is None and listed(name) is None
        assert psql_admin(platform_config, "select count(*) from pg_database where datname = 'p_it_proj_keep'") == "1"
        assert redis_admin(platform_config, "GET", "it-proj-keep:k") == "v"
        # Created again, the project gets its data back (with a new password).
        lxdctl("create", name, "--db", "postgres", "--cache", "redis")
        env = container_env(name)
        assert sh("psql", env["DATABASE_URL"], "-tAc", "select x from kept").stdout.strip() == "42"
    finally:
        force_delete(name)
    assert psql_admin(platform_config, "select count(*) from pg_database where datname = 'p_it_proj_keep'") == "0"
    assert redis_admin(platform_config, "--scan", "--pattern", "it-proj-keep:*") == ""


def test_project_created_by_ansible_playbook_appears_in_list():
    name = "it-proj-direct"
    force_delete(name)
    try:
        proc = subprocess.run(
            [os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local",
             "-e", "ansible_python_interpreter=%s" % sys.executable,
             "-e", json.dumps({"project_name": name, "project_runtime": "python", "project_port": 5000}),
             os.path.join(ROOT, "playbooks", "project_create.yml")],
            capture_output=True, text=True, timeout=900, env=ansible_env({"ANSIBLE_STDOUT_CALLBACK": "default"}))
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
        row = listed(name)
        assert row is not None and row["status"] == "running" and row["port"] == 5000
        assert row["domain"] == "%s.lxdctl.test" % name and row["address"]
        assert container_env(name)["PORT"] == "5000"
        lxdctl("delete", name, "--yes")
        assert listed(name) is None and lxc_instance(name) is None
    finally:
        force_delete(name)


def test_two_creates_of_one_name_at_once():
    name = "it-proj-race"
    force_delete(name)
    try:
        procs = [subprocess.Popen([LXDCTL, "create", name], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  stdin=subprocess.DEVNULL) for _ in range(2)]
        results = [(p.wait(timeout=900), p.stdout.read() + p.stderr.read()) for p in procs]
        codes = sorted(rc for rc, _ in results)
        assert codes == [0, 1], results
        loser = next(out for rc, out in results if rc == 1)
        assert "it-proj-race is locked by pid" in loser
        assert listed(name)["status"] == "running"
    finally:
        force_delete(name)
    assert lxc_instance(name) is None


PLAYBOOK_COMMANDS = (b"ansible-playbook", b"lxdctl-ansible-playbook")


def playbooks_of(name):
    """Pids of ansible-playbook processes whose extra vars name project ``name`` (read from /proc)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        # the CLI starts lxdctl-ansible-playbook (lxdctl.playbook_process), others ansible-playbook
        if not any(os.path.basename(arg) in PLAYBOOK_COMMANDS for arg in argv[:2]):
            continue
        for arg in argv:
            if arg.startswith(b"@") and arg.endswith(b"/env/extravars"):
                try:
                    with open(arg[1:], "rb") as handle:
                        if name.encode() in handle.read():
                            found.append(int(pid))
                except OSError:
                    pass
    return found


def test_killed_create_is_completed_by_a_rerun_and_removed_by_delete(platform_config):
    """Killed once its database and DNS record exist, before the state records them (the rows are
    written together at the end): a rerun completes it, and delete still finds every piece by
    the names derived from the project and its stored domain."""
    name = "it-proj-kill"
    domain = "it-proj-kill-app.lxdctl.test"
    args = ["create", name, "--db", "postgres", "--domain", domain]
    force_delete(name)
    try:
        proc = subprocess.Popen([LXDCTL] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:  # kill it once the A record exists
            if dig(domain):
                break
            time.sleep(0.1)
        kill_group(proc)  # the CLI and the ansible-playbook in its own session, as a crash would
        proc.wait(timeout=60)
        assert psql_admin(platform_config, "select count(*) from pg_database where datname = 'p_it_proj_kill'") == "1"
        row = listed(name)
        assert row is not None and row["status"] in ("creating", "error") and row["domain"] == domain
        lxdctl(*args)  # the stale lock is taken over, the rest completed
        assert listed(name)["status"] == "running"
        assert "DATABASE_URL" in container_env(name)
        lxdctl("delete", name, "--yes")
        assert listed(name) is None and lxc_instance(name) is None
        assert psql_admin(platform_config, "select count(*) from pg_database where datname = 'p_it_proj_kill'") == "0"
        assert dig(domain) == []

        # killed again at the same point, only the CLI this time (as `kill -9 <pid of lxdctl>` does):
        # its play, in a session of its own, ends with it instead of running on with the lock;
        # then deleted without a rerun of create
        proc = subprocess.Popen([LXDCTL] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None and not dig(domain):
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        deadline = time.time() + 30
        while time.time() < deadline and playbooks_of(name):
            time.sleep(0.2)
        assert playbooks_of(name) == [], "the play outlived the killed CLI"
        lxdctl("delete", name, "--yes")
        assert dig(domain) == [] and listed(name) is None and lxc_instance(name) is None
        assert psql_admin(platform_config, "select count(*) from pg_database where datname = 'p_it_proj_kill'") == "0"
    finally:
        force_delete(name)


def test_mongo_fails_before_creating_anything():
    name = "it-proj-mongo"
    proc = lxdctl("create", name, "--db", "mongo", check=False)
    assert proc.returncode == 1
    assert "no MongoDB on this platform" in proc.stderr
    assert "mongo.admin_url" in proc.stderr or '"admin_url"' in proc.stderr
    assert listed(name) is None and lxc_instance(name) is None


def test_domain_outside_the_managed_zones_is_refused_by_the_playbook_too():
    name = "it-proj-zone"
    proc = subprocess.run(
        [os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local",
         "-e", "ansible_python_interpreter=%s" % sys.executable,
         "-e", json.dumps({"project_name": name, "project_domain": "it-proj-zone.example.org"}),
         os.path.join(ROOT, "playbooks", "project_create.yml")],
        capture_output=True, text=True, timeout=300, env=ansible_env({"ANSIBLE_STDOUT_CALLBACK": "default"}))
    assert proc.returncode != 0
    assert "not under any zone this platform manages" in proc.stdout
    assert listed(name) is None and lxc_instance(name) is None


def test_unreachable_git_repository_is_refused(tmp_path):
    name = "it-proj-git"
    proc = lxdctl("create", name, "--git", str(tmp_path / "missing.git"), check=False)
    assert proc.returncode == 1 and "cannot reach" in proc.stderr
    assert listed(name) is None and lxc_instance(name) is None


def test_ssl_project_gets_a_certificate_and_redirects(platform_config):
    name = "it-proj-tls"
    domain = "%s.lxdctl.test" % name
    force_delete(name)
    try:
        lxdctl("create", name, "--ssl")
        code, redirect = http_status(domain)
        assert code == 301 and redirect.startswith("https://%s" % domain)
        code, _ = http_status(domain, scheme="https")
        assert code in (502, 503, 504)
        cert = sh("openssl", "x509", "-noout", "-subject", "-enddate", "-in",
                  os.path.join(platform_config["nginx"]["cert_dir"], domain + ".crt")).stdout
        assert "notAfter" in cert
        info = json.loads(lxdctl("status", name, "--output", "json").stdout)
        assert info["url"] == "https://" + domain and info["tls"]["expires"] and info["tls"]["days_left"] > 1
        assert changes(lxdctl("create", name, "--ssl")) == 0
        lxdctl("delete", name, "--yes")
        assert not os.path.exists(os.path.join(platform_config["nginx"]["cert_dir"], domain + ".crt"))
        assert not os.path.exists(os.path.join(platform_config["nginx"]["cert_dir"], domain + ".key"))
    finally:
        force_delete(name)


def test_create_and_delete_against_the_postgresql_state_backend(platform_config):
    """The same lifecycle with the state in PostgreSQL (LXDCTL_DATABASE_URL), checked with psql."""
    import secrets as _secrets

    pg = platform_config["postgres"]
    dbname = "it_proj_state_%s" % _secrets.token_hex(4)
    psql_admin(platform_config, "CREATE DATABASE %s" % dbname)
    url = "postgresql://%s:%s@%s:%s/%s" % (pg["admin_user"], urllib.parse.quote(pg["admin_password"], safe=""),
                                           pg["host"], pg["port"], dbname)
    env = {"LXDCTL_DATABASE_URL": url}
    name = "it-proj-pgstate"

    def rows(sql):
        return subprocess.run(["psql", "-h", pg["host"], "-p", str(pg["port"]), "-U", pg["admin_user"], "-d", dbname,
                               "-tAc", sql], capture_output=True, text=True, timeout=60, check=True,
                              env=dict(os.environ, PGPASSWORD=pg["admin_password"])).stdout.strip()

    try:
        lxdctl("create", name, "--cache", "redis", env=env)
        assert rows("select status, runtime from projects where name = '%s'" % name) == "running|node"
        assert rows("select type from databases") == "redis"
        assert rows("select count(*) from env_vars where value_encrypted like 'v1.%'") == "3"
        projects = json.loads(lxdctl("list", "--output", "json", env=env).stdout)
        assert [p["name"] for p in projects] == [name]
        assert listed(name) is None  # not in the default (SQLite) state
        assert changes(lxdctl("create", name, "--cache", "redis", env=env)) == 0
        lxdctl("delete", name, "--yes", env=env)
        assert rows("select count(*) from projects") == "0"
        assert lxc_instance(name) is None
    finally:
        subprocess.run([LXDCTL, "delete", name, "--yes"], capture_output=True, timeout=900, stdin=subprocess.DEVNULL,
                       env=dict(os.environ, **env))
        psql_admin(platform_config, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % dbname)


def test_domain_of_another_project_is_refused():
    first, second = "it-proj-dom", "it-proj-dom2"
    force_delete(first)
    try:
        lxdctl("create", first)
        proc = lxdctl("create", second, "--domain", "%s.lxdctl.test" % first, check=False)
        assert proc.returncode == 1
        assert "is already used by project %s" % first in proc.stderr
        assert listed(second) is None and lxc_instance(second) is None
        assert dig("%s.lxdctl.test" % first) == ["10.77.0.1"]
    finally:
        force_delete(first)
        force_delete(second)
