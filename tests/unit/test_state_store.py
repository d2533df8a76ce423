"""The state store (module_utils/_state.py) against SQLite in a temporary directory.

The tests marked "shared" below take the ``state_url`` fixture; tests/integration/
test_state_postgres.py imports them and runs them again against the real PostgreSQL, so
both backends pass the same assertions.  Rows are checked with each backend's own CLI
(``sqlite3`` / ``psql``) through the ``raw`` fixture, an independent client.
"""
import base64
import json
import multiprocessing
import os
import stat
import subprocess
import sys
import time

import pytest

from ansible_collections.lxdctl.platform.plugins.module_utils import _state
from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError, ValidationError
from ansible_collections.lxdctl.platform.plugins.module_utils._state import StateStore


# --- fixtures (the PostgreSQL file overrides state_url) --------------------------------
@pytest.fixture
def state_url(tmp_path):
    return "sqlite:///%s" % (tmp_path / "statedir" / "state.db")


@pytest.fixture
def key_file(tmp_path):
    return str(tmp_path / "keys" / "state.key")


@pytest.fixture
def open_store(state_url, key_file):
    opened = []

    def opener(url=None, key=None):
        store = StateStore.open(url or state_url, key_file=key or key_file)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store):
    return open_store()


class RawClient:
    """SQL through the backend's own command-line client, independent of the store's code."""

    def __init__(self, url):
        self.url = url
        self.sqlite = url.startswith("sqlite:")

    def rows(self, sql):
        if self.sqlite:
            out = subprocess.run(["sqlite3", "-json", _state.sqlite_path(self.url), sql],
                                 capture_output=True, text=True, check=True, timeout=30).stdout
            return json.loads(out) if out.strip() else []
        out = subprocess.run(["psql", self.url, "-v", "ON_ERROR_STOP=1", "-At", "-c",
                              "SELECT COALESCE(json_agg(t), '[]') FROM (%s) t" % sql],
                             capture_output=True, text=True, check=True, timeout=30).stdout
        return json.loads(out)

    def scalar(self, sql):
        row = self.rows(sql)[0]
        return list(row.values())[0]

    def execute(self, sql):
        if self.sqlite:
            cmd = ["sqlite3", _state.sqlite_path(self.url), sql]
        else:
            cmd = ["psql", self.url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql]
        subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=30)


@pytest.fixture
def raw(state_url, store):
    return RawClient(state_url)


TABLES = ["api_tokens", "audit_log", "databases", "deployments", "dns_records", "env_vars", "job_events", "jobs",
          "locks", "pipeline_runs", "pipelines", "projects", "schema_migrations", "secrets", "sessions",
          "user_project_roles", "users", "webhook_deliveries"]


