"""postgres_tenant against the platform's PostgreSQL, checked with psql.

Tenants log in through the bridge address (pg_hba allows tenants only from the bridge
subnet), the admin over 127.0.0.1.
"""
import os
import subprocess
import time

from tests.integration.data_support import assert_no_secret, pg_admin, pg_tenant, run_module

DB = "it_data_pg_a"
PW1 = "it-Data pw1 'quote' $HOME;--"
PW2 = "it-data-pw2-\u00e4-rotated"


def args(**extra):
    base = {"name": DB, "password": PW1}
    base.update(extra)
    return base


def role_row(cfg):
    return pg_admin(cfg, "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolconnlimit "
                         "FROM pg_roles WHERE rolname = '%s'" % DB)


def db_exists(cfg):
    return pg_admin(cfg, "SELECT count(*) FROM pg_database WHERE datname = '%s'" % DB) == "1"


def test_postgres_tenant_lifecycle(platform_config):
    cfg = platform_config
    run_module("postgres_tenant", {"name": DB, "state": "absent"})
    try:
        # check mode: planned, nothing created
        check = run_module("postgres_tenant", args(), check=True, diff=True)
        assert not check.failed, check
        assert check.changed
        assert any(q.startswith('CREATE DATABASE "%s"' % DB) for q in check["queries"])
        assert role_row(cfg) == "" and not db_exists(cfg)
        assert_no_secret(check, PW1)

        # apply
        created = run_module("postgres_tenant", args(), diff=True)
        assert not created.failed, created
        assert created.changed
        assert created["database"] == DB and created["owner"] == DB
        assert created["host"] == cfg["postgres"]["tenant_host"] and created["port"] == cfg["postgres"]["port"]
        assert created["password_set"] is True
        assert "'********'" in created["queries"][0]
        assert created["diff"]["after"]["database"] == DB and created["diff"]["before"]["database"] is None
        assert_no_secret(created, PW1)
        assert role_row(cfg) == "t|f|f|f|f|20"
        assert db_exists(cfg)
        assert pg_admin(cfg, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '%s'" % DB) == DB
        assert pg_admin(cfg, "SELECT has_database_privilege('public', '%s', 'CONNECT'), "
                             "has_database_privilege('public', '%s', 'TEMPORARY')" % (DB, DB)) == "f|f"
        assert pg_admin(cfg, "SELECT rolpassword LIKE 'SCRAM-SHA-256$%%' FROM pg_authid WHERE rolname = '%s'" % DB) == "t"
        login = pg_tenant(cfg, "SELECT current_user, current_database()", DB, PW1, DB)
        assert login.returncode == 0, login.stderr
        assert login.stdout.strip() == "%s|%s" % (DB, DB)

        # apply again: unchanged, also with rotate_password and the same password
        again = run_module("postgres_tenant", args())
        assert not again.failed and not again.changed, again
        assert again["queries"] == []
        same = run_module("postgres_tenant", args(rotate_password=True))
        assert not same.failed and not same.changed, same

        # a verifier PostgreSQL computed itself (another salt) still compares equal
        pg_admin(cfg, "SET password_encryption = 'scram-sha-256'; ALTER ROLE %s PASSWORD '%s'"
                 % (DB, PW1.replace("'", "''")))
        server_made = run_module("postgres_tenant", args(rotate_password=True))
        assert not server_made.failed and not server_made.changed, server_made

        # without rotate_password, another password leaves the role alone
        kept = run_module("postgres_tenant", args(password=PW2))
        assert not kept.failed and not kept.changed, kept
        assert pg_tenant(cfg, "SELECT 1", DB, PW1, DB).returncode == 0

        # modify: rotate the password and lower the connection limit
        rotated = run_module("postgres_tenant", args(password=PW2, rotate_password=True, connection_limit=5), diff=True)
        assert not rotated.failed and rotated.changed, rotated
        assert rotated["password_set"] is True
        assert_no_secret(rotated, PW1, PW2)
        assert role_row(cfg) == "t|f|f|f|f|5"
        assert pg_tenant(cfg, "SELECT 1", DB, PW2, DB).returncode == 0
        old = pg_tenant(cfg, "SELECT 1", DB, PW1, DB)
        assert old.returncode != 0 and "password authentication failed" in old.stderr
        again = run_module("postgres_tenant", args(password=PW2, rotate_password=True, connection_limit=5))
        assert not again.failed and not again.changed, again

        # drift is repaired: a privilege granted by hand is taken back
        pg_admin(cfg, "ALTER ROLE %s CREATEDB; GRANT CONNECT ON DATABASE %s TO PUBLIC" % (DB, DB))
        repaired = run_module("postgres_tenant", args(password=PW2, connection_limit=5))
        assert repaired.changed and not repaired.failed, repaired
        assert role_row(cfg) == "t|f|f|f|f|5"
        assert pg_admin(cfg, "SELECT has_database_privilege('public', '%s', 'CONNECT')" % DB) == "f"

        # absent in check mode: nothing dropped
        check_absent = run_module("postgres_tenant", {"name": DB, "state": "absent"}, check=True)
        assert check_absent.changed and not check_absent.failed
        assert db_exists(cfg) and role_row(cfg) != ""

        # absent with an open tenant session: the session is ended, both dropped
        pg = cfg["postgres"]
        session = subprocess.Popen(
            ["psql", "-X", "-h", pg["tenant_host"], "-p", str(pg["port"]), "-U", DB, "-d", DB, "-Atc",
             "SELECT pg_sleep(120)"],
            env=dict(os.environ, PGPASSWORD=PW2), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        deadline = time.time() + 20
        while time.time() < deadline and pg_admin(
                cfg, "SELECT count(*) FROM pg_stat_activity WHERE usename = '%s'" % DB) == "0":
            time.sleep(0.2)
        assert pg_admin(cfg, "SELECT count(*) FROM pg_stat_activity WHERE usename = '%s'" % DB) != "0"
        removed = run_module("postgres_tenant", {"name": DB, "state": "absent"}, diff=True)
        assert not removed.failed and removed.changed, removed
        assert any("pg_terminate_backend" in q for q in removed["queries"])
        session.wait(timeout=30)
        assert session.returncode != 0
        assert not db_exists(cfg) and role_row(cfg) == ""

        # absent again: unchanged
        again = run_module("postgres_tenant", {"name": DB, "state": "absent"})
        assert not again.failed and not again.changed, again
    finally:
        run_module("postgres_tenant", {"name": DB, "state": "absent"})


def test_postgres_tenant_bad_input_writes_nothing(platform_config):
    for bad in ("it_data_pg_b; DROP DATABASE postgres", "IT_DATA_PG_B", "it_data_pg_" + "b" * 60, "it-data-pg-b"):
        result = run_module("postgres_tenant", {"name": bad, "password": PW1})
        assert result.failed and "lowercase letters" in result["msg"], result
        assert_no_secret(result, PW1)
    assert pg_admin(platform_config, "SELECT count(*) FROM pg_database WHERE datname ILIKE 'it_data_pg_b%'") == "0"
    assert pg_admin(platform_config, "SELECT count(*) FROM pg_roles WHERE rolname ILIKE 'it_data_pg_b%'") == "0"


def test_postgres_connection_failure_is_readable(platform_config):
    result = run_module("postgres_tenant", {"name": "it_data_pg_c", "password": PW1, "postgres_admin_password": "wrong"})
    assert result.failed
    assert result["msg"].startswith("Failed to connect to PostgreSQL as")
