# -*- coding: utf-8 -*-
"""The PostgreSQL client wrapper (psycopg2).  ``postgres_tenant`` goes through here.

Statements are built as :class:`Statement` objects: a template with ``{name}`` slots and
typed parameters (identifiers, literals, secrets).  They are executed through
``psycopg2.sql`` composition, never by string formatting, and shown (``queries``) with
every secret replaced by ``'********'``.

Passwords are never sent in clear text: the module computes the SCRAM-SHA-256 verifier
itself and sends that, so the password does not appear in the server's statement log.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import hashlib
import hmac
import os
import re
import unicodedata

from ansible.module_utils.basic import env_fallback

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError, ValidationError
from ansible_collections.lxdctl.platform.plugins.module_utils import _names, _platform_config

try:
    import psycopg2
    from psycopg2 import sql as pgsql

    HAS_PSYCOPG2 = True
    PSYCOPG2_IMPORT_ERROR = None
except ImportError as exc:  # reported by require_psycopg2()
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = exc

MASK = "********"

# Connection options, written once; the doc fragment lxdctl.platform.postgres documents them.
CONNECTION_ARGSPEC = dict(
    postgres_host=dict(type="str", fallback=(env_fallback, ["LXDCTL_POSTGRES_HOST"])),
    postgres_port=dict(type="int", fallback=(env_fallback, ["LXDCTL_POSTGRES_PORT"])),
    postgres_admin_user=dict(type="str", fallback=(env_fallback, ["LXDCTL_POSTGRES_ADMIN_USER"])),
    postgres_admin_password=dict(type="str", no_log=True, fallback=(env_fallback, ["LXDCTL_POSTGRES_ADMIN_PASSWORD"])),
)

_CONFIG_MAPPING = {
    "postgres_host": "host",
    "postgres_port": "port",
    "postgres_admin_user": "admin_user",
    "postgres_admin_password": "admin_password",
}

# --- names: the rule itself lives in _names (one rule everywhere) --------------------------
IDENTIFIER_RULE = _names.SQL_NAME_RULE


def identifier(value, field="name"):
    """A database or role name: plain lowercase SQL identifier, not reserved, no ``pg_``."""
    return _names.sql_name(value, field, "postgres")


def argspec_identifier(value):
    return identifier(value)


argspec_identifier.__name__ = "identifier"


# --- SCRAM-SHA-256 -------------------------------------------------------------------------
SCRAM_ITERATIONS = 4096


def _saslprep(password):
    """A close approximation of SASLprep (RFC 4013) as PostgreSQL applies it.

    ASCII passwords are used as they are; others are NFKC-normalised with non-ASCII
    spaces mapped to a space and "mapped to nothing" characters dropped.  PostgreSQL falls
    back to the raw bytes when SASLprep fails, which this does for control characters.
    """
    if all(ord(ch) < 128 for ch in password):
        return password.encode("utf-8")
    mapped = []
    for ch in password:
        if ch in u"\u00ad\u034f\u1806\u180b\u180c\u180d\u200b\u200c\u200d\u2060\ufe00\ufe01\ufe02\ufe03"\
                 u"\ufe04\ufe05\ufe06\ufe07\ufe08\ufe09\ufe0a\ufe0b\ufe0c\ufe0d\ufe0e\ufe0f\ufeff":
            continue
        if unicodedata.category(ch) == "Zs":
            ch = " "
        mapped.append(ch)
    text = unicodedata.normalize("NFKC", u"".join(mapped))
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") for ch in text):
        return password.encode("utf-8")
    return text.encode("utf-8")


def _scram_keys(password, salt, iterations):
    salted = hashlib.pbkdf2_hmac("sha256", _saslprep(password), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return stored_key, server_key


def scram_verifier(password, salt=None, iterations=SCRAM_ITERATIONS):
    """The ``SCRAM-SHA-256$iter:salt$StoredKey:ServerKey`` string PostgreSQL stores."""
    salt = os.urandom(16) if salt is None else salt
    stored_key, server_key = _scram_keys(password, salt, iterations)
    b64 = lambda raw: base64.b64encode(raw).decode("ascii")  # noqa: E731
    return "SCRAM-SHA-256$%d:%s$%s:%s" % (iterations, b64(salt), b64(stored_key), b64(server_key))


_VERIFIER_RE = re.compile(r"^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)\Z")


def scram_matches(verifier, password):
    """True when ``verifier`` (from pg_authid.rolpassword) was made from ``password``.

    The verifier's own salt and iteration count are used to recompute it.  md5 or
    missing verifiers never match, so such a password gets rewritten as SCRAM.
    """
    match = _VERIFIER_RE.match(verifier or "")
    if not match or password is None:
        return False
    iterations = int(match.group(1))
    try:
        salt = base64.b64decode(match.group(2))
        stored = base64.b64decode(match.group(3))
        server = base64.b64decode(match.group(4))
    except (TypeError, ValueError):
        return False
    stored_key, server_key = _scram_keys(password, salt, iterations)
    return hmac.compare_digest(stored_key, stored) and hmac.compare_digest(server_key, server)


# --- statements -------------------------------------------------------------------------
class Statement(object):
    """One SQL statement: ``template`` with ``{slot}`` names filled from ``params``.

    ``params`` values are ``("ident", name)``, ``("literal", value)`` or
    ``("secret", value)``.  ``transactional`` is False for statements that cannot run in a
    transaction block (CREATE/DROP DATABASE) or have side effects a rollback cannot undo
    (terminating sessions).
    """

    def __init__(self, template, transactional=True, **params):
        self.template = template
        self.params = params
        self.transactional = transactional

    def composed(self):
        require_psycopg2()
        parts = {}
        for key, (kind, value) in self.params.items():
            parts[key] = pgsql.Identifier(value) if kind == "ident" else pgsql.Literal(value)
        return pgsql.SQL(self.template).format(**parts)

    def display(self):
        """The statement as text, secrets masked; quoting as PostgreSQL's standard strings."""
        parts = {}
        for key, (kind, value) in self.params.items():
            if kind == "ident":
                parts[key] = '"%s"' % value.replace('"', '""')
            elif kind == "secret":
                parts[key] = "'%s'" % MASK
            elif isinstance(value, bool) or value is None:
                parts[key] = {True: "true", False: "false", None: "NULL"}[value]
            elif isinstance(value, int):
                parts[key] = str(value)
            else:
                parts[key] = "'%s'" % str(value).replace("'", "''")
        return self.template.format(**parts)

    def __repr__(self):
        return "Statement(%r)" % self.display()


