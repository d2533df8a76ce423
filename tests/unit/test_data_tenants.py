"""Unit tests of the data-tenant modules: validation, SCRAM, ACL rules, query plans.

No services: the plans are pure functions; the argument_spec checks run through real
Ansible and fail before any connection is attempted.
"""
import base64
import hashlib
import hmac
import json

import pytest

from ansible_collections.lxdctl.platform.plugins.module_utils import _memcached, _mysql, _postgres, _redis
from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError, ValidationError

# ansible-core 2.19 has no json stdout callback; this driver (same API) prints through a test callback.
from tests.integration.lxd_support import run_module

BAD_NAMES = [
    "p_x;rm -rf /",
    "p_x$(id)",
    "p_x`id`",
    "p_x|cat",
    "p_x&&true",
    "../etc/passwd",
    "p_x/y",
    "P_MYAPP",
    "p_myApp",
    "p_" + "a" * 62,
    "",
    "1abc",
    "p x",
    "p-x",
    "p_x\n",
    "p'x",
    'p"x',
]


# --- names ----------------------------------------------------------------------------------
@pytest.mark.parametrize("value", BAD_NAMES)
def test_sql_identifiers_reject_bad_names(value):
    with pytest.raises(ValidationError):
        _postgres.identifier(value)
    with pytest.raises(ValidationError):
        _mysql.identifier(value)


@pytest.mark.parametrize("value", ["p_myapp", "p_my_app2", "p_" + "a" * 61, "x"])
def test_sql_identifiers_accept_good_names(value):
    assert _postgres.identifier(value) == value
    assert _mysql.identifier(value) == value


@pytest.mark.parametrize("value", ["postgres", "template1", "pg_monitor", "lxdctl_admin"])
def test_postgres_reserved_names(value):
    with pytest.raises(ValidationError, match="reserved"):
        _postgres.identifier(value)


@pytest.mark.parametrize("value", ["mysql", "information_schema", "performance_schema", "sys"])
def test_mysql_reserved_names(value):
    with pytest.raises(ValidationError, match="reserved"):
        _mysql.identifier(value)


@pytest.mark.parametrize("value", ["p-x;flushall", "P-X", "p x", "default", "a" * 65, "", "p-x\n", "../x", "p*"])
def test_redis_user_rejects(value):
    with pytest.raises(ValidationError):
        _redis.user_name(value)


@pytest.mark.parametrize("value", ["myapp", "my*app:", "my?:", "my[a]:", "a:b:", "A:", "a b:", ":", "a\n:", "a;:"])
def test_redis_prefix_rejects(value):
    with pytest.raises(ValidationError):
        _redis.key_prefix(value)


def test_redis_names_accept():
    assert _redis.user_name("p-myapp") == "p-myapp"
    assert _redis.key_prefix("myapp:") == "myapp:"
    assert _redis.key_prefix("my-app_2:") == "my-app_2:"


@pytest.mark.parametrize("value", ["%", "%.%.%.%", "10.77.0.1'; DROP USER x; --", "host.example.com", "10.77.0.%\n"])
def test_mysql_host_pattern_rejects(value):
    with pytest.raises(ValidationError):
        _mysql.host_pattern(value)


def test_mysql_host_pattern_from_subnet():
    assert _mysql.subnet_host_pattern("10.77.0.0/24") == "10.77.0.%"
    assert _mysql.subnet_host_pattern("10.77.0.0/16") == "10.77.%.%"
    assert _mysql.subnet_host_pattern("10.77.0.128/25") == "10.77.0.128/255.255.255.128"
    assert _mysql.host_pattern("10.77.0.%") == "10.77.0.%"
    assert _mysql.host_pattern("10.77.0.128/255.255.255.128")
    with pytest.raises(LxdctlError):
        _mysql.subnet_host_pattern("not-a-net")


