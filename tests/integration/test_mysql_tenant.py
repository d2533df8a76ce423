"""mysql_tenant against the platform's MariaDB, checked with the mariadb client.

Tenants log in through the bridge address (their accounts match only the bridge subnet),
the admin over 127.0.0.1.
"""
import os
import subprocess
import time

from tests.integration.data_support import assert_no_secret, my_admin, my_tenant, run_module

DB = "it_data_my_a"
PW1 = "it-Data my1 'quote' $HOME;--"
PW2 = "it-data-my2-rotated"


def args(**extra):
    base = {"name": DB, "password": PW1}
    base.update(extra)
    return base


def account(cfg, host):
    return my_admin(cfg, "SELECT plugin, max_user_connections FROM mysql.user WHERE User = '%s' AND Host = '%s'"
                    % (DB, host))


def db_exists(cfg):
    return my_admin(cfg, "SELECT count(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '%s'" % DB) == "1"


def test_mysql_tenant_lifecycle(platform_config):
    cfg = platform_config
    run_module("mysql_tenant", {"name": DB, "state": "absent"})
    try:
        check = run_module("mysql_tenant", args(), check=True, diff=True)
        assert not check.failed and check.changed, check
        host = check["user_host"]
        assert host == "10.77.0.%" if cfg["lxd"]["subnet"] == "10.77.0.0/24" else host
        assert any(q.startswith("CREATE DATABASE `%s`" % DB) for q in check["queries"])
        assert account(cfg, host) == "" and not db_exists(cfg)
        assert_no_secret(check, PW1)

        created = run_module("mysql_tenant", args(), diff=True)
        assert not created.failed and created.changed, created
        assert created["database"] == DB and created["owner"] == DB
        assert created["host"] == cfg["mysql"]["tenant_host"] and created["port"] == cfg["mysql"]["port"]
        assert_no_secret(created, PW1)
        assert account(cfg, host) == "mysql_native_password\t20"
        assert db_exists(cfg)
        grants = my_admin(cfg, "SHOW GRANTS FOR '%s'@'%s'" % (DB, host))
        # the database's "_" are escaped: unescaped they are GRANT wildcards
        assert "GRANT ALL PRIVILEGES ON `it\\_data\\_my\\_a`.* TO" in grants, grants
        assert "GRANT USAGE ON *.*" in grants  # nothing global
        login = my_tenant(cfg, "SELECT CURRENT_USER(), DATABASE()", DB, PW1, DB)
        assert login.returncode == 0, login.stderr
        assert login.stdout.strip() == "%s@%s\t%s" % (DB, host, DB)
        table = my_tenant(cfg, "CREATE TABLE t (id INT); INSERT INTO t VALUES (1); SELECT count(*) FROM t", DB, PW1, DB)
        assert table.returncode == 0 and table.stdout.strip() == "1", table.stderr
        other = my_tenant(cfg, "CREATE DATABASE it_data_my_other", DB, PW1)
        assert other.returncode != 0 and "denied" in other.stderr

        again = run_module("mysql_tenant", args())
        assert not again.failed and not again.changed, again
        same = run_module("mysql_tenant", args(rotate_password=True))
        assert not same.failed and not same.changed, same
        kept = run_module("mysql_tenant", args(password=PW2))
        assert not kept.failed and not kept.changed, kept

        rotated = run_module("mysql_tenant", args(password=PW2, rotate_password=True, connection_limit=5), diff=True)
        assert not rotated.failed and rotated.changed, rotated
        assert_no_secret(rotated, PW1, PW2)
        assert account(cfg, host) == "mysql_native_password\t5"
        assert my_tenant(cfg, "SELECT 1", DB, PW2, DB).returncode == 0
        old = my_tenant(cfg, "SELECT 1", DB, PW1, DB)
        assert old.returncode != 0 and "Access denied" in old.stderr
        again = run_module("mysql_tenant", args(password=PW2, rotate_password=True, connection_limit=5))
        assert not again.failed and not again.changed, again

        # drift: a privilege granted by hand on another database (and globally) is taken back
        my_admin(cfg, "GRANT SELECT ON mysql.* TO '%s'@'%s'; GRANT PROCESS ON *.* TO '%s'@'%s'" % (DB, host, DB, host))
        repaired = run_module("mysql_tenant", args(password=PW2, connection_limit=5))
        assert not repaired.failed and repaired.changed, repaired
        grants = my_admin(cfg, "SHOW GRANTS FOR '%s'@'%s'" % (DB, host))
        assert "`mysql`.*" not in grants and "PROCESS" not in grants and "GRANT ALL PRIVILEGES ON" in grants, grants
        assert my_tenant(cfg, "SELECT count(*) FROM t", DB, PW2, DB).stdout.strip() == "1"
        again = run_module("mysql_tenant", args(password=PW2, connection_limit=5))
        assert not again.failed and not again.changed, again

        check_absent = run_module("mysql_tenant", {"name": DB, "state": "absent"}, check=True)
        assert check_absent.changed and db_exists(cfg) and account(cfg, host) != ""

        my = cfg["mysql"]
        session = subprocess.Popen(
            ["mariadb", "--protocol=TCP", "-h", my["tenant_host"], "-P", str(my["port"]), "-u", DB, "-N", "-B",
             "-e", "SELECT SLEEP(120)", DB],
            env=dict(os.environ, MYSQL_PWD=PW2), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        deadline = time.time() + 20
        while time.time() < deadline and my_admin(
                cfg, "SELECT count(*) FROM information_schema.PROCESSLIST WHERE USER = '%s'" % DB) == "0":
            time.sleep(0.2)
        removed = run_module("mysql_tenant", {"name": DB, "state": "absent"}, diff=True)
        assert not removed.failed and removed.changed, removed
        assert any(q.startswith("KILL CONNECTION") for q in removed["queries"]), removed["queries"]
        session.wait(timeout=30)
        assert session.returncode != 0
        assert not db_exists(cfg) and account(cfg, host) == ""

        again = run_module("mysql_tenant", {"name": DB, "state": "absent"})
        assert not again.failed and not again.changed, again
    finally:
        run_module("mysql_tenant", {"name": DB, "state": "absent"})


def test_mysql_tenant_bad_input_writes_nothing(platform_config):
    for bad in ("it_data_my_b`; DROP DATABASE mysql; --", "IT_DATA_MY_B", "it_data_my_" + "b" * 60, "it-data-my-b"):
        result = run_module("mysql_tenant", {"name": bad, "password": PW1})
        assert result.failed and "lowercase letters" in result["msg"], result
        assert_no_secret(result, PW1)
    assert my_admin(platform_config, "SELECT count(*) FROM information_schema.SCHEMATA "
                                     "WHERE SCHEMA_NAME LIKE 'it\\_data\\_my\\_b%'") == "0"
    assert my_admin(platform_config, "SELECT count(*) FROM mysql.user WHERE User LIKE 'it\\_data\\_my\\_b%'") == "0"