ROLE_FLAGS = ("LOGIN", "NOSUPERUSER", "NOCREATEDB", "NOCREATEROLE", "NOREPLICATION", "NOBYPASSRLS", "INHERIT")


def create_role(owner, verifier, connection_limit):
    return Statement(
        "CREATE ROLE {role} WITH %s CONNECTION LIMIT {limit} PASSWORD {password}" % " ".join(ROLE_FLAGS),
        role=("ident", owner), limit=("literal", int(connection_limit)),
        password=("secret", verifier),
    )


def alter_role_flags(owner, connection_limit):
    return Statement(
        "ALTER ROLE {role} WITH %s CONNECTION LIMIT {limit}" % " ".join(ROLE_FLAGS),
        role=("ident", owner), limit=("literal", int(connection_limit)),
    )


def alter_role_password(owner, verifier):
    return Statement("ALTER ROLE {role} WITH PASSWORD {password}", role=("ident", owner), password=("secret", verifier))


def create_database(database, owner):
    return Statement("CREATE DATABASE {db} OWNER {role}", transactional=False,
                     db=("ident", database), role=("ident", owner))


def alter_database_owner(database, owner):
    return Statement("ALTER DATABASE {db} OWNER TO {role}", db=("ident", database), role=("ident", owner))


def revoke_public(database):
    return Statement("REVOKE CONNECT, TEMPORARY ON DATABASE {db} FROM PUBLIC", db=("ident", database))


def grant_connect(database, owner):
    return Statement("GRANT CONNECT ON DATABASE {db} TO {role}", db=("ident", database), role=("ident", owner))


def terminate_sessions(database, owner):
    return Statement(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE (datname = {db} OR usename = {role}) AND pid <> pg_backend_pid()",
        transactional=False, db=("literal", database), role=("literal", owner),
    )


def drop_database(database, force=True):
    return Statement("DROP DATABASE IF EXISTS {db}%s" % (" WITH (FORCE)" if force else ""),
                     transactional=False, db=("ident", database))


def restore_names(database):
    """The scratch databases of a restore of ``database``: ``(work, old)``.

    Fixed names, never random ones: a restore that was killed leaves at most these two, and
    the next restore (or the tenant's removal) finds and drops them.  Derived tenant names
    never hold two underscores in a row, so these cannot be another tenant's database."""
    return ("%s__restoring" % database[:50], "%s__replaced" % database[:50])


def rename_database(database, new):
    return Statement("ALTER DATABASE {db} RENAME TO {new}", db=("ident", database), new=("ident", new))


def allow_connections(database, allowed):
    return Statement("ALTER DATABASE {db} WITH ALLOW_CONNECTIONS %s" % ("true" if allowed else "false"),
                     db=("ident", database))


def drop_role(owner):
    return Statement("DROP ROLE IF EXISTS {role}", role=("ident", owner))