# --- SCRAM ----------------------------------------------------------------------------------
def test_scram_keys_match_rfc7677_vector():
    """RFC 7677's exchange (user, pencil) verifies against our StoredKey/ServerKey."""
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    stored_key, server_key = _postgres._scram_keys("pencil", salt, 4096)
    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth = ("n=user,r=rOprNGfwEbeRWgbNEkqO,r=%s,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=%s" % (nonce, nonce)).encode()
    signature = hmac.new(server_key, auth, hashlib.sha256).digest()
    assert base64.b64encode(signature) == b"6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    proof = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    client_key = bytes(a ^ b for a, b in zip(proof, hmac.new(stored_key, auth, hashlib.sha256).digest()))
    assert hashlib.sha256(client_key).digest() == stored_key


def test_scram_verifier_comparison():
    verifier = _postgres.scram_verifier("s3cret pass")
    assert verifier.startswith("SCRAM-SHA-256$4096:")
    assert _postgres.scram_matches(verifier, "s3cret pass")
    assert not _postgres.scram_matches(verifier, "s3cret pasS")
    assert not _postgres.scram_matches(verifier, None)
    # a verifier with another salt and iteration count is recomputed with its own
    other = _postgres.scram_verifier("s3cret pass", salt=b"0123456789abcdef", iterations=10000)
    assert other != verifier and other.startswith("SCRAM-SHA-256$10000:")
    assert _postgres.scram_matches(other, "s3cret pass")
    assert not _postgres.scram_matches("md5" + hashlib.md5(b"s3cret passp_x").hexdigest(), "s3cret pass")
    assert not _postgres.scram_matches("SCRAM-SHA-256$4096:!!$x:y", "s3cret pass")
    assert not _postgres.scram_matches(None, "x")


def test_scram_unicode_password_roundtrip():
    verifier = _postgres.scram_verifier(u"p\u00e4ss\u00a0w\u00f6rd")
    assert _postgres.scram_matches(verifier, u"p\u00e4ss\u00a0w\u00f6rd")
    assert not _postgres.scram_matches(verifier, u"pass word")


# --- PostgreSQL plans -----------------------------------------------------------------------
SECRET = "Very$ecret'pw;--"
GOOD_ROLE = dict(login=True, superuser=False, createdb=False, createrole=False, replication=False,
                 bypassrls=False, inherit=True, connection_limit=20, password=None)
GOOD_DB = dict(owner="p_x", public_connect=False, public_temporary=False, owner_connect=True)


def shown(statements):
    return [stmt.display() for stmt in statements]


def test_postgres_plan_create():
    statements, password_set = _postgres.plan_present("p_x", "p_x", SECRET, 20, False, None, None)
    assert password_set
    assert shown(statements) == [
        'CREATE ROLE "p_x" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT '
        "CONNECTION LIMIT 20 PASSWORD '********'",
        'CREATE DATABASE "p_x" OWNER "p_x"',
        'REVOKE CONNECT, TEMPORARY ON DATABASE "p_x" FROM PUBLIC',
        'GRANT CONNECT ON DATABASE "p_x" TO "p_x"',
    ]
    assert [stmt.transactional for stmt in statements] == [True, False, True, True]
    assert SECRET not in json.dumps(shown(statements))
    # the executed verifier is a SCRAM verifier of the password, not the password
    verifier = statements[0].params["password"][1]
    assert _postgres.scram_matches(verifier, SECRET) and SECRET not in verifier


def test_postgres_plan_unchanged_and_rotation():
    role = dict(GOOD_ROLE, password=_postgres.scram_verifier(SECRET))
    assert _postgres.plan_present("p_x", "p_x", SECRET, 20, False, role, GOOD_DB) == ([], False)
    assert _postgres.plan_present("p_x", "p_x", SECRET, 20, True, role, GOOD_DB) == ([], False)
    # without rotate_password, another password leaves the role alone
    assert _postgres.plan_present("p_x", "p_x", "other", 20, False, role, GOOD_DB) == ([], False)
    statements, password_set = _postgres.plan_present("p_x", "p_x", "other", 20, True, role, GOOD_DB)
    assert password_set and shown(statements) == ["ALTER ROLE \"p_x\" WITH PASSWORD '********'"]