def table_names(raw):
    if raw.sqlite:
        rows = raw.rows("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    else:
        rows = raw.rows("SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public'")
    return sorted(r["name"] for r in rows)


def make_project(store, name="myapp", **fields):
    values = dict(runtime="python", port=3000, domain="%s.example.com" % name)
    values.update(fields)
    return store.upsert_project(name, **values)[0]


# --- shared: schema and migrations ---------------------------------------------------
def test_open_migrates_and_is_idempotent(store, open_store, raw):
    assert table_names(raw) == TABLES
    assert [m["version"] for m in store.migrations()] == [m[0] for m in _state.MIGRATIONS]
    assert store.schema_version() == _state.SCHEMA_VERSION
    assert store.migrate() == []
    again = open_store()
    assert again.migrate() == []
    assert raw.scalar("SELECT COUNT(*) AS n FROM schema_migrations") == len(_state.MIGRATIONS)


# --- shared: projects ----------------------------------------------------------------
def test_project_create_update_unchanged(store, raw):
    row, changed = store.upsert_project("myapp", runtime="python", port="3000", ssl="true", cpu=2,
                                        memory="512MiB", address="10.77.0.5", spec={"db": "postgres", "n": [1, 2]})
    assert changed
    assert (row["name"], row["status"], row["git_branch"], row["port"], row["ssl"], row["cpu"]) == \
        ("myapp", "creating", "main", 3000, True, 2)
    assert row["spec"] == {"db": "postgres", "n": [1, 2]}
    again, changed = store.upsert_project("myapp", runtime="python", port=3000, ssl=True)
    assert not changed and again["updated_at"] == row["updated_at"]
    time.sleep(0.01)
    updated, changed = store.upsert_project("myapp", status="running")
    assert changed and updated["status"] == "running" and updated["updated_at"] > row["updated_at"]
    assert updated["created_at"] == row["created_at"]
    assert store.get_project("myapp") == updated
    assert store.get_project("other") is None
    raw_row = raw.rows("SELECT name, status, port, runtime, address FROM projects")
    assert raw_row == [{"name": "myapp", "status": "running", "port": 3000, "runtime": "python", "address": "10.77.0.5"}]


def test_project_plan_does_not_write(store, raw):
    before, after = store.plan_project("myapp", runtime="go")
    assert before is None and after["runtime"] == "go" and after["status"] == "creating"
    assert raw.scalar("SELECT COUNT(*) AS n FROM projects") == 0


@pytest.mark.parametrize("fields, field", [
    (dict(status="exploded"), "status"),
    (dict(port=70000), "port"),
    (dict(port="80; DROP TABLE projects"), "port"),
    (dict(address="10.0.0.300"), "address"),
    (dict(memory="lots"), "memory"),
    (dict(domain="not a domain"), "domain"),
    (dict(cpu=0), "cpu"),
    (dict(colour="blue"), "project field"),
])
def test_project_bad_fields_refused(store, raw, fields, field):
    with pytest.raises(ValidationError) as err:
        store.upsert_project("myapp", **fields)
    assert err.value.field == field
    assert raw.scalar("SELECT COUNT(*) AS n FROM projects") == 0


@pytest.mark.parametrize("name", ["MyApp", "my_app", "-x", "x" * 33, "admin", "a'; DROP TABLE projects; --"])
def test_project_bad_names_refused(store, name):
    with pytest.raises(ValidationError):
        store.upsert_project(name)


def test_list_projects_ordered(store, raw):
    # its speed is bench/bench_list.py's figure, not an assert here
    with store.transaction():
        for i in range(1000):
            store.upsert_project("p%04d" % (999 - i), status="running" if i % 2 else "stopped", runtime="node",
                                 domain="p%04d.example.com" % i, address="10.77.%d.%d" % (i // 250, i % 250 + 1))
    rows = store.list_projects()
    assert len(rows) == 1000 and [r["name"] for r in rows] == sorted(r["name"] for r in rows)
    assert len(store.list_projects(status="running")) == 500
    assert raw.scalar("SELECT COUNT(*) AS n FROM projects") == 1000


def test_delete_project_cascades(store, raw):
    make_project(store)
    make_project(store, "keeper")
    store.add_database("myapp", "postgresql", "p_myapp", password="pw-1234", host="10.77.0.1", port=5432)
    store.add_dns_record("myapp", "example.com", "myapp.example.com", "A", "10.77.0.1")
    store.create_deployment("myapp", version="v1")
    store.upsert_pipeline("myapp", "ci", config={"steps": ["test"]})
    store.create_pipeline_run("myapp", "ci")
    store.set_env("myapp", {"A": "1"})
    store.set_env("keeper", {"A": "1"})
    store.get_or_create_secret("myapp", "db_password")
    store.audit("tester", "project.create", "myapp", {})
    assert store.delete_project("myapp") is True
    assert store.delete_project("myapp") is False
    for table in ("databases", "dns_records", "deployments", "pipelines", "pipeline_runs", "secrets"):
        assert raw.scalar("SELECT COUNT(*) AS n FROM %s" % table) == 0, table
    assert raw.scalar("SELECT COUNT(*) AS n FROM env_vars") == 1  # keeper's
    assert [r["name"] for r in store.list_projects()] == ["keeper"]
    assert raw.scalar("SELECT COUNT(*) AS n FROM audit_log") == 1  # history outlives the project
    # the name is free again at once (hard delete)
    assert store.upsert_project("myapp")[1] is True


# --- shared: env and encryption ------------------------------------------------------
def test_env_round_trip_literal_and_encrypted(store, raw):
    make_project(store)
    tricky = "line1\nline2 {{ lookup('pipe', 'id') }} {% raw %} $HOME `id` ' \" \\"
    assert store.set_env("myapp", {"TRICKY": tricky, "PORT": 3000, "DB_PASS": "s3cr3t-value"},
                         secret_keys=["DB_PASS"]) == ["DB_PASS", "PORT", "TRICKY"]
    assert store.get_env("myapp") == {"TRICKY": tricky, "PORT": "3000", "DB_PASS": _state.MASK}
    assert store.get_env("myapp", reveal=True)["DB_PASS"] == "s3cr3t-value"
    assert [(r["key"], r["is_secret"]) for r in store.list_env("myapp")] == \
        [("DB_PASS", True), ("PORT", False), ("TRICKY", False)]
    stored = raw.rows("SELECT key, value_encrypted FROM env_vars")
    assert len(stored) == 3
    for row in stored:
        assert row["value_encrypted"].startswith("v1.")
        assert "s3cr3t" not in row["value_encrypted"] and "line1" not in row["value_encrypted"]
    assert store.set_env("myapp", {"TRICKY": tricky, "PORT": "3000"}) == []  # unchanged
    assert store.plan_env("myapp", {"PORT": "3001"}) == ["PORT"]
    assert store.set_env("myapp", {"PORT": "3000"}, secret_keys=["PORT"]) == ["PORT"]  # flag change
    assert store.unset_env("myapp", ["PORT", "NOPE"]) == ["PORT"]
    assert sorted(store.get_env("myapp", reveal=True)) == ["DB_PASS", "TRICKY"]
    with pytest.raises(ValidationError):
        store.set_env("myapp", {"BAD-KEY": "x"})
    with pytest.raises(LxdctlError, match="does not exist"):
        store.set_env("ghost", {"A": "1"})


def test_tampered_value_is_detected(store, raw):
    make_project(store)
    store.set_env("myapp", {"A": "alpha"})
    stored = raw.scalar("SELECT value_encrypted FROM env_vars WHERE key = 'A'")
    head, body = stored.split(".", 1)
    blob = bytearray(base64.urlsafe_b64decode(body))
    blob[-1] ^= 0x01
    forged = head + "." + base64.urlsafe_b64encode(bytes(blob)).decode()
    raw.execute("UPDATE env_vars SET value_encrypted = '%s' WHERE key = 'A'" % forged)
    with pytest.raises(LxdctlError, match="authentication failed"):
        store.get_env("myapp", reveal=True)


def test_ciphertext_swapped_between_rows_is_detected(store, raw):
    make_project(store)
    make_project(store, "other")
    store.set_env("myapp", {"A": "alpha", "B": "beta"})
    store.set_env("other", {"A": "gamma"})
    a_value = raw.scalar("SELECT value_encrypted FROM env_vars e JOIN projects p ON p.id = e.project_id "
                         "WHERE p.name = 'myapp' AND e.key = 'A'")
    # same project, other key
    raw.execute("UPDATE env_vars SET value_encrypted = '%s' WHERE key = 'B'" % a_value)
    with pytest.raises(LxdctlError, match="altered or copied from another row"):
        store.get_env("myapp", reveal=True)
    # same key, other project
    raw.execute("UPDATE env_vars SET value_encrypted = '%s' WHERE key = 'A' AND project_id = "
                "(SELECT id FROM projects WHERE name = 'other')" % a_value)
    with pytest.raises(LxdctlError, match="altered or copied from another row"):
        store.get_env("other", reveal=True)


def test_wrong_key_gives_clear_error(store, open_store, tmp_path):
    make_project(store)
    store.set_env("myapp", {"A": "alpha"})
    other = open_store(key=str(tmp_path / "otherkeys" / "state.key"))
    with pytest.raises(LxdctlError, match="encrypted with another key .* Restore the original key file"):
        other.get_env("myapp", reveal=True)
    assert [r["key"] for r in other.list_env("myapp")] == ["A"]  # names need no key
    assert open_store().get_env("myapp", reveal=True) == {"A": "alpha"}


def test_key_file_created_private(store, key_file):
    assert not os.path.exists(key_file)  # created on first use, not on open
    make_project(store)
    store.set_env("myapp", {"A": "alpha"})
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(key_file)).st_mode) == 0o700
    os.chmod(key_file, 0o644)
    fresh = StateStore.open(store.url, key_file=key_file)
    try:
        with pytest.raises(LxdctlError, match="readable by others.*chmod 600"):
            fresh.get_env("myapp", reveal=True)
    finally:
        fresh.close()
        os.chmod(key_file, 0o600)


# --- shared: secrets ------------------------------------------------------------------
def test_secrets_get_or_create_and_rotate(store, raw):
    make_project(store)
    value, created = store.get_or_create_secret("myapp", "db_password")
    assert created and len(value) == 32 and value.isalnum()
    assert store.get_or_create_secret("myapp", "db_password") == (value, False)
    assert store.get_secret("myapp", "db_password") == value
    rotated, changed = store.get_or_create_secret("myapp", "db_password", rotate=True)
    assert changed and rotated != value
    long_value, _ = store.get_or_create_secret("myapp", "api_token", length=64)
    assert len(long_value) == 64
    platform_value, created = store.get_or_create_secret(None, "pdns_api_key", length=40)
    assert created and store.get_or_create_secret(None, "pdns_api_key") == (platform_value, False)
    assert raw.scalar("SELECT COUNT(*) AS n FROM secrets WHERE project_id IS NULL") == 1
    assert [r["name"] for r in store.list_secrets("myapp")] == ["api_token", "db_password"]
    for row in raw.rows("SELECT value_encrypted FROM secrets"):
        assert rotated not in row["value_encrypted"] and platform_value not in row["value_encrypted"]
    assert store.delete_secret("myapp", "api_token") and not store.delete_secret("myapp", "api_token")
    with pytest.raises(ValidationError):
        store.get_or_create_secret("myapp", "bad name")


def test_secret_row_swap_between_projects_detected(store, raw):
    make_project(store)
    make_project(store, "other")
    store.get_or_create_secret("myapp", "db_password")
    store.get_or_create_secret("other", "db_password")
    mine = raw.scalar("SELECT s.value_encrypted FROM secrets s JOIN projects p ON p.id = s.project_id WHERE p.name = 'myapp'")
    raw.execute("UPDATE secrets SET value_encrypted = '%s' WHERE project_id = (SELECT id FROM projects WHERE name = 'other')"
                % mine)
    with pytest.raises(LxdctlError, match="altered or copied"):
        store.get_secret("other", "db_password")


# --- shared: databases, DNS, deployments, pipelines, audit --------------------------
def test_databases_crud(store, raw):
    make_project(store)
    row, changed = store.add_database("myapp", "postgresql", "p_myapp", password="Pa55word-xyz", host="10.77.0.1",
                                      port=5432, username="p_myapp",
                                      connection_string="postgresql://p_myapp:Pa55word-xyz@10.77.0.1:5432/p_myapp")
    assert changed and row["has_password"] and "password" not in row and "password_encrypted" not in row
    assert row["connection_string"] == "postgresql://p_myapp:****@10.77.0.1:5432/p_myapp"
    stored = raw.rows("SELECT password_encrypted, connection_string FROM databases")[0]
    assert "Pa55word" not in json.dumps(stored)
    assert store.get_database("myapp", "postgresql", "p_myapp", reveal=True)["password"] == "Pa55word-xyz"
    assert store.add_database("myapp", "postgresql", "p_myapp", password="Pa55word-xyz", host="10.77.0.1")[1] is False
    before, after, password_changed = store.plan_database("myapp", "postgresql", "p_myapp", password="new-one-123")
    assert password_changed and before["has_password"]
    row, changed = store.add_database("myapp", "postgresql", "p_myapp", size_mb=12)
    assert changed and row["size_mb"] == 12 and row["host"] == "10.77.0.1"
    store.add_database("myapp", "redis", "p-myapp", host="10.77.0.1", port=6379)
    assert [(d["type"], d["name"]) for d in store.list_databases("myapp")] == [("postgresql", "p_myapp"), ("redis", "p-myapp")]
    assert store.remove_database("myapp", "redis", "p-myapp") is True
    assert store.remove_database("myapp", "redis", "p-myapp") is False
    with pytest.raises(ValidationError):
        store.add_database("myapp", "oracle", "x")


def test_dns_records_crud(store, raw):
    make_project(store)
    row, changed = store.add_dns_record("myapp", "example.com", "myapp.example.com", "a", "10.77.0.1")
    assert changed and (row["zone"], row["name"], row["type"], row["ttl"]) == \
        ("example.com.", "myapp.example.com.", "A", 3600)
    assert store.add_dns_record("myapp", "example.com.", "myapp.example.com.", "A", "10.77.0.1")[1] is False
    row, changed = store.add_dns_record("myapp", "example.com", "myapp.example.com", "A", "10.77.0.2", ttl=60)
    assert changed and row["content"] == "10.77.0.2" and row["ttl"] == 60
    store.add_dns_record("myapp", "example.com", "myapp.example.com", "TXT", "hello")
    assert raw.scalar("SELECT COUNT(*) AS n FROM dns_records") == 2
    with pytest.raises(ValidationError):
        store.add_dns_record("myapp", "example.com", "myapp.example.org", "A", "10.77.0.1")
    with pytest.raises(ValidationError):
        store.add_dns_record("myapp", "example.com", "myapp.example.com", "A", "not-an-ip")
    assert store.remove_dns_record("myapp", "example.com", "myapp.example.com", "TXT") is True
    assert [r["type"] for r in store.list_dns_records("myapp")] == ["A"]


def test_deployments(store, raw):
    make_project(store)
    first = store.create_deployment("myapp", version="v1", git_commit="abc123", deployed_by="ci",
                                    metadata={"image": "x"})
    assert first["status"] == "pending" and first["started_at"] and first["completed_at"] is None
    row, changed = store.update_deployment(first["id"], status="deploying")
    assert changed and row["completed_at"] is None
    row, changed = store.update_deployment(first["id"], status="success")
    assert changed and row["completed_at"]
    assert store.update_deployment(first["id"], status="success")[1] is False
    second = store.create_deployment("myapp", version="v2", status="failed", error_message="boom")
    assert second["completed_at"]
    assert [d["version"] for d in store.list_deployments("myapp")] == ["v2", "v1"]
    assert store.last_deployment("myapp")["id"] == second["id"]
    with pytest.raises(ValidationError):
        store.update_deployment(first["id"], status="exploded")
    assert raw.rows("SELECT version, status FROM deployments ORDER BY id") == \
        [{"version": "v1", "status": "success"}, {"version": "v2", "status": "failed"}]


def test_pipelines_and_runs(store, raw):
    make_project(store)
    pipeline, changed = store.upsert_pipeline("myapp", "ci", config={"steps": ["test"]}, triggers={"push": ["main"]})
    assert changed and pipeline["config"] == {"steps": ["test"]}
    assert store.upsert_pipeline("myapp", "ci", config={"steps": ["test"]}, triggers={"push": ["main"]})[1] is False
    runs = [store.create_pipeline_run("myapp", "ci") for _ in range(3)]
    assert [r["run_number"] for r in runs] == [1, 2, 3]
    row, changed = store.update_pipeline_run(runs[2]["id"], status="success", logs="ok\n", artifacts={"a": 1})
    assert changed and row["completed_at"] and row["artifacts"] == {"a": 1}
    assert store.get_pipeline("myapp", "ci")["last_status"] == "success"
    assert [r["run_number"] for r in store.list_pipeline_runs("myapp", "ci")] == [3, 2, 1]
    assert store.delete_pipeline("myapp", "ci") and raw.scalar("SELECT COUNT(*) AS n FROM pipeline_runs") == 0


def test_audit_log_redacts_secrets(store, raw):
    store.audit("alice", "project.create", "myapp",
                {"runtime": "python", "password": "hunter2", "db": {"admin_password": "x", "host": "h"},
                 "DATABASE_URL": "postgresql://u:p@h/d", "values": {"A": "secret"}, "keys": ["A"]})
    entry = store.list_audit("myapp")[0]
    assert entry["actor"] == "alice" and entry["action"] == "project.create"
    assert entry["detail"] == {"runtime": "python", "password": _state.MASK,
                               "db": {"admin_password": _state.MASK, "host": "h"},
                               "DATABASE_URL": _state.MASK, "values": _state.MASK, "keys": ["A"]}
    dump = json.dumps(raw.rows("SELECT detail FROM audit_log"))
    assert "hunter2" not in dump and "u:p@" not in dump and "secret" not in dump


# --- shared: locks --------------------------------------------------------------------
def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lock_live_owner_refused_then_released(store, open_store, raw):
    row, acquired = store.acquire_lock("project:myapp", ttl=600, pid=os.getpid())
    assert acquired and row["owner_pid"] == os.getpid()
    other = open_store()
    with pytest.raises(LxdctlError) as err:
        other.acquire_lock("project:myapp", ttl=600, pid=_dead_pid() + 100000)
    assert err.value.msg.startswith("project myapp is locked by pid %d on " % os.getpid())
    assert "since %s" % row["acquired_at"] in err.value.msg and err.value.msg.endswith("retry later")
    with pytest.raises(LxdctlError, match="not released"):
        other.release_lock("project:myapp", pid=12345)
    # the same owner re-acquiring extends the expiry, no new lock
    again, acquired = store.acquire_lock("project:myapp", ttl=1200, pid=os.getpid())
    assert not acquired and again["expires_at"] > row["expires_at"] and again["acquired_at"] == row["acquired_at"]
    assert store.release_lock("project:myapp", pid=os.getpid()) is True
    assert store.release_lock("project:myapp", pid=os.getpid()) is False
    assert raw.scalar("SELECT COUNT(*) AS n FROM locks") == 0
    assert other.acquire_lock("project:myapp", pid=os.getpid())[1] is True


def test_lock_of_dead_pid_is_taken_over(store, open_store):
    dead = _dead_pid()
    store.acquire_lock("project:myapp", ttl=600, pid=dead)
    row, acquired = open_store().acquire_lock("project:myapp", ttl=600, pid=os.getpid())
    assert acquired and row["owner_pid"] == os.getpid()


def test_lock_of_live_pid_on_other_host_waits_for_expiry(store, open_store):
    store.acquire_lock("project:myapp", ttl=600, pid=_dead_pid(), host="elsewhere")
    with pytest.raises(LxdctlError, match="locked by pid .* on elsewhere"):
        open_store().acquire_lock("project:myapp", pid=os.getpid())
    assert store.release_lock("project:myapp", force=True)


def test_expired_lock_is_taken_over(store, open_store):
    store.acquire_lock("project:myapp", ttl=0.2, pid=os.getpid(), host="elsewhere")
    time.sleep(0.3)
    row, acquired = open_store().acquire_lock("project:myapp", ttl=60, pid=os.getpid())
    assert acquired and row["owner_host"] != "elsewhere"


def test_time_based_lock_without_pid(store, open_store):
    store.acquire_lock("project:myapp", ttl=600)
    with pytest.raises(LxdctlError, match=r"locked by pid \(none\)"):
        open_store().acquire_lock("project:myapp", ttl=600)
    assert store.release_lock("project:myapp") is True


def _race_worker(url, key_file, name, barrier, results, done):
    store = StateStore.open(url, key_file=key_file)
    barrier.wait()
    try:
        store.acquire_lock(name, ttl=600, pid=os.getpid())
        results.put(("won", os.getpid()))
    except LxdctlError as err:
        results.put(("lost", err.msg))
    done.wait(60)  # stay alive (a live owner) until the parent has seen every result
    store.close()


@pytest.mark.parametrize("workers", [2, 4])
def test_processes_racing_for_a_lock_exactly_one_wins(store, state_url, key_file, workers):
    ctx = multiprocessing.get_context("fork")
    for round_number in range(5):
        name = "project:race%d" % round_number
        barrier, results, done = ctx.Barrier(workers), ctx.Queue(), ctx.Event()
        procs = [ctx.Process(target=_race_worker, args=(state_url, key_file, name, barrier, results, done))
                 for _ in range(workers)]
        for proc in procs:
            proc.start()
        outcomes = [results.get(timeout=60) for _ in procs]
        done.set()
        for proc in procs:
            proc.join(60)
        winners = [o for o in outcomes if o[0] == "won"]
        assert len(winners) == 1, outcomes
        for outcome in outcomes:
            if outcome[0] == "lost":
                assert "is locked by pid %d" % winners[0][1] in outcome[1]
        assert store.get_lock(name)["owner_pid"] == winners[0][1]


def _secret_worker(url, key_file, barrier, results):
    store = StateStore.open(url, key_file=key_file)
    barrier.wait()
    results.put(store.get_or_create_secret("myapp", "db_password")[0])
    store.close()


def test_processes_racing_for_a_secret_get_the_same_value(store, state_url, key_file):
    make_project(store)
    store.set_env("myapp", {"A": "1"})  # the key file exists before the race
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_secret_worker, args=(state_url, key_file, barrier, results)) for _ in range(3)]
    for proc in procs:
        proc.start()
    values = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(60)
    assert len(set(values)) == 1 and store.get_secret("myapp", "db_password") == values[0]