# --- the tenant plan ------------------------------------------------------------------------
def role_needs_flags(role, connection_limit):
    """True when an existing role's attributes differ from what a tenant owner must have."""
    return not (
        role.get("login") is True
        and role.get("superuser") is False
        and role.get("createdb") is False
        and role.get("createrole") is False
        and role.get("replication") is False
        and role.get("bypassrls") is False
        and role.get("inherit") is True
        and role.get("connection_limit") == connection_limit
    )


def plan_present(database, owner, password, connection_limit, rotate_password, role, db, salt=None):
    """Statements that bring ``role``/``db`` (current state dicts or None) to the tenant state.

    Returns ``(statements, password_set)``.  ``db`` has ``owner``, ``public_connect``,
    ``public_temporary`` and ``owner_connect``.
    """
    statements = []
    password_set = False
    if role is None:
        statements.append(create_role(owner, scram_verifier(password, salt), connection_limit))
        password_set = True
    else:
        if role_needs_flags(role, connection_limit):
            statements.append(alter_role_flags(owner, connection_limit))
        # a role without any password could not log in: it gets one even without rotate_password
        if (rotate_password or not role.get("password")) and not scram_matches(role.get("password"), password):
            statements.append(alter_role_password(owner, scram_verifier(password, salt)))
            password_set = True
    if db is None:
        statements.append(create_database(database, owner))
        statements.append(revoke_public(database))
        statements.append(grant_connect(database, owner))
    else:
        if db.get("owner") != owner:
            statements.append(alter_database_owner(database, owner))
        if db.get("public_connect") or db.get("public_temporary"):
            statements.append(revoke_public(database))
        if not db.get("owner_connect") or db.get("owner") != owner:
            statements.append(grant_connect(database, owner))
    return statements, password_set


def plan_absent(database, owner, role, db, force=True):
    statements = []
    if role is not None or db is not None:
        statements.append(terminate_sessions(database, owner))
    if db is not None:
        statements.append(drop_database(database, force))
    # The role cannot be dropped while it owns a database: a restore's scratch copy left by a
    # killed run, or a copy made with ``db restore --into``.  They are the tenant's, so they go too.
    for other in (role or {}).get("owned_databases") or []:
        if other != database:
            statements.append(drop_database(other, force))
    if role is not None:
        statements.append(drop_role(owner))
    return statements


def state_view(database, owner, role, db):
    """The diff's view: what exists, never a password."""
    return {
        "database": database if db is not None else None,
        "database_owner": db.get("owner") if db else None,
        "public_connect": bool(db.get("public_connect") or db.get("public_temporary")) if db else None,
        "role": owner if role is not None else None,
        "connection_limit": role.get("connection_limit") if role else None,
        "role_privileged": (not role["login"] or role["superuser"] or role["createdb"] or role["createrole"]
                            or role["replication"] or role["bypassrls"]) if role else None,
    }


def desired_view(database, owner, connection_limit, state):
    if state == "absent":
        return state_view(database, owner, None, None)
    return {
        "database": database,
        "database_owner": owner,
        "public_connect": False,
        "role": owner,
        "connection_limit": connection_limit,
        "role_privileged": False,
    }


# --- the client -----------------------------------------------------------------------------
def require_psycopg2():
    if not HAS_PSYCOPG2:
        raise LxdctlError("The psycopg2 Python library is required on the managed host: %s" % PSYCOPG2_IMPORT_ERROR)


def resolve(params):
    """Connection settings: parameters and environment, then platform.json ``postgres``."""
    resolved = _platform_config.resolve(params, "postgres", _CONFIG_MAPPING)
    section = _platform_config.section("postgres")
    resolved.setdefault("postgres_host", None)
    resolved["postgres_host"] = resolved.get("postgres_host") or "127.0.0.1"
    resolved["postgres_port"] = int(resolved.get("postgres_port") or 5432)
    resolved["postgres_admin_user"] = resolved.get("postgres_admin_user") or "postgres"
    resolved["tenant_host"] = section.get("tenant_host") or resolved["postgres_host"]
    return resolved


