# -*- coding: utf-8 -*-
"""The MariaDB client wrapper (PyMySQL).  ``mysql_tenant`` goes through here.

Values (user names, hosts, password hashes, numbers) are always passed as query
parameters.  MariaDB cannot take identifiers as parameters, so database names are
validated against a strict rule (lowercase letters, digits, underscores) and then quoted
with backticks; in GRANT statements their ``_`` is escaped, because MariaDB reads ``_`` and
``%`` in a database-level GRANT as wildcards (``p_a_b`` would also match ``p_aab``).

Passwords are sent as their ``mysql_native_password`` hash (``IDENTIFIED BY PASSWORD``),
never in clear text.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import hmac
import ipaddress
import re

from ansible.module_utils.basic import env_fallback

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError, ValidationError
from ansible_collections.lxdctl.platform.plugins.module_utils import _names, _platform_config

try:
    import pymysql

    HAS_PYMYSQL = True
    PYMYSQL_IMPORT_ERROR = None
except ImportError as exc:  # reported by require_pymysql()
    HAS_PYMYSQL = False
    PYMYSQL_IMPORT_ERROR = exc

MASK = "********"

CONNECTION_ARGSPEC = dict(
    mysql_host=dict(type="str", fallback=(env_fallback, ["LXDCTL_MYSQL_HOST"])),
    mysql_port=dict(type="int", fallback=(env_fallback, ["LXDCTL_MYSQL_PORT"])),
    mysql_admin_user=dict(type="str", fallback=(env_fallback, ["LXDCTL_MYSQL_ADMIN_USER"])),
    mysql_admin_password=dict(type="str", no_log=True, fallback=(env_fallback, ["LXDCTL_MYSQL_ADMIN_PASSWORD"])),
)

_CONFIG_MAPPING = {
    "mysql_host": "host",
    "mysql_port": "port",
    "mysql_admin_user": "admin_user",
    "mysql_admin_password": "admin_password",
}

# --- names: the identifier rule itself lives in _names (one rule everywhere) --------------
IDENTIFIER_RULE = _names.SQL_NAME_RULE
_HOST_PATTERN_RE = re.compile(r"^(?:(?:[0-9%]{1,3}\.){3}[0-9%]{1,3}(?:/(?:[0-9]{1,3}\.){3}[0-9]{1,3})?|localhost)\Z")


def identifier(value, field="name"):
    return _names.sql_name(value, field, "mysql")


def argspec_identifier(value):
    return identifier(value)


argspec_identifier.__name__ = "identifier"


def host_pattern(value, field="tenant_host_pattern"):
    """A MariaDB account host: an IPv4 address with ``%`` octets, ``addr/netmask``, or localhost."""
    if not isinstance(value, str) or not _HOST_PATTERN_RE.match(value) or value in ("%", "%.%.%.%"):
        raise ValidationError(
            field, "must be an IPv4 pattern such as 10.77.0.% or 10.77.0.0/255.255.255.0 (not all hosts)", value
        )
    return value


def argspec_host_pattern(value):
    return host_pattern(value)


argspec_host_pattern.__name__ = "host_pattern"


def subnet_host_pattern(subnet):
    """``10.77.0.0/24`` -> ``10.77.0.%``; other prefixes -> ``addr/netmask``."""
    try:
        net = ipaddress.IPv4Network(subnet, strict=False)
    except (ValueError, TypeError):
        raise LxdctlError("The platform subnet %r is not an IPv4 network" % (subnet,))
    if net.prefixlen in (8, 16, 24):
        octets = str(net.network_address).split(".")[: net.prefixlen // 8]
        return ".".join(octets + ["%"] * (4 - len(octets)))
    if net.prefixlen == 32:
        return str(net.network_address)
    return "%s/%s" % (net.network_address, net.netmask)


def quote_ident(name):
    return "`%s`" % identifier(name, "database").replace("`", "``")


def grant_db_pattern(name):
    """The database in a GRANT, with LIKE wildcards escaped."""
    return "`%s`" % identifier(name, "database").replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")


# --- password hashes ------------------------------------------------------------------------
def native_password_hash(password):
    """``*`` + upper hex SHA1(SHA1(password)), as mysql_native_password stores it."""
    return "*" + hashlib.sha1(hashlib.sha1(password.encode("utf-8")).digest()).hexdigest().upper()


def password_matches(plugin, auth_string, password):
    if plugin not in ("mysql_native_password", "") or not auth_string or password is None:
        return False
    return hmac.compare_digest(auth_string.upper(), native_password_hash(password))


# --- statements -----------------------------------------------------------------------------
class Statement(object):
    """``sql`` with ``%s`` placeholders and ``args``; ``secret`` marks args shown masked."""

    def __init__(self, sql, args=(), secret=()):
        self.sql = sql
        self.args = tuple(args)
        self.secret = frozenset(secret)

    def display(self):
        shown = []
        for index, arg in enumerate(self.args):
            if index in self.secret:
                shown.append("'%s'" % MASK)
            elif isinstance(arg, int) and not isinstance(arg, bool):
                shown.append(str(arg))
            else:
                shown.append("'%s'" % str(arg).replace("\\", "\\\\").replace("'", "\\'"))
        return self.sql % tuple(shown) if shown else self.sql.replace("%%", "%")

    def __repr__(self):
        return "Statement(%r)" % self.display()


def create_user(user, host, password, limit):
    return Statement("CREATE USER %s@%s IDENTIFIED BY PASSWORD %s WITH MAX_USER_CONNECTIONS %s",
                     (user, host, native_password_hash(password), int(limit)), secret=(2,))


def alter_user_limit(user, host, limit):
    return Statement("ALTER USER %s@%s WITH MAX_USER_CONNECTIONS %s", (user, host, int(limit)))


def alter_user_password(user, host, password):
    return Statement("ALTER USER %s@%s IDENTIFIED BY PASSWORD %s", (user, host, native_password_hash(password)),
                     secret=(2,))


def create_database(database):
    return Statement("CREATE DATABASE %s CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci" % quote_ident(database))


def grant_all(database, user, host):
    return Statement("GRANT ALL PRIVILEGES ON %s.* TO %%s@%%s" % grant_db_pattern(database), (user, host))


def revoke_all(user, host):
    return Statement("REVOKE ALL PRIVILEGES, GRANT OPTION FROM %s@%s", (user, host))


def kill_connection(thread_id):
    return Statement("KILL CONNECTION %s", (int(thread_id),))


def drop_database(database):
    return Statement("DROP DATABASE IF EXISTS %s" % quote_ident(database))


def drop_user(user, host):
    return Statement("DROP USER IF EXISTS %s@%s", (user, host))


# --- restore: a fixed scratch database, swapped in by one RENAME TABLE ----------------------------
def restore_names(database):
    """The scratch databases of a restore of ``database``: ``(work, old)``.

    Fixed names, never random ones: a killed restore leaves at most these two, and the next
    restore drops them first.  Derived tenant names never hold two underscores in a row, so
    these are no other tenant's database (and reconcile never takes them for a project's)."""
    return ("%s__restoring" % database[:50], "%s__replaced" % database[:50])


def swap_tables(database, work, old, current_tables, restored_tables):
    """One ``RENAME TABLE`` that moves every table of ``database`` to ``old`` and every table of
    ``work`` into ``database``.  MariaDB runs a multi-table rename atomically (and, since 10.6,
    crash-safely): either all of them move or none does, so a failed or killed swap leaves
    ``database`` exactly as it was.  ``None`` when there is nothing to move."""
    pairs = ([(database, t, old, t) for t in sorted(current_tables)]
             + [(work, t, database, t) for t in sorted(restored_tables)])
    if not pairs:
        return None
    return Statement("RENAME TABLE " + ", ".join(
        "%s.%s TO %s.%s" % (quote_ident(a), quote_table(t), quote_ident(b), quote_table(u)) for a, t, b, u in pairs))


def quote_table(name):
    """A table name (as the server listed it) as one quoted identifier."""
    if not isinstance(name, str) or not name or len(name) > 64 or "\x00" in name:
        raise LxdctlError("table name %r cannot be quoted" % (name,))
    return "`%s`" % name.replace("`", "``")


def lock_wait_timeout(seconds):
    """For this session: how long DDL waits for other sessions' locks before it fails."""
    return Statement("SET SESSION lock_wait_timeout = %s", (int(seconds),))


