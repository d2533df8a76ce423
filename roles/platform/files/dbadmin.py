#!/usr/bin/env python3
"""Ensure the lxdctl admin accounts of PostgreSQL and MariaDB (role platform).

Input: JSON in the environment variable LXDCTL_DBADMIN (ports, user names and the path of
the root-only credentials file; the passwords themselves are read from that file, so they
appear on no command line and in no environment).  Output: {"changed": bool, "actions": [...]}
on stdout; no secret is ever printed.  A password is
only set when logging in with it over TCP fails, so reruns change nothing.

PostgreSQL: the role is created or fixed over the local socket as the OS user postgres
(peer authentication).  MariaDB: as root over the unix socket (unix_socket authentication).
"""
import json
import os
import pwd
import sys


def _pg_login_ok(cfg):
    import psycopg2

    try:
        conn = psycopg2.connect(host="127.0.0.1", port=cfg["port"], user=cfg["user"], password=cfg["password"],
                                dbname="postgres", connect_timeout=5)
    except psycopg2.OperationalError:
        return False
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            row = cur.fetchone()
            return bool(row and row[0])
    finally:
        conn.close()


def _pg_fix(cfg):
    """Runs in a child that became the postgres user."""
    import psycopg2
    from psycopg2 import sql

    conn = psycopg2.connect(host=cfg.get("socket_dir", "/var/run/postgresql"), port=cfg["port"], dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SET password_encryption = 'scram-sha-256'")
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (cfg["user"],))
        verb = "ALTER" if cur.fetchone() else "CREATE"
        cur.execute(sql.SQL(verb + " ROLE {} WITH LOGIN SUPERUSER CREATEDB CREATEROLE PASSWORD %s").format(
            sql.Identifier(cfg["user"])), (cfg["password"],))
    conn.close()
    return verb.lower()


def ensure_postgres(cfg, actions):
    if _pg_login_ok(cfg):
        return False
    entry = pwd.getpwnam(cfg.get("os_user", "postgres"))
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        code = 0
        try:
            os.setgid(entry.pw_gid)
            os.initgroups(entry.pw_name, entry.pw_gid)
            os.setuid(entry.pw_uid)
            os.write(write_fd, _pg_fix(cfg).encode())
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            os.write(write_fd, ("error: %s" % str(exc).replace(cfg["password"], "***")).encode())
            code = 1
        finally:
            os.close(write_fd)
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd) as handle:
        message = handle.read()
    _, status = os.waitpid(pid, 0)
    if status != 0 or message.startswith("error"):
        raise RuntimeError("PostgreSQL admin role %s: %s" % (cfg["user"], message))
    if not _pg_login_ok(cfg):
        raise RuntimeError("PostgreSQL admin role %s was set but cannot log in over TCP 127.0.0.1:%s; check "
                           "pg_hba.conf" % (cfg["user"], cfg["port"]))
    actions.append("postgres: %s role %s" % (message, cfg["user"]))
    return True


def _my_login_ok(cfg, host):
    import pymysql

    try:
        if host == "localhost":
            conn = pymysql.connect(unix_socket=cfg["socket"], user=cfg["user"], password=cfg["password"],
                                   connect_timeout=5)
        else:
            conn = pymysql.connect(host=host, port=cfg["port"], user=cfg["user"], password=cfg["password"],
                                   connect_timeout=5)
    except pymysql.err.OperationalError:
        return False
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT Grant_priv, Super_priv FROM mysql.user WHERE User = %s AND Host = %s",
                        (cfg["user"], host))
            row = cur.fetchone()
            return bool(row and row[0] == "Y" and row[1] == "Y")
    except pymysql.err.MySQLError:
        return False
    finally:
        conn.close()


def ensure_mysql(cfg, actions):
    import pymysql

    hosts = [h for h in ("127.0.0.1", "localhost") if not _my_login_ok(cfg, h)]
    if not hosts:
        return False
    conn = pymysql.connect(unix_socket=cfg["socket"], user="root", connect_timeout=10)
    try:
        with conn.cursor() as cur:
            for host in hosts:
                cur.execute("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", (cfg["user"], host, cfg["password"]))
                cur.execute("ALTER USER %s@%s IDENTIFIED BY %s", (cfg["user"], host, cfg["password"]))
                cur.execute("GRANT ALL PRIVILEGES ON *.* TO %s@%s WITH GRANT OPTION", (cfg["user"], host))
                actions.append("mysql: set user %s@%s" % (cfg["user"], host))
        conn.commit()
    finally:
        conn.close()
    return True


def main():
    spec = json.loads(os.environ.get("LXDCTL_DBADMIN") or "{}")
    with open(spec.pop("secrets_file")) as handle:
        secrets = json.load(handle)
    for name in ("postgres", "mysql"):
        if spec.get(name):
            spec[name]["password"] = secrets["%s_admin_password" % name]
    actions = []
    changed = False
    try:
        if spec.get("postgres"):
            changed = ensure_postgres(spec["postgres"], actions) or changed
        if spec.get("mysql"):
            changed = ensure_mysql(spec["mysql"], actions) or changed
    except Exception as exc:  # noqa: BLE001 - one readable line for the task's failure message
        text = str(exc)
        for cfg in spec.values():
            if isinstance(cfg, dict) and cfg.get("password"):
                text = text.replace(cfg["password"], "***")
        json.dump({"changed": changed, "actions": actions, "error": text}, sys.stdout)
        return 1
    json.dump({"changed": changed, "actions": actions}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