class Postgres(object):
    """An admin connection to the platform's PostgreSQL (autocommit)."""

    def __init__(self, params):
        require_psycopg2()
        self.params = resolve(params)
        self.host = self.params["postgres_host"]
        self.port = self.params["postgres_port"]
        self.tenant_host = self.params["tenant_host"]
        self.executed = []
        where = "%s@%s:%s" % (self.params["postgres_admin_user"], self.host, self.port)
        try:
            self.conn = psycopg2.connect(
                host=self.host, port=self.port, user=self.params["postgres_admin_user"],
                password=self.params.get("postgres_admin_password"), dbname="postgres",
                connect_timeout=10, application_name="lxdctl",
            )
            self.conn.autocommit = True
        except psycopg2.Error as exc:
            raise LxdctlError("Failed to connect to PostgreSQL as %s: %s" % (where, _pg_message(exc)))
        self.server_version = self.conn.server_version

    def close(self):
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass

    def _query(self, context, query, args):
        try:
            with self.conn.cursor() as cur:
                cur.execute(query, args)
                return cur.fetchall()
        except psycopg2.Error as exc:
            raise LxdctlError("%s: %s" % (context, _pg_message(exc)))

    def get_role(self, name):
        rows = self._query(
            "Failed to read role %s" % name,
            "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, "
            "rolinherit, rolconnlimit, rolpassword FROM pg_authid WHERE rolname = %s",
            (name,),
        )
        if not rows:
            return None
        row = rows[0]
        keys = ("login", "superuser", "createdb", "createrole", "replication", "bypassrls", "inherit",
                "connection_limit", "password")
        role = dict(zip(keys, row))
        role["owned_databases"] = self.owned_databases(name)
        return role

    def owned_databases(self, owner):
        rows = self._query("Failed to list the databases of role %s" % owner,
                           "SELECT datname FROM pg_database WHERE pg_get_userbyid(datdba) = %s ORDER BY datname",
                           (owner,))
        return [row[0] for row in rows]

    def database_names(self, names):
        """Which of ``names`` exist, with whether each accepts connections: ``{name: allowed}``."""
        rows = self._query("Failed to read databases %s" % ", ".join(names),
                           "SELECT datname, datallowconn FROM pg_database WHERE datname = ANY(%s)", (list(names),))
        return dict((row[0], row[1]) for row in rows)

    def execute_atomic(self, statements, attempts=1, retry_on=None, delay=0.2):
        """Run transactional ``statements`` in one transaction: all of them happen or none.

        ``retry_on`` (a substring of the server's message) retries the whole transaction up to
        ``attempts`` times, e.g. while terminated sessions are still leaving a database."""
        import time

        for attempt in range(attempts):
            self.conn.autocommit = False
            try:
                with self.conn.cursor() as cur:
                    for stmt in statements:
                        self._run(cur, stmt)
                self.conn.commit()
                self.executed.extend(stmt.display() for stmt in statements)
                return
            except LxdctlError as exc:
                self.conn.rollback()
                if retry_on is None or retry_on not in exc.msg or attempt == attempts - 1:
                    raise
                time.sleep(delay)
            finally:
                self.conn.autocommit = True

    def get_database(self, name, owner):
        rows = self._query(
            "Failed to read database %s" % name,
            "SELECT pg_get_userbyid(d.datdba), "
            "has_database_privilege('public', d.oid, 'CONNECT'), "
            "has_database_privilege('public', d.oid, 'TEMPORARY'), "
            "EXISTS (SELECT 1 FROM aclexplode(d.datacl) a JOIN pg_roles r ON r.oid = a.grantee "
            "        WHERE r.rolname = %s AND a.privilege_type = 'CONNECT') "
            "FROM pg_database d WHERE d.datname = %s",
            (owner, name),
        )
        if not rows:
            return None
        row = rows[0]
        return {"owner": row[0], "public_connect": row[1], "public_temporary": row[2], "owner_connect": row[3]}

    def execute(self, statements, check_mode=False):
        """Run ``statements``; in check mode run the transactional prefix and roll it back.

        Returns the displayed (masked) text of every planned statement.
        """
        shown = [stmt.display() for stmt in statements]
        if check_mode:
            prefix = []
            for stmt in statements:
                if not stmt.transactional:
                    break
                prefix.append(stmt)
            if prefix:
                self.conn.autocommit = False
                try:
                    with self.conn.cursor() as cur:
                        for stmt in prefix:
                            self._run(cur, stmt)
                finally:
                    self.conn.rollback()
                    self.conn.autocommit = True
            return shown
        with self.conn.cursor() as cur:
            for stmt in statements:
                self._run(cur, stmt)
                self.executed.append(stmt.display())
        return shown

    def _run(self, cur, stmt):
        try:
            cur.execute(stmt.composed())
        except psycopg2.Error as exc:
            raise LxdctlError("Failed to run %s: %s" % (stmt.display(), _pg_message(exc)))


def _pg_message(exc):
    text = (getattr(exc, "pgerror", None) or str(exc) or type(exc).__name__).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def list_names(client, prefix):
    """The databases (with owners) and roles whose names start with ``prefix`` (reconcile)."""
    databases = client._query(
        "Failed to list the databases named %s*" % prefix,
        "SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE left(datname, %s) = %s ORDER BY datname",
        (len(prefix), prefix),
    )
    roles = client._query(
        "Failed to list the roles named %s*" % prefix,
        "SELECT rolname FROM pg_roles WHERE left(rolname, %s) = %s ORDER BY rolname",
        (len(prefix), prefix),
    )
    return [{"name": name, "owner": owner} for name, owner in databases], [name for (name,) in roles]