def test_postgres_plan_sets_a_missing_password():
    statements, password_set = _postgres.plan_present("p_x", "p_x", SECRET, 20, False, GOOD_ROLE, GOOD_DB)
    assert password_set and shown(statements) == ["ALTER ROLE \"p_x\" WITH PASSWORD '********'"]


def test_postgres_plan_fixes_drift():
    role = dict(GOOD_ROLE, createdb=True, connection_limit=5, password=_postgres.scram_verifier(SECRET))
    db = dict(GOOD_DB, owner="postgres", public_connect=True)
    statements, _ = _postgres.plan_present("p_x", "p_x", SECRET, 20, False, role, db)
    assert shown(statements) == [
        'ALTER ROLE "p_x" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT '
        "CONNECTION LIMIT 20",
        'ALTER DATABASE "p_x" OWNER TO "p_x"',
        'REVOKE CONNECT, TEMPORARY ON DATABASE "p_x" FROM PUBLIC',
        'GRANT CONNECT ON DATABASE "p_x" TO "p_x"',
    ]


def test_postgres_plan_absent():
    assert _postgres.plan_absent("p_x", "p_x", None, None) == []
    statements = _postgres.plan_absent("p_x", "p_x", GOOD_ROLE, GOOD_DB)
    assert shown(statements) == [
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE (datname = 'p_x' OR usename = 'p_x') "
        "AND pid <> pg_backend_pid()",
        'DROP DATABASE IF EXISTS "p_x" WITH (FORCE)',
        'DROP ROLE IF EXISTS "p_x"',
    ]
    assert [stmt.transactional for stmt in statements] == [False, False, True]


def test_postgres_diff_views():
    assert _postgres.state_view("p_x", "p_x", None, None)["database"] is None
    desired = _postgres.desired_view("p_x", "p_x", 20, "present")
    current = _postgres.state_view("p_x", "p_x", GOOD_ROLE, GOOD_DB)
    assert desired == current
    assert "password" not in json.dumps(current)


# --- MariaDB plans --------------------------------------------------------------------------
def test_mysql_native_hash_vector():
    assert _mysql.native_password_hash("password") == "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
    assert _mysql.password_matches("mysql_native_password", "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19", "password")
    assert not _mysql.password_matches("mysql_native_password", "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19", "Password")
    assert not _mysql.password_matches("ed25519", "whatever", "password")


def test_mysql_grant_escapes_wildcards():
    """``p_a_b`` in a GRANT would also match ``p_aab`` (another project's database)."""
    assert _mysql.grant_db_pattern("p_a_b") == "`p\\_a\\_b`"
    assert _mysql.grant_all("p_a_b", "p_a_b", "10.77.0.%").display() == (
        "GRANT ALL PRIVILEGES ON `p\\_a\\_b`.* TO 'p_a_b'@'10.77.0.%'")


def test_mysql_plan_create_and_unchanged():
    statements, password_set = _mysql.plan_present("p_x", "p_x", "10.77.0.%", SECRET, 20, False, None, False, False)
    assert password_set
    assert shown(statements) == [
        "CREATE USER 'p_x'@'10.77.0.%' IDENTIFIED BY PASSWORD '********' WITH MAX_USER_CONNECTIONS 20",
        "CREATE DATABASE `p_x` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
        "GRANT ALL PRIVILEGES ON `p\\_x`.* TO 'p_x'@'10.77.0.%'",
    ]
    assert statements[0].args[2] == _mysql.native_password_hash(SECRET)
    assert SECRET not in json.dumps(shown(statements))
    account = {"plugin": "mysql_native_password", "auth": _mysql.native_password_hash(SECRET), "max_user_connections": 20}
    assert _mysql.plan_present("p_x", "p_x", "10.77.0.%", SECRET, 20, True, account, True, True) == ([], False)
    statements, password_set = _mysql.plan_present("p_x", "p_x", "10.77.0.%", "new", 5, True, account, True, True)
    assert password_set and shown(statements) == [
        "ALTER USER 'p_x'@'10.77.0.%' WITH MAX_USER_CONNECTIONS 5",
        "ALTER USER 'p_x'@'10.77.0.%' IDENTIFIED BY PASSWORD '********'",
    ]