def _upsert_worker(url, key_file, barrier, results):
    store = StateStore.open(url, key_file=key_file)
    barrier.wait()
    try:
        results.put(("ok", store.upsert_project("racer", runtime="go")[1]))
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        results.put(("error", repr(exc)))
    store.close()


def test_processes_racing_to_create_a_project_get_one_row(store, state_url, key_file):
    ctx = multiprocessing.get_context("fork")
    for _round in range(3):
        store.delete_project("racer")
        barrier, results = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_upsert_worker, args=(state_url, key_file, barrier, results)) for _ in range(4)]
        for proc in procs:
            proc.start()
        outcomes = [results.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(60)
        assert sorted(outcomes) == [("ok", False)] * 3 + [("ok", True)], outcomes
        assert [p["name"] for p in store.list_projects()] == ["racer"]


def _open_worker(url, key_file, barrier, results):
    barrier.wait()
    try:
        with StateStore.open(url, key_file=key_file) as opened:
            results.put(("ok", opened.schema_version()))
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        results.put(("error", str(exc)))


def test_concurrent_first_open_migrates_once(state_url, key_file):
    """Processes opening a brand-new store at once: all succeed, each migration applied once."""
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_open_worker, args=(state_url, key_file, barrier, results)) for _ in range(4)]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(60)
    assert outcomes == [("ok", _state.SCHEMA_VERSION)] * 4
    with StateStore.open(state_url, key_file=key_file) as opened:
        assert [m["version"] for m in opened.migrations()] == [m[0] for m in _state.MIGRATIONS]


