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


# --- lxdctl_state: records, lock, unique_domain --------------------------------------------
def test_records_are_written_together_under_the_lock(env, db):
    lock = {"lock_owner_pid": os.getpid(), "lock_ttl": 600}
    first = dict(lock, entity="project", project=PROJECT, lock="acquired", unique_domain=True,
                 values={"status": "creating", "domain": "it-state-mod.example.com"})
    before = dump(db)
    result = ok(run("lxdctl_state", first, env, check=True))
    assert result.changed and dump(db) == before  # check mode: no row, no lock
    result = ok(run("lxdctl_state", first, env))
    assert result.changed and result["row"]["status"] == "creating" and result["lock"]["owner_pid"] == os.getpid()
    assert sql(db, "SELECT name, owner_pid FROM locks") == [{"name": "project:" + PROJECT, "owner_pid": os.getpid()}]

    # another live owner is refused, in check mode too, and writes nothing
    theirs = dict(first, lock_owner_pid=os.getpid() + 1000000, values={"status": "error"})
    snapshot = dump(db)
    for check in (True, False):
        refused = run("lxdctl_state", theirs, env, check=check)
        assert refused.failed and "is locked by pid %d" % os.getpid() in refused["msg"]
    assert dump(db) == snapshot

    password = "Batch-Pa55word-0123456789"
    records = [
        {"entity": "project", "values": {"status": "running", "address": "10.77.0.9"}},
        {"entity": "database", "values": {"type": "redis", "name": "p-it-state-mod", "host": "10.77.0.1", "port": 6379,
                                          "connection_string": "redis://p-it-state-mod:%s@10.77.0.1:6379/0" % password},
         "secret_values": {"password": password}},
        {"entity": "dns_record", "values": {"zone": "example.com", "name": "it-state-mod.example.com", "type": "A",
                                            "content": "10.77.0.1", "ttl": 300}},
        {"entity": "env", "secret_values": {"REDIS_URL": "redis://u:%s@h/0" % password, "PORT": "3000"}},
    ]
    final = dict(lock, project=PROJECT, records=records, lock="released")
    result = ok(run("lxdctl_state", final, env, check=True, diff=True))
    assert result.changed and dump(db) == snapshot
    result = ok(run("lxdctl_state", final, env, diff=True))
    assert result.changed and [r["changed"] for r in result["records"]] == [True, True, True, True]
    assert password not in json.dumps(result)
    assert sql(db, "SELECT COUNT(*) AS n FROM locks") == [{"n": 0}]
    assert sql(db, "SELECT status, address FROM projects") == [{"status": "running", "address": "10.77.0.9"}]
    assert sql(db, "SELECT type, name FROM databases") == [{"type": "redis", "name": "p-it-state-mod"}]
    assert sql(db, "SELECT name, ttl FROM dns_records") == [{"name": "it-state-mod.example.com.", "ttl": 300}]
    assert sql(db, "SELECT key, is_secret FROM env_vars ORDER BY key") == [{"key": "PORT", "is_secret": 1},
                                                                           {"key": "REDIS_URL", "is_secret": 1}]
    snapshot = dump(db)
    again = ok(run("lxdctl_state", final, env))
    assert not again.changed and dump(db) == snapshot

    # one bad record: nothing of the batch is written, and a lock this call took is given back
    batch = dict(lock, project=PROJECT, lock="acquired", records=[
        {"entity": "project", "values": {"status": "error"}},
        {"entity": "dns_record", "values": {"zone": "example.com", "name": "x.example.org", "type": "A",
                                            "content": "10.77.0.1"}}])
    failed = run("lxdctl_state", batch, env)
    assert failed.failed and "inside zone" in failed["msg"]
    assert dump(db) == snapshot and sql(db, "SELECT COUNT(*) AS n FROM locks") == [{"n": 0}]

    # lock alone, then a release by the same owner
    assert not ok(run("lxdctl_state", dict(lock, project=PROJECT, lock="acquired"), env)).changed
    assert sql(db, "SELECT owner_pid FROM locks") == [{"owner_pid": os.getpid()}]
    ok(run("lxdctl_state", dict(lock, project=PROJECT, lock="released", records=[]), env))
    assert sql(db, "SELECT COUNT(*) AS n FROM locks") == [{"n": 0}]
    assert run("lxdctl_state", {"project": PROJECT}, env).failed  # neither entity, records nor lock