def test_mysql_plan_revokes_extra_privileges():
    account = {"plugin": "mysql_native_password", "auth": _mysql.native_password_hash(SECRET),
               "max_user_connections": 20, "extra_privileges": True}
    statements, _ = _mysql.plan_present("p_x", "p_x", "10.77.0.%", SECRET, 20, False, account, True, True)
    assert shown(statements) == [
        "REVOKE ALL PRIVILEGES, GRANT OPTION FROM 'p_x'@'10.77.0.%'",
        "GRANT ALL PRIVILEGES ON `p\\_x`.* TO 'p_x'@'10.77.0.%'",
    ]


def test_mysql_plan_absent():
    account = {"plugin": "mysql_native_password", "auth": "*X", "max_user_connections": 20}
    assert _mysql.plan_absent("p_x", "p_x", "10.77.0.%", None, False, []) == []
    assert shown(_mysql.plan_absent("p_x", "p_x", "10.77.0.%", account, True, [7, 9])) == [
        "KILL CONNECTION 7", "KILL CONNECTION 9", "DROP DATABASE IF EXISTS `p_x`", "DROP USER IF EXISTS 'p_x'@'10.77.0.%'",
    ]


# --- Redis ACL ------------------------------------------------------------------------------
def test_redis_acl_rules():
    digest = _redis.password_hash(SECRET)
    rules = _redis.acl_rules("myapp:", [digest])
    assert rules[:3] == ["reset", "on", "#" + digest]
    assert "~myapp:*" in rules and "&myapp:*" in rules
    for denied in ("-@dangerous", "-keys", "-scan", "-randomkey", "-flushall", "-flushdb", "-config", "-acl"):
        assert denied in rules
    assert rules.index("+@all") < rules.index("-@dangerous")
    assert not any(rule.startswith(">") for rule in rules)  # never the clear password
    masked = _redis.display_rules(rules)
    assert digest not in " ".join(masked) and "#********" in masked
    with pytest.raises(ValidationError):
        _redis.acl_rules("my*:", [digest])


def _getuser(prefix, digests, commands=None, flags=("on", "sanitize-payload")):
    return _redis.parse_getuser([
        b"flags", [f.encode() for f in flags],
        b"passwords", [d.encode() for d in digests],
        b"commands", (commands or " ".join(_redis.COMMAND_RULES)).encode(),
        b"keys", ("~%s*" % prefix).encode(),
        b"channels", ("&%s*" % prefix).encode(),
        b"selectors", [],
    ])


def test_redis_user_comparison():
    digest = _redis.password_hash(SECRET)
    assert _redis.user_matches(_getuser("myapp:", [digest]), "myapp:", [digest])
    assert not _redis.user_matches(None, "myapp:", [digest])
    assert not _redis.user_matches(_getuser("myapp:", [digest]), "other:", [digest])
    assert not _redis.user_matches(_getuser("myapp:", [digest]), "myapp:", [_redis.password_hash("new")])
    assert not _redis.user_matches(_getuser("myapp:", [digest], commands="+@all"), "myapp:", [digest])
    assert not _redis.user_matches(_getuser("myapp:", [digest], flags=("off",)), "myapp:", [digest])
    # the server's own rendering of the rules is what an existing user is compared with
    rendered = "+@all -@dangerous -@scripting +evalsha -scan -keys"
    assert _redis.user_matches(_getuser("myapp:", [digest], commands=rendered), "myapp:", [digest], rendered)
    assert not _redis.user_matches(_getuser("myapp:", [digest], commands=rendered + " +keys"), "myapp:", [digest],
                                   rendered)
    reordered = "+@all -@dangerous -@scripting -keys -scan +evalsha"
    assert _redis.user_matches(_getuser("myapp:", [digest], commands=reordered), "myapp:", [digest], rendered)
    swapped = "+@all -@scripting -@dangerous +evalsha -scan -keys"
    assert not _redis.user_matches(_getuser("myapp:", [digest], commands=swapped), "myapp:", [digest], rendered)
    assert not _redis.user_matches(_getuser("myapp:", [digest], flags=("on", "nopass")), "myapp:", [digest])