# --- SQLite only ---------------------------------------------------------------------
def test_sqlite_file_private_wal_foreign_keys(store, state_url):
    path = _state.sqlite_path(state_url)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    make_project(store)
    for suffix in ("-wal", "-shm"):
        if os.path.exists(path + suffix):
            assert stat.S_IMODE(os.stat(path + suffix).st_mode) == 0o600
    mode = subprocess.run(["sqlite3", path, "PRAGMA journal_mode"], capture_output=True, text=True, check=True).stdout
    assert mode.strip() == "wal"
    assert store._execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert store._execute("PRAGMA busy_timeout").fetchone()[0] >= 10000


def test_url_and_key_file_resolution(tmp_path, monkeypatch):
    config = tmp_path / "platform.json"
    config.write_text(json.dumps({"state": {"url": "sqlite:////srv/from-config.db", "key_file": "/srv/config.key"}}))
    monkeypatch.setenv("LXDCTL_CONFIG", str(config))
    monkeypatch.delenv("LXDCTL_DATABASE_URL", raising=False)
    monkeypatch.delenv("LXDCTL_STATE_KEY_FILE", raising=False)
    assert _state.resolve_url() == "sqlite:////srv/from-config.db"
    assert _state.resolve_key_file() == "/srv/config.key"
    monkeypatch.setenv("LXDCTL_DATABASE_URL", "postgresql://u:p@h/d")
    monkeypatch.setenv("LXDCTL_STATE_KEY_FILE", "/srv/env.key")
    assert _state.resolve_url() == "postgresql://u:p@h/d"
    assert _state.resolve_key_file() == "/srv/env.key"
    assert _state.resolve_url("sqlite:////x.db") == "sqlite:////x.db"
    monkeypatch.setenv("LXDCTL_CONFIG", str(tmp_path / "missing.json"))
    monkeypatch.delenv("LXDCTL_DATABASE_URL")
    monkeypatch.delenv("LXDCTL_STATE_KEY_FILE")
    assert _state.resolve_url() == _state.DEFAULT_URL == "sqlite:////var/lib/lxdctl/state/state.db"
    assert _state.resolve_key_file() == "/etc/lxdctl/state.key"


def test_bad_urls_give_clear_errors():
    with pytest.raises(LxdctlError, match="must start with sqlite:/// or postgresql://"):
        StateStore.open("mysql://u:topsecret@h/d")
    with pytest.raises(LxdctlError) as err:
        StateStore.open("postgresql://u:topsecret@127.0.0.1:1/d")
    assert "Cannot connect to the state database postgresql://u:****@127.0.0.1:1/d" in err.value.msg
    assert "topsecret" not in err.value.msg


def test_generated_secrets_are_url_safe():
    values = set(_state.generate_secret(24) for _ in range(50))
    assert len(values) == 50
    assert all(len(v) == 24 and v.isalnum() and v.isascii() for v in values)
