"""lxdctl_state, lxdctl_secret, lxdctl_lock and lxdctl_info through real Ansible.

Each test gets a temporary SQLite store, named to the modules through the environment
(LXDCTL_DATABASE_URL, LXDCTL_STATE_KEY_FILE), and checks the rows with the ``sqlite3`` CLI,
an independent client.  Check mode must leave the database byte-for-byte as it was, and no
secret may appear in a module's output unless the caller asked for it.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from ansible_collections.lxdctl.platform.plugins.module_utils._state import StateStore
from tests.support.ansible_module import ansible_env

# ansible-core 2.19 has no json stdout callback; this driver (same API as
# tests/support/ansible_module.run_module) prints results through a test callback.
from tests.integration.lxd_support import run_module

pytestmark = pytest.mark.integration

PROJECT = "it-state-mod"
OTHER = "it-state-mod2"


@pytest.fixture
def env(tmp_path):
    db = tmp_path / "state" / "state.db"
    return {
        "LXDCTL_DATABASE_URL": "sqlite:///%s" % db,
        "LXDCTL_STATE_KEY_FILE": str(tmp_path / "keys" / "state.key"),
        "LXDCTL_CONFIG": str(tmp_path / "no-platform.json"),
        "LXDCTL_ACTOR": "it-tester",
    }


@pytest.fixture
def db(env):
    path = env["LXDCTL_DATABASE_URL"][len("sqlite:///"):]
    StateStore.open(env["LXDCTL_DATABASE_URL"], key_file=env["LXDCTL_STATE_KEY_FILE"]).close()  # schema exists
    return path


def sql(db, query):
    out = subprocess.run(["sqlite3", "-json", db, query], capture_output=True, text=True, check=True).stdout
    return json.loads(out) if out.strip() else []


def dump(db):
    return subprocess.run(["sqlite3", db, ".dump"], capture_output=True, text=True, check=True).stdout


def run(name, args, env, check=False, diff=False):
    return run_module(name, args, check=check, diff=diff, env=env)


def ok(result):
    assert not result.failed, result.get("msg")
    return result


# --- lxdctl_state: project --------------------------------------------------------------
def test_project_check_apply_again_modify_absent(env, db):
    args = {"entity": "project", "project": PROJECT,
            "values": {"runtime": "python", "port": 3000, "domain": "it-state-mod.example.com", "ssl": True,
                       "spec": {"db": "postgres"}}}
    before = dump(db)
    result = ok(run("lxdctl_state", args, env, check=True, diff=True))
    assert result.changed and result["row"]["runtime"] == "python"
    assert dump(db) == before  # check mode wrote nothing

    result = ok(run("lxdctl_state", args, env, diff=True))
    assert result.changed and result["row"]["status"] == "creating" and result["row"]["port"] == 3000
    rows = sql(db, "SELECT name, runtime, port, domain, ssl, spec, status FROM projects")
    assert rows == [{"name": PROJECT, "runtime": "python", "port": 3000, "domain": "it-state-mod.example.com",
                     "ssl": 1, "spec": '{"db": "postgres"}', "status": "creating"}]

    snapshot = dump(db)
    result = ok(run("lxdctl_state", args, env))
    assert not result.changed
    assert dump(db) == snapshot  # unchanged rerun writes nothing (not even the audit log)

    modify = {"entity": "project", "project": PROJECT, "values": {"status": "running", "address": "10.77.0.9"}}
    result = ok(run("lxdctl_state", modify, env, check=True))
    assert result.changed and dump(db) == snapshot
    result = ok(run("lxdctl_state", modify, env))
    assert result.changed and result["row"]["address"] == "10.77.0.9"
    assert sql(db, "SELECT status, address FROM projects") == [{"status": "running", "address": "10.77.0.9"}]

    absent = {"entity": "project", "project": PROJECT, "state": "absent"}
    ok(run("lxdctl_state", {"entity": "env", "project": PROJECT, "values": {"A": "1"}}, env))
    snapshot = dump(db)
    result = ok(run("lxdctl_state", absent, env, check=True))
    assert result.changed and dump(db) == snapshot
    result = ok(run("lxdctl_state", absent, env))
    assert result.changed
    assert sql(db, "SELECT COUNT(*) AS n FROM projects") == [{"n": 0}]
    assert sql(db, "SELECT COUNT(*) AS n FROM env_vars") == [{"n": 0}]  # cascaded
    assert not ok(run("lxdctl_state", absent, env)).changed
    actions = [r["action"] for r in sql(db, "SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["project.create", "project.update", "env.set", "project.delete"]
    assert sql(db, "SELECT DISTINCT actor FROM audit_log") == [{"actor": "it-tester"}]


@pytest.mark.parametrize("args, message", [
    ({"entity": "project", "project": "Bad_Name"}, "lowercase letters"),
    ({"entity": "project", "project": "admin"}, "reserved"),
    ({"entity": "project", "project": PROJECT, "values": {"port": "80; rm -rf /"}}, "port"),
    ({"entity": "project", "project": PROJECT, "values": {"colour": "blue"}}, "unknown field"),
    ({"entity": "env", "project": PROJECT, "values": {"A": "1"}}, "does not exist"),
])
def test_bad_input_fails_and_writes_nothing(env, db, args, message):
    before = dump(db)
    result = run("lxdctl_state", args, env)
    assert result.failed and message in result["msg"]
    assert dump(db) == before


# --- lxdctl_state: database, dns_record, deployment, env -------------------------------
def test_children_and_secrets_not_in_output(env, db):
    ok(run("lxdctl_state", {"entity": "project", "project": PROJECT}, env))
    password = "Db-Pa55word-0123456789"
    database = {"entity": "database", "project": PROJECT,
                "values": {"type": "postgresql", "name": "p_it_state_mod", "host": "10.77.0.1", "port": 5432,
                           "username": "p_it_state_mod",
                           "connection_string": "postgresql://p_it_state_mod:%s@10.77.0.1/p_it_state_mod" % password},
                "secret_values": {"password": password}}
    result = ok(run("lxdctl_state", database, env, check=True))
    assert result.changed and sql(db, "SELECT COUNT(*) AS n FROM databases") == [{"n": 0}]
    result = ok(run("lxdctl_state", database, env, diff=True))
    assert result.changed and result["row"]["has_password"] is True
    assert password not in json.dumps(result)
    stored = sql(db, "SELECT password_encrypted, connection_string FROM databases")[0]
    assert password not in json.dumps(stored) and stored["password_encrypted"].startswith("v1.")
    assert stored["connection_string"] == "postgresql://p_it_state_mod:****@10.77.0.1/p_it_state_mod"
    assert not ok(run("lxdctl_state", database, env)).changed
    database["secret_values"] = {"password": password + "-new"}
    assert ok(run("lxdctl_state", database, env)).changed

    record = {"entity": "dns_record", "project": PROJECT,
              "values": {"zone": "example.com", "name": "it-state-mod.example.com", "type": "A", "content": "10.77.0.1"}}
    assert ok(run("lxdctl_state", record, env)).changed
    assert not ok(run("lxdctl_state", record, env)).changed
    assert sql(db, "SELECT zone, name, type, content, ttl FROM dns_records") == [
        {"zone": "example.com.", "name": "it-state-mod.example.com.", "type": "A", "content": "10.77.0.1", "ttl": 3600}]

    deployment = ok(run("lxdctl_state", {"entity": "deployment", "project": PROJECT,
                                         "values": {"version": "v1", "git_commit": "abc"}}, env))
    assert deployment.changed and deployment["row"]["status"] == "pending"
    dep_id = deployment["row"]["id"]
    update = {"entity": "deployment", "project": PROJECT, "values": {"id": dep_id, "status": "success"}}
    assert ok(run("lxdctl_state", update, env)).changed
    assert not ok(run("lxdctl_state", update, env)).changed
    row = sql(db, "SELECT status, completed_at FROM deployments")[0]
    assert row["status"] == "success" and row["completed_at"]

    tricky = "line1\nline2 $(id) `id` ' \" ; rm -rf /"
    secret_env = "Env-S3cret-Value-42"
    env_args = {"entity": "env", "project": PROJECT, "values": {"TRICKY": tricky, "PORT": "3000"},
                "secret_values": {"DATABASE_URL": "postgresql://u:%s@h/d" % secret_env}}
    snapshot = dump(db)
    result = ok(run("lxdctl_state", env_args, env, check=True))
    assert result.changed and result["changed_keys"] == ["DATABASE_URL", "PORT", "TRICKY"] and dump(db) == snapshot
    result = ok(run("lxdctl_state", env_args, env))
    assert result.changed and result["env"] == [{"key": "DATABASE_URL", "is_secret": True},
                                                {"key": "PORT", "is_secret": False},
                                                {"key": "TRICKY", "is_secret": False}]
    assert secret_env not in json.dumps(result) and "line2" not in json.dumps(result["env"])
    for stored in sql(db, "SELECT value_encrypted FROM env_vars"):
        assert secret_env not in stored["value_encrypted"] and "line1" not in stored["value_encrypted"]
    assert not ok(run("lxdctl_state", env_args, env)).changed

    info = ok(run("lxdctl_info", {"project": PROJECT}, env))
    text = json.dumps(info)
    assert secret_env not in text and password not in text and "line2" not in text and "env" not in info
    assert info["exists"] and [d["name"] for d in info["databases"]] == ["p_it_state_mod"]
    assert info["last_deployment"]["status"] == "success"
    revealed = ok(run("lxdctl_info", {"project": PROJECT, "reveal": True}, env))
    assert revealed["env"] == {"TRICKY": tricky, "PORT": "3000", "DATABASE_URL": "postgresql://u:%s@h/d" % secret_env}

    unset = {"entity": "env", "project": PROJECT, "state": "absent", "keys": ["PORT", "NOPE"]}
    result = ok(run("lxdctl_state", unset, env))
    assert result.changed and result["changed_keys"] == ["PORT"]
    assert not ok(run("lxdctl_state", unset, env)).changed
    assert ok(run("lxdctl_state", {"entity": "dns_record", "project": PROJECT, "state": "absent",
                                   "values": {"zone": "example.com", "name": "it-state-mod.example.com",
                                              "type": "A"}}, env)).changed
    assert ok(run("lxdctl_state", {"entity": "database", "project": PROJECT, "state": "absent",
                                   "values": {"type": "postgresql", "name": "p_it_state_mod"}}, env)).changed
    assert sql(db, "SELECT COUNT(*) AS n FROM databases") == [{"n": 0}]
    audit = json.dumps(sql(db, "SELECT detail FROM audit_log"))
    assert password not in audit and secret_env not in audit


def test_env_values_from_a_playbook_stay_literal(env, db, tmp_path):
    """Values that reach the module as unsafe extra vars (as the runner sends them) are not templated."""
    ok(run("lxdctl_state", {"entity": "project", "project": PROJECT}, env))
    playbook = tmp_path / "env.yml"
    playbook.write_text(textwrap.dedent("""\
        - hosts: localhost
          gather_facts: false
          tasks:
            - name: Store the env
              lxdctl.platform.lxdctl_state:
                entity: env
                project: "{{ project_name }}"
                values: "{{ env_values }}"
        """))
    extravars = tmp_path / "vars.yml"
    extravars.write_text(textwrap.dedent("""\
        project_name: %s
        env_values:
          JINJA: !unsafe "{{ lookup('pipe', 'id') }} {%% if true %%}x{%% endif %%}"
          MULTI: !unsafe "a\\nb {{ 7 * 7 }}"
        """ % PROJECT))
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
         "-e", "ansible_python_interpreter=%s" % sys.executable, "-e", "@%s" % extravars, str(playbook)],
        capture_output=True, text=True, env=ansible_env(dict(env, ANSIBLE_STDOUT_CALLBACK="default")), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with StateStore.open(env["LXDCTL_DATABASE_URL"], key_file=env["LXDCTL_STATE_KEY_FILE"]) as store:
        assert store.get_env(PROJECT, reveal=True) == {
            "JINJA": "{{ lookup('pipe', 'id') }} {% if true %}x{% endif %}", "MULTI": "a\nb {{ 7 * 7 }}"}


# --- lxdctl_secret ----------------------------------------------------------------------
def test_secret_check_create_again_rotate(env, db):
    ok(run("lxdctl_state", {"entity": "project", "project": PROJECT}, env))
    args = {"project": PROJECT, "name": "db_password"}
    before = dump(db)
    result = ok(run("lxdctl_secret", args, env, check=True))
    assert result.changed and result["value"] is None and result["created"] and dump(db) == before
    created = ok(run("lxdctl_secret", args, env))
    value = created["value"]
    assert created.changed and len(value) == 32 and value.isalnum()
    stored = sql(db, "SELECT s.name, s.value_encrypted FROM secrets s JOIN projects p ON p.id = s.project_id")
    assert [r["name"] for r in stored] == ["db_password"] and value not in stored[0]["value_encrypted"]
    again = ok(run("lxdctl_secret", args, env))
    assert not again.changed and again["value"] == value
    result = ok(run("lxdctl_secret", dict(args, rotate=True), env, check=True))
    assert result.changed and result["rotated"] and result["value"] is None
    assert ok(run("lxdctl_secret", args, env))["value"] == value
    rotated = ok(run("lxdctl_secret", dict(args, rotate=True, length=48), env))
    assert rotated.changed and rotated["value"] != value and len(rotated["value"]) == 48
    assert ok(run("lxdctl_secret", {"name": "platform_token", "length": 16}, env)).changed  # no project
    info = ok(run("lxdctl_info", {"project": PROJECT}, env))
    assert info["secrets"] == ["db_password"] and rotated["value"] not in json.dumps(info)
    assert ok(run("lxdctl_secret", dict(args, state="absent"), env)).changed
    assert not ok(run("lxdctl_secret", dict(args, state="absent"), env)).changed
    bad = run("lxdctl_secret", {"project": PROJECT, "name": "x", "length": 4}, env)
    assert bad.failed and "length" in bad["msg"]


# --- lxdctl_lock ------------------------------------------------------------------------
def test_lock_acquire_refuse_takeover_release(env, db):
    name = "project:%s" % PROJECT
    mine = {"name": name, "owner_pid": os.getpid(), "ttl": 600}
    result = ok(run("lxdctl_lock", mine, env, check=True))
    assert result.changed and sql(db, "SELECT COUNT(*) AS n FROM locks") == [{"n": 0}]
    result = ok(run("lxdctl_lock", mine, env))
    assert result.changed and result["lock"]["owner_pid"] == os.getpid()
    assert not ok(run("lxdctl_lock", mine, env)).changed  # same owner: held, expiry extended

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    theirs = {"name": name, "owner_pid": dead.pid + 1000000, "ttl": 600}
    refused = run("lxdctl_lock", theirs, env)
    assert refused.failed
    assert refused["msg"].startswith("project %s is locked by pid %d on " % (PROJECT, os.getpid()))
    assert refused["msg"].endswith("; retry later")
    refused = run("lxdctl_lock", theirs, env, check=True)
    assert refused.failed and "is locked by pid" in refused["msg"]

    result = ok(run("lxdctl_lock", dict(mine, state="released"), env, check=True))
    assert result.changed and sql(db, "SELECT owner_pid FROM locks") == [{"owner_pid": os.getpid()}]
    assert ok(run("lxdctl_lock", dict(mine, state="released"), env)).changed
    assert not ok(run("lxdctl_lock", dict(mine, state="released"), env)).changed
    assert sql(db, "SELECT COUNT(*) AS n FROM locks") == [{"n": 0}]

    # a lock left by a killed process (its pid is gone) is taken over
    ok(run("lxdctl_lock", {"name": name, "owner_pid": dead.pid, "ttl": 600}, env))
    taken = ok(run("lxdctl_lock", mine, env))
    assert taken.changed and taken["acquired"] and taken["lock"]["owner_pid"] == os.getpid()
    assert sql(db, "SELECT owner_pid FROM locks") == [{"owner_pid": os.getpid()}]
    refused = run("lxdctl_lock", dict(theirs, state="released"), env)
    assert refused.failed and "not released" in refused["msg"]
    assert ok(run("lxdctl_lock", dict(theirs, state="released", force=True), env)).changed


# --- lxdctl_info ------------------------------------------------------------------------
def test_info_lists_and_reads(env, db):
    assert ok(run("lxdctl_info", {"reveal": False}, env))["projects"] == []
    missing = ok(run("lxdctl_info", {"project": PROJECT}, env))
    assert missing["exists"] is False and missing["project"] == {} and not missing.changed
    for name in (OTHER, PROJECT):
        ok(run("lxdctl_state", {"entity": "project", "project": name, "values": {"runtime": "node"}}, env))
    ok(run("lxdctl_lock", {"name": "project:%s" % PROJECT, "owner_pid": os.getpid()}, env))
    listed = ok(run("lxdctl_info", {"reveal": False}, env))
    assert [p["name"] for p in listed["projects"]] == [PROJECT, OTHER]
    one = ok(run("lxdctl_info", {"project": PROJECT}, env, check=True))
    assert one["exists"] and one["project"]["runtime"] == "node" and one["lock"]["owner_pid"] == os.getpid()
    assert one["env_keys"] == [] and one["databases"] == [] and one["last_deployment"] is None


# --- the same modules on the PostgreSQL backend ------------------------------------------
@pytest.fixture
def pg_env(platform_config, env):
    import psycopg2
    import psycopg2.sql
    import secrets

    pg = platform_config["postgres"]
    name = "it_state_mod_%s" % secrets.token_hex(4)
    admin = psycopg2.connect(host=pg["host"], port=pg["port"], user=pg["admin_user"],
                             password=pg["admin_password"], dbname="postgres", connect_timeout=10)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(psycopg2.sql.SQL("CREATE DATABASE {}").format(psycopg2.sql.Identifier(name)))
    url = "postgresql://%s:%s@%s:%s/%s" % (pg["admin_user"], pg["admin_password"], pg["host"], pg["port"], name)
    try:
        yield dict(env, LXDCTL_DATABASE_URL=url)
    finally:
        with admin.cursor() as cur:
            cur.execute(psycopg2.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psycopg2.sql.Identifier(name)))
        admin.close()


def psql(url, query):
    out = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-At", "-c",
                          "SELECT COALESCE(json_agg(t), '[]') FROM (%s) t" % query],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    return json.loads(out)


def test_modules_on_postgres(pg_env):
    url = pg_env["LXDCTL_DATABASE_URL"]
    args = {"entity": "project", "project": PROJECT, "values": {"runtime": "go", "ssl": True}}
    assert ok(run("lxdctl_state", args, pg_env)).changed
    assert not ok(run("lxdctl_state", args, pg_env)).changed
    assert psql(url, "SELECT name, runtime, ssl FROM projects") == [{"name": PROJECT, "runtime": "go", "ssl": True}]
    secret = ok(run("lxdctl_state", {"entity": "env", "project": PROJECT,
                                     "secret_values": {"TOKEN": "Pg-Secret-Token-77"}}, pg_env))
    assert secret.changed and "Pg-Secret-Token-77" not in json.dumps(secret)
    stored = psql(url, "SELECT key, value_encrypted, is_secret FROM env_vars")
    assert stored[0]["is_secret"] is True and "Pg-Secret-Token-77" not in stored[0]["value_encrypted"]
    assert ok(run("lxdctl_info", {"project": PROJECT, "reveal": True}, pg_env))["env"] == {"TOKEN": "Pg-Secret-Token-77"}
    value = ok(run("lxdctl_secret", {"project": PROJECT, "name": "db_password"}, pg_env))["value"]
    assert ok(run("lxdctl_secret", {"project": PROJECT, "name": "db_password"}, pg_env))["value"] == value
    assert ok(run("lxdctl_lock", {"name": "project:%s" % PROJECT, "owner_pid": os.getpid()}, pg_env)).changed
    refused = run("lxdctl_lock", {"name": "project:%s" % PROJECT, "owner_pid": os.getpid() + 1000000}, pg_env)
    assert refused.failed and "is locked by pid %d" % os.getpid() in refused["msg"]
    assert ok(run("lxdctl_state", {"entity": "project", "project": PROJECT, "state": "absent"}, pg_env)).changed
    assert psql(url, "SELECT COUNT(*) AS n FROM env_vars") == [{"n": 0}]
    assert psql(url, "SELECT COUNT(*) AS n FROM secrets") == [{"n": 0}]