# --- memcached ------------------------------------------------------------------------------
def test_memcached_port_allocation_is_stable(tmp_path):
    busy = {21000}
    free = lambda host, port: port not in busy  # noqa: E731
    with _memcached.Registry(str(tmp_path)) as reg:
        assert _memcached.allocate_port(reg.data, (21000, 21003), "10.77.0.1", "a", free) == 21001
        reg.data["a"] = {"port": 21001, "memory_mb": 64, "listen": "10.77.0.1"}
        assert _memcached.allocate_port(reg.data, (21000, 21003), "10.77.0.1", "b", free) == 21002
        reg.save()
    with _memcached.Registry(str(tmp_path)) as reg:
        assert reg.data["a"]["port"] == 21001
        reg.data["b"] = {"port": 21002}
        reg.data["c"] = {"port": 21003}
        with pytest.raises(LxdctlError, match="No free memcached port"):
            _memcached.allocate_port(reg.data, (21000, 21003), "10.77.0.1", "d", free)


def test_memcached_argv():
    assert _memcached.argv("/usr/bin/memcached", "10.77.0.1", 21001, 64) == [
        "/usr/bin/memcached", "-l", "10.77.0.1", "-p", "21001", "-U", "0", "-m", "64", "-c", "1024"]


# --- argument_spec through real Ansible: rejected before anything connects -------------------
@pytest.mark.parametrize("module,args,message", [
    ("postgres_tenant", {"name": "p_x;DROP DATABASE postgres", "password": SECRET}, "lowercase letters"),
    ("postgres_tenant", {"name": "P_X", "password": SECRET}, "lowercase letters"),
    ("postgres_tenant", {"name": "p_" + "a" * 70, "password": SECRET}, "lowercase letters"),
    ("postgres_tenant", {"name": "p_x"}, "password"),
    ("mysql_tenant", {"name": "p_x`; DROP DATABASE mysql; --", "password": SECRET}, "lowercase letters"),
    ("mysql_tenant", {"name": "p_x", "password": SECRET, "tenant_host_pattern": "%"}, "not all hosts"),
    ("redis_acl_user", {"name": "p-x", "password": SECRET, "key_prefix": "*"}, "ending in one"),
    ("redis_acl_user", {"name": "../p-x", "password": SECRET}, "lowercase letters"),
    ("memcached_instance", {"name": "My-App$(id)"}, "lowercase letters"),
    # Checked in main() before anything connects (module_utils/_service.py run_service).
    ("postgres_tenant", {"name": "p_x", "password": ""}, "password: must not be empty"),
    ("mysql_tenant", {"name": "p_x", "password": ""}, "password: must not be empty"),
    ("redis_acl_user", {"name": "p-x", "password": ""}, "password: must not be empty"),
    ("postgres_tenant", {"name": "p_x", "password": SECRET, "connection_limit": 0}, "connection_limit: must be"),
    ("mysql_tenant", {"name": "p_x", "password": SECRET, "connection_limit": 0}, "connection_limit: must be"),
    ("memcached_instance", {"name": "rough-x", "memory_mb": 0}, "memory_mb: must be from 1 to 65536"),
])
def test_argument_spec_rejects(module, args, message):
    result = run_module(module, args, env={"LXDCTL_CONFIG": "/nonexistent/platform.json"})
    assert result.failed, result
    assert message in result["msg"], result["msg"]
    assert SECRET not in json.dumps(result)
