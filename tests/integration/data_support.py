"""Independent clients for the data-tenant integration tests: psql, mariadb, redis-cli, a raw
memcached socket.  Passwords go through the environment (PGPASSWORD, MYSQL_PWD,
REDISCLI_AUTH), never on a command line.
"""
import json
import os
import socket
import subprocess

# ansible-core 2.19 has no ``json`` stdout callback; this driver has the same API as
# tests.support.ansible_module.run_module and prints through a test callback.
from tests.integration.lxd_support import run_module  # noqa: F401  (re-exported)


def assert_no_secret(result, *secrets):
    text = json.dumps(result)
    for secret in secrets:
        assert secret not in text, "a secret leaked into the module output"


def _env(**extra):
    env = dict(os.environ)
    env.update(extra)
    return env


# --- PostgreSQL -------------------------------------------------------------------------------
def psql(sql, user, password, host, port, dbname="postgres"):
    """Run ``sql`` with psql; return the CompletedProcess (stdout unaligned, tuples only)."""
    return subprocess.run(
        ["psql", "-X", "-h", host, "-p", str(port), "-U", user, "-d", dbname, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
        capture_output=True, text=True, timeout=60,
        env=_env(PGPASSWORD=password, PGCONNECT_TIMEOUT="10", PGSSLMODE="prefer"),
    )


def pg_admin(cfg, sql, dbname="postgres"):
    pg = cfg["postgres"]
    proc = psql(sql, pg["admin_user"], pg["admin_password"], pg["host"], pg["port"], dbname)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def pg_tenant(cfg, sql, user, password, dbname):
    pg = cfg["postgres"]
    return psql(sql, user, password, pg["tenant_host"], pg["port"], dbname)


# --- MariaDB ----------------------------------------------------------------------------------
def mariadb(sql, user, password, host, port, dbname=None):
    cmd = ["mariadb", "--protocol=TCP", "-h", host, "-P", str(port), "-u", user, "-N", "-B", "--raw",
           "--connect-timeout=10", "-e", sql]
    if dbname:
        cmd.append(dbname)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=_env(MYSQL_PWD=password))


def my_admin(cfg, sql):
    my = cfg["mysql"]
    proc = mariadb(sql, my["admin_user"], my["admin_password"], my["host"], my["port"])
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def my_tenant(cfg, sql, user, password, dbname=None):
    my = cfg["mysql"]
    return mariadb(sql, user, password, my["tenant_host"], my["port"], dbname)


# --- Redis ------------------------------------------------------------------------------------
def redis_cli(args, user, password, host, port):
    return subprocess.run(
        ["redis-cli", "-h", host, "-p", str(port), "--user", user, "--no-auth-warning"] + list(args),
        capture_output=True, text=True, timeout=60, env=_env(REDISCLI_AUTH=password),
    )


def redis_admin(cfg, *args):
    rd = cfg["redis"]
    proc = redis_cli(args, rd["admin_user"], rd["admin_password"], rd["host"], rd["port"])
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def redis_tenant(cfg, user, password, *args):
    rd = cfg["redis"]
    proc = redis_cli(args, user, password, rd["tenant_host"], rd["port"])
    return (proc.stdout + proc.stderr).strip()


# --- memcached --------------------------------------------------------------------------------
def memcached(host, port, payload, until=b"END\r\n", timeout=5):
    """Send ``payload`` and read until the reply ends with ``until``."""
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(payload)
        data = b""
        while not data.endswith(until):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data.decode("utf-8", "replace")


def memcached_stats(host, port):
    stats = {}
    for line in memcached(host, port, b"stats\r\n").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "STAT":
            stats[parts[1]] = parts[2]
    return stats


def port_open(host, port):
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        return True
    except OSError:
        return False