# The privileges ``GRANT ALL PRIVILEGES ON db.*`` gives (mysql.db columns), GRANT OPTION aside.
DB_PRIVILEGE_COLUMNS = (
    "Select_priv", "Insert_priv", "Update_priv", "Delete_priv", "Create_priv", "Drop_priv",
    "References_priv", "Index_priv", "Alter_priv", "Create_tmp_table_priv", "Lock_tables_priv",
    "Create_view_priv", "Show_view_priv", "Create_routine_priv", "Alter_routine_priv",
    "Execute_priv", "Event_priv", "Trigger_priv",
)


def plan_present(database, user, host, password, limit, rotate_password, account, db_exists, has_grant):
    """Statements for the tenant state; returns ``(statements, password_set)``."""
    statements = []
    password_set = False
    if account is None:
        statements.append(create_user(user, host, password, limit))
        password_set = True
    else:
        if account.get("max_user_connections") != limit:
            statements.append(alter_user_limit(user, host, limit))
        if (rotate_password or not account.get("auth")) and not password_matches(
                account.get("plugin"), account.get("auth"), password):
            statements.append(alter_user_password(user, host, password))
            password_set = True
    extra = account is not None and account.get("extra_privileges")
    if extra:
        statements.append(revoke_all(user, host))  # privileges beyond its database, added by hand
    if not db_exists:
        statements.append(create_database(database))
    if account is None or not has_grant or extra:
        statements.append(grant_all(database, user, host))
    return statements, password_set