def test_unique_domain_refuses_another_projects_domain(env, db):
    ok(run("lxdctl_state", {"entity": "project", "project": OTHER, "values": {"domain": "it-state-mod.example.com"}}, env))
    claim = {"entity": "project", "project": PROJECT, "unique_domain": True, "lock": "acquired",
             "lock_owner_pid": os.getpid(), "values": {"domain": "IT-State-Mod.example.com."}}
    before = dump(db)
    for check in (True, False):
        refused = run("lxdctl_state", claim, env, check=check)
        assert refused.failed
        assert refused["msg"] == "project_domain: it-state-mod.example.com is already used by project %s" % OTHER
    assert dump(db) == before  # no row, and the lock taken for the write was given back
    # its own domain again is fine
    ok(run("lxdctl_state", dict(claim, project=OTHER, values={"domain": "it-state-mod.example.com"}), env))


def test_check_mode_plans_rows_of_a_project_not_yet_recorded(env, db):
    records = [{"entity": "project", "values": {"status": "running"}},
               {"entity": "database", "values": {"type": "postgresql", "name": "p_x"}, "secret_values": {"password": "pw-1234567"}},
               {"entity": "env", "values": {"PORT": "1"}},
               {"entity": "env", "state": "absent", "keys": ["OLD"]}]
    before = dump(db)
    result = ok(run("lxdctl_state", {"project": PROJECT, "records": records}, env, check=True))
    assert [r["changed"] for r in result["records"]] == [True, True, True, False]
    assert result["records"][2]["changed_keys"] == ["PORT"] and dump(db) == before
    missing = run("lxdctl_state", {"project": PROJECT, "records": records[1:]}, env)
    assert missing.failed and "does not exist" in missing["msg"]


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


def test_secret_names_in_one_call(env, db):
    args = {"project": PROJECT, "names": ["postgres-password", "redis-password"]}
    new = ok(run("lxdctl_secret", args, env, check=True))  # a dry run of a project not in the state
    assert new.changed and new["values"] == {"postgres-password": None, "redis-password": None}
    assert run("lxdctl_secret", args, env).failed  # for real, the project must exist
    ok(run("lxdctl_state", {"entity": "project", "project": PROJECT}, env))
    before = dump(db)
    planned = ok(run("lxdctl_secret", args, env, check=True))
    assert planned.changed and planned["created"] and dump(db) == before
    created = ok(run("lxdctl_secret", args, env))
    values = created["values"]
    assert created.changed and sorted(values) == ["postgres-password", "redis-password"]
    assert all(len(v) == 32 for v in values.values()) and values["postgres-password"] != values["redis-password"]
    stored = sql(db, "SELECT name, value_encrypted FROM secrets ORDER BY name")
    assert [r["name"] for r in stored] == ["postgres-password", "redis-password"]
    assert not any(v in json.dumps(stored) for v in values.values())
    again = ok(run("lxdctl_secret", args, env))
    assert not again.changed and again["values"] == values
    one = ok(run("lxdctl_secret", {"project": PROJECT, "names": ["redis-password", "mysql-password"]}, env))
    assert one.changed and one["values"]["redis-password"] == values["redis-password"]
    both = run("lxdctl_secret", {"project": PROJECT, "name": "x", "names": ["y"]}, env)
    assert both.failed and "mutually exclusive" in both["msg"]


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
    assert "platform" not in one


def test_info_returns_the_platform_settings_without_secrets(env, db, tmp_path):
    config = tmp_path / "platform.json"
    config.write_text(json.dumps({
        "public_address": "10.77.0.1",
        "lxd": {"pool": "lxdctl", "profile": "lxdctl", "images": {"python": "lxdctl-python"}},
        "dns": {"managed_zones": ["It-State.Example.", "lxdctl.test"], "default_zone": "lxdctl.test."},
        "postgres": {"admin_password": "Pg-Admin-Secret-1"},
        "mongo": {"admin_url": "mongodb://root:Mongo-Secret-2@db:27017/admin"},
    }))
    result = ok(run("lxdctl_info", {"project": PROJECT, "platform": True, "config_path": str(config)}, env))
    assert result["platform"] == {
        "public_address": "10.77.0.1", "pool": "lxdctl", "profile": "lxdctl", "images": {"python": "lxdctl-python"},
        "managed_zones": ["it-state.example", "lxdctl.test"], "default_zone": "lxdctl.test",
        "cert_dir": "/etc/lxdctl/certs", "memcached_port_range": [21000, 21999], "mongo_configured": True}
    assert "Secret" not in json.dumps(result)
    missing = run("lxdctl_info", {"project": PROJECT, "platform": True, "config_path": str(tmp_path / "none.json")}, env)
    assert missing.failed and "lxdctl init" in missing["msg"]


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
