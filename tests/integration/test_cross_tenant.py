"""Cross-tenant probes: one tenant's credentials reach nothing of another's.

PostgreSQL and MariaDB: A's credentials cannot connect to B's database.  The MariaDB pair
is chosen so that an unescaped GRANT pattern of A (``it_data_xa_b``) would match B's
database (``it_data_xaab``).  Redis: A's user gets NOPERM on B's keys and on SCAN, KEYS,
FLUSHALL.
"""
import pytest

from tests.integration.data_support import my_tenant, pg_tenant, redis_admin, redis_tenant, run_module

PG_A, PG_B = "it_data_xpa", "it_data_xpb"
MY_A, MY_B = "it_data_xa_b", "it_data_xaab"
RD_A, RD_B = "it-data-xra", "it-data-xrb"
PW_A, PW_B = "it-data-cross-A-pw", "it-data-cross-B-pw"


@pytest.fixture()
def pg_tenants():
    for name, password in ((PG_A, PW_A), (PG_B, PW_B)):
        result = run_module("postgres_tenant", {"name": name, "password": password})
        assert not result.failed, result
    yield
    for name in (PG_A, PG_B):
        run_module("postgres_tenant", {"name": name, "state": "absent"})


@pytest.fixture()
def my_tenants():
    for name, password in ((MY_A, PW_A), (MY_B, PW_B)):
        result = run_module("mysql_tenant", {"name": name, "password": password})
        assert not result.failed, result
    yield
    for name in (MY_A, MY_B):
        run_module("mysql_tenant", {"name": name, "state": "absent"})


@pytest.fixture()
def rd_tenants(platform_config):
    for name, password in ((RD_A, PW_A), (RD_B, PW_B)):
        result = run_module("redis_acl_user", {"name": name, "password": password, "key_prefix": name + ":"})
        assert not result.failed, result
    yield
    for name in (RD_A, RD_B):
        run_module("redis_acl_user", {"name": name, "key_prefix": name + ":", "state": "absent", "remove_keys": True})


def test_postgres_tenant_cannot_reach_other_database(platform_config, pg_tenants):
    assert pg_tenant(platform_config, "SELECT 1", PG_A, PW_A, PG_A).returncode == 0
    assert pg_tenant(platform_config, "SELECT 1", PG_B, PW_B, PG_B).returncode == 0
    probe = pg_tenant(platform_config, "SELECT 1", PG_A, PW_A, PG_B)
    assert probe.returncode != 0
    assert "permission denied for database" in probe.stderr, probe.stderr
    # nor with B's name and A's password
    assert pg_tenant(platform_config, "SELECT 1", PG_B, PW_A, PG_B).returncode != 0


def test_mysql_tenant_cannot_reach_other_database(platform_config, my_tenants):
    assert my_tenant(platform_config, "SELECT 1", MY_A, PW_A, MY_A).returncode == 0
    assert my_tenant(platform_config, "SELECT 1", MY_B, PW_B, MY_B).returncode == 0
    probe = my_tenant(platform_config, "SELECT 1", MY_A, PW_A, MY_B)
    assert probe.returncode != 0 and "Access denied" in probe.stderr, probe.stderr
    cross = my_tenant(platform_config, "SELECT count(*) FROM %s.t" % MY_B, MY_A, PW_A, MY_A)
    assert cross.returncode != 0 and "denied" in cross.stderr, cross.stderr
    listed = my_tenant(platform_config, "SHOW DATABASES", MY_A, PW_A)
    assert MY_B not in listed.stdout.split()
    assert my_tenant(platform_config, "SELECT 1", MY_B, PW_A, MY_B).returncode != 0


def test_redis_user_gets_noperm_outside_its_prefix(platform_config, rd_tenants):
    cfg = platform_config
    assert redis_tenant(cfg, RD_B, PW_B, "SET", RD_B + ":secret", "b") == "OK"
    assert redis_tenant(cfg, RD_A, PW_A, "SET", RD_A + ":mine", "a") == "OK"
    for command in (["GET", RD_B + ":secret"], ["SET", RD_B + ":secret", "x"], ["DEL", RD_B + ":secret"],
                    ["SCAN", "0"], ["SCAN", "0", "MATCH", RD_B + ":*"], ["KEYS", "*"], ["KEYS", RD_B + ":*"],
                    ["FLUSHALL"], ["FLUSHDB"], ["RANDOMKEY"], ["PUBLISH", RD_B + ":chan", "x"],
                    ["RENAME", RD_A + ":mine", RD_B + ":stolen"], ["COPY", RD_B + ":secret", RD_A + ":copy"]):
        out = redis_tenant(cfg, RD_A, PW_A, *command)
        assert "NOPERM" in out, (command, out)
    assert redis_admin(cfg, "GET", RD_B + ":secret") == "b"
    assert redis_tenant(cfg, RD_B, PW_B, "GET", RD_B + ":secret") == "b"