def plan_absent(database, user, host, account, db_exists, sessions):
    statements = [kill_connection(thread_id) for thread_id in sessions]
    if db_exists:
        statements.append(drop_database(database))
    if account is not None:
        statements.append(drop_user(user, host))
    return statements


def state_view(database, user, host, account, db_exists, has_grant):
    return {
        "database": database if db_exists else None,
        "user": "%s@%s" % (user, host) if account is not None else None,
        "max_user_connections": account.get("max_user_connections") if account else None,
        "grant": ("ALL ON %s.*" % database if has_grant else None) if not (account or {}).get("extra_privileges")
        else "ALL ON %s.* and more" % database,
    }


def desired_view(database, user, host, limit, state):
    if state == "absent":
        return state_view(database, user, host, None, False, False)
    return {"database": database, "user": "%s@%s" % (user, host), "max_user_connections": limit,
            "grant": "ALL ON %s.*" % database}


# --- the client -------------------------------------------------------------------------------
def require_pymysql():
    if not HAS_PYMYSQL:
        raise LxdctlError("The PyMySQL Python library is required on the managed host: %s" % PYMYSQL_IMPORT_ERROR)


def resolve(params):
    resolved = _platform_config.resolve(params, "mysql", _CONFIG_MAPPING)
    section = _platform_config.section("mysql")
    resolved["mysql_host"] = resolved.get("mysql_host") or "127.0.0.1"
    resolved["mysql_port"] = int(resolved.get("mysql_port") or 3306)
    resolved["mysql_admin_user"] = resolved.get("mysql_admin_user") or "root"
    resolved["tenant_host"] = section.get("tenant_host") or resolved["mysql_host"]
    return resolved


def default_host_pattern():
    subnet = _platform_config.section("lxd").get("subnet")
    if not subnet:
        raise LxdctlError("tenant_host_pattern: not given, and the platform configuration has no lxd.subnet")
    return subnet_host_pattern(subnet)


class MariaDB(object):
    """An admin connection to the platform's MariaDB (autocommit)."""

    def __init__(self, params):
        require_pymysql()
        self.params = resolve(params)
        self.host = self.params["mysql_host"]
        self.port = self.params["mysql_port"]
        self.tenant_host = self.params["tenant_host"]
        where = "%s@%s:%s" % (self.params["mysql_admin_user"], self.host, self.port)
        try:
            self.conn = pymysql.connect(
                host=self.host, port=self.port, user=self.params["mysql_admin_user"],
                password=self.params.get("mysql_admin_password") or "", autocommit=True,
                connect_timeout=10, charset="utf8mb4",
            )
        except pymysql.MySQLError as exc:
            raise LxdctlError("Failed to connect to MariaDB as %s: %s" % (where, _my_message(exc)))

    def close(self):
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass

    def _query(self, context, query, args=()):
        try:
            with self.conn.cursor() as cur:
                cur.execute(query, args)
                return cur.fetchall()
        except pymysql.MySQLError as exc:
            raise LxdctlError("%s: %s" % (context, _my_message(exc)))

    def get_account(self, user, host):
        rows = self._query(
            "Failed to read account %s@%s" % (user, host),
            "SELECT plugin, authentication_string, max_user_connections FROM mysql.user WHERE User = %s AND Host = %s",
            (user, host),
        )
        if not rows:
            return None
        plugin, auth, limit = rows[0]
        return {"plugin": _text(plugin), "auth": _text(auth), "max_user_connections": int(limit)}

    def extra_privileges(self, database, user, host):
        """True when the account has any grant but USAGE and ALL on its one database."""
        rows = self._query("Failed to read the grants of %s@%s" % (user, host), "SHOW GRANTS FOR %s@%s", (user, host))
        own = "GRANT ALL PRIVILEGES ON %s.* TO " % grant_db_pattern(database)
        for (line,) in rows:
            line = _text(line)
            if "GRANT OPTION" in line:
                return True
            if line.startswith("GRANT USAGE ON *.* TO ") or line.startswith(own):
                continue
            return True
        return False

    def database_exists(self, name):
        rows = self._query("Failed to read database %s" % name,
                           "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,))
        return bool(rows)

    def has_grant(self, database, user, host):
        pattern = grant_db_pattern(database)[1:-1]
        rows = self._query(
            "Failed to read the grants of %s@%s" % (user, host),
            "SELECT %s FROM mysql.db WHERE User = %%s AND Host = %%s AND Db = %%s" % ", ".join(DB_PRIVILEGE_COLUMNS),
            (user, host, pattern),
        )
        return bool(rows) and all(_text(value) == "Y" for value in rows[0])

    def schema_objects(self, database):
        """What ``database`` holds, by kind: ``tables`` (base tables) and the objects a
        ``RENAME TABLE`` cannot move to another database (``views``, ``triggers``,
        ``routines``, ``events``)."""
        context = "Failed to list the objects of database %s" % database
        queries = (
            ("tables", "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                       "AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED', 'SEQUENCE')"),
            ("views", "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = %s"),
            ("triggers", "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s"),
            ("routines", "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s"),
            ("events", "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = %s"),
        )
        return dict((kind, sorted(_text(row[0]) for row in self._query(context, sql, (database,))))
                    for kind, sql in queries)

    def sessions(self, user):
        rows = self._query("Failed to list the sessions of %s" % user,
                           "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s AND ID <> CONNECTION_ID()",
                           (user,))
        return sorted(int(row[0]) for row in rows)

    def execute(self, statements, check_mode=False):
        shown = [stmt.display() for stmt in statements]
        if check_mode:
            return shown
        with self.conn.cursor() as cur:
            for stmt in statements:
                try:
                    cur.execute(stmt.sql, stmt.args or None)
                except pymysql.MySQLError as exc:
                    code = exc.args[0] if exc.args else None
                    if stmt.sql.startswith("KILL") and code == 1094:  # the session ended meanwhile
                        continue
                    raise LxdctlError("Failed to run %s: %s" % (stmt.display(), _my_message(exc)))
        return shown


def _text(value):
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    return value if value is not None else ""


def _my_message(exc):
    if getattr(exc, "args", None) and len(exc.args) >= 2:
        return "(%s) %s" % (exc.args[0], exc.args[1])
    return str(exc) or type(exc).__name__


def list_names(client, prefix):
    """The databases and accounts (user, host) whose names start with ``prefix`` (reconcile)."""
    databases = client._query(
        "Failed to list the databases named %s*" % prefix,
        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE LEFT(SCHEMA_NAME, %s) = %s ORDER BY SCHEMA_NAME",
        (len(prefix), prefix),
    )
    accounts = client._query(
        "Failed to list the accounts named %s*" % prefix,
        "SELECT User, Host FROM mysql.user WHERE LEFT(User, %s) = %s ORDER BY User, Host",
        (len(prefix), prefix),
    )
    return [_text(name) for (name,) in databases], [{"name": _text(user), "host": _text(host)} for user, host in accounts]
