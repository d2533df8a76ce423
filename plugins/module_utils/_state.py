# -*- coding: utf-8 -*-
"""The lxdctl state store: projects and everything they own, in SQLite or PostgreSQL.

One schema, defined here and nowhere else.  The modules (``lxdctl_state``, ``lxdctl_secret``,
``lxdctl_lock``, ``lxdctl_info``) write and read it on the platform host; the CLI imports
this file through ``lxdctl.collection.module_utils("_state")`` for its read-only commands.

Where the state lives (first match wins):

1. the ``url`` argument (module option ``state_url``);
2. the environment variable ``LXDCTL_DATABASE_URL``;
3. ``state.url`` of the platform configuration (``/etc/lxdctl/platform.json``);
4. ``sqlite:////var/lib/lxdctl/state/state.db``.

``sqlite:////abs/path.db`` selects SQLite (WAL mode, busy timeout, foreign keys on, the file
0600, its directory created 0700); ``postgresql://user:password@host:port/db`` selects
PostgreSQL through psycopg2.  The rest of the code is shared; ``_Dialect`` holds the few
differences (placeholders, identity columns, booleans, JSON and timestamp types, row locks).

Schema changes are numbered migrations (``MIGRATIONS``), applied in order, each inside a
transaction, and recorded in ``schema_migrations``.  Opening the store migrates it.

Deletion is a hard delete: ``delete_project`` removes the project row and, through
``ON DELETE CASCADE``, its databases, DNS records, deployments, pipelines (and their runs),
env vars and secrets.  So a project name is unique among all rows and can be reused as soon
as the project is deleted.  ``deleted_at`` is kept from the spec's data model but stays NULL.
The audit log keeps the project *name* as text, so its history outlives the project.

Secrets at rest (env values, generated secrets, database passwords) are encrypted with
AES-256-GCM.  The 32-byte key lives in the key file (``key_file`` argument, then
``LXDCTL_STATE_KEY_FILE``, then ``state.key_file`` of the platform configuration, then
``/etc/lxdctl/state.key``), created 0600 on first use in a 0700 directory.  Each value has
its own random 96-bit nonce and the row's identity (table, project, name) as associated
data, so a ciphertext copied into another row fails to decrypt.  A stored value is
``v1.<base64url(key id[8] | nonce[12] | ciphertext+tag)>``; the key id tells a wrong key
apart from a tampered value.

Locks (``acquire_lock``/``release_lock``) serialise changes to one project across
processes and hosts: a lock whose owner pid is dead on this host, or whose expiry passed,
is taken over; a live one raises ``LxdctlError("project myapp is locked by pid N ...")``.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import contextlib
import datetime
import hashlib
import ipaddress
import json
import os
import re
import secrets as _secrets
import socket
import string
import time

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError, ValidationError
from ansible_collections.lxdctl.platform.plugins.module_utils import _names, _procs
from ansible_collections.lxdctl.platform.plugins.module_utils import _platform_config

DEFAULT_URL = "sqlite:////var/lib/lxdctl/state/state.db"
DEFAULT_KEY_FILE = "/etc/lxdctl/state.key"
URL_ENV = "LXDCTL_DATABASE_URL"
KEY_FILE_ENV = "LXDCTL_STATE_KEY_FILE"
DEFAULT_LOCK_TTL = 1800
MASK = "********"

# Module options shared by the four state modules (doc fragment lxdctl.platform.state).
# The environment and platform-configuration fallbacks are resolved by ``StateStore.open``
# itself (so the CLI gets the same order without importing Ansible).
CONNECTION_ARGSPEC = dict(
    state_url=dict(type="str", no_log=True),
    state_key_file=dict(type="path", aliases=["key_file"], no_log=False),
)

PROJECT_STATUSES = ("creating", "running", "stopped", "error", "deleting")
DATABASE_TYPES = ("postgresql", "mysql", "mongodb", "redis", "memcached")
DEPLOYMENT_STATUSES = ("pending", "building", "deploying", "success", "failed", "rolled_back")
DEPLOYMENT_TERMINAL = ("success", "failed", "rolled_back")
DEPLOY_TYPES = ("standard", "blue_green", "canary", "rollback")
RUN_STATUSES = ("queued", "running", "success", "failed", "cancelled")
RUN_TERMINAL = ("success", "failed", "cancelled")

_BOOL_COLUMNS = frozenset(["ssl", "is_secret"])
_JSON_COLUMNS = frozenset(["spec", "config", "triggers", "metadata", "artifacts", "detail"])
_SECRET_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_LOCK_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}$")
_REDACT_RE = re.compile(r"pass|secret|token|credential|private|api_?key|auth|cookie|dsn|_url$|^url$|^values?$", re.I)
_SECRET_ALPHABET = string.ascii_letters + string.digits


# --- time ----------------------------------------------------------------------------
def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def _ts(value):
    """A timestamp as fixed-width ISO 8601 UTC text (sorts as it should in SQLite)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_ts(value):
    if value is None or isinstance(value, datetime.datetime):
        return value
    return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)


# --- configuration ------------------------------------------------------------------
def resolve_url(url=None, config_path=None):
    if url:
        return url
    if os.environ.get(URL_ENV):
        return os.environ[URL_ENV]
    return _platform_config.section("state", config_path).get("url") or DEFAULT_URL


def resolve_key_file(key_file=None, config_path=None):
    if key_file:
        return key_file
    if os.environ.get(KEY_FILE_ENV):
        return os.environ[KEY_FILE_ENV]
    return _platform_config.section("state", config_path).get("key_file") or DEFAULT_KEY_FILE


def redact_url(url):
    """The URL with its password replaced, for messages."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1****@", url or "")


def sqlite_path(url):
    """The file of a ``sqlite:///`` URL: ``sqlite:////abs/path`` or ``sqlite:///rel/path``."""
    rest = url[len("sqlite:///"):]
    if not rest or rest == ":memory:":
        raise LxdctlError("state url %r: name a database file, e.g. %s" % (url, DEFAULT_URL))
    return rest if rest.startswith("/") else os.path.abspath(rest)


# --- dialects -----------------------------------------------------------------------
class _Dialect:
    name = None
    begin_write = "BEGIN"
    for_update = ""
    types = {}

    def sql(self, text):
        return text

    def ddl(self, text):
        return text.format(**self.types)


class _SQLite(_Dialect):
    name = "sqlite"
    begin_write = "BEGIN IMMEDIATE"  # take the write lock up front: no upgrade deadlocks
    types = dict(pk="INTEGER PRIMARY KEY AUTOINCREMENT", fk="INTEGER", bool="INTEGER", false="0",
                 json="TEXT", ts="TEXT")


class _Postgres(_Dialect):
    name = "postgresql"
    for_update = " FOR UPDATE"
    types = dict(pk="BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", fk="BIGINT",
                 bool="BOOLEAN", false="FALSE", json="JSONB", ts="TIMESTAMPTZ")

    def sql(self, text):
        return text.replace("?", "%s")


# --- schema -------------------------------------------------------------------------
# Each migration: (version, name, [DDL with {pk} {fk} {bool} {false} {json} {ts}]).
# Never edit an applied migration; append a new one.
MIGRATIONS = [
    (1, "initial schema", [
        """CREATE TABLE projects (
            id {pk},
            name TEXT NOT NULL UNIQUE,
            display_name TEXT,
            description TEXT,
            container_id TEXT,
            domain TEXT,
            status TEXT NOT NULL DEFAULT 'creating',
            runtime TEXT,
            port INTEGER,
            git_repository TEXT,
            git_branch TEXT NOT NULL DEFAULT 'main',
            db_type TEXT,
            cache_type TEXT,
            ssl {bool} NOT NULL DEFAULT {false},
            cpu INTEGER,
            memory TEXT,
            disk TEXT,
            container_name TEXT,
            address TEXT,
            spec {json},
            created_at {ts} NOT NULL,
            updated_at {ts} NOT NULL,
            deleted_at {ts})""",
        "CREATE INDEX ix_projects_status ON projects (status)",
        """CREATE TABLE databases (
            id {pk},
            project_id {fk} NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
            type TEXT NOT NULL,
            name TEXT NOT NULL,
            host TEXT,
            port INTEGER,
            username TEXT,
            password_encrypted TEXT,
            connection_string TEXT,
            size_mb INTEGER,
            created_at {ts} NOT NULL,
            UNIQUE (project_id, type, name))""",
        """CREATE TABLE dns_records (
            id {pk},
            project_id {fk} NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
            zone TEXT NOT NULL,
            name TEXT NOT NULL,
            type TEXT NOT NULL,
            content TEXT NOT NULL,
            ttl INTEGER NOT NULL DEFAULT 3600,
            priority INTEGER,
            created_at {ts} NOT NULL,
            UNIQUE (project_id, zone, name, type))""",
        """CREATE TABLE deployments (
            id {pk},
            project_id {fk} NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
            version TEXT,
            git_commit TEXT,
            status TEXT NOT NULL DEFAULT 'pending',
            deploy_type TEXT NOT NULL DEFAULT 'standard',
            started_at {ts},
            completed_at {ts},
            deployed_by TEXT,
            error_message TEXT,
            metadata {json})""",
        "CREATE INDEX ix_deployments_project ON deployments (project_id, id)",
        """CREATE TABLE pipelines (
            id {pk},
            project_id {fk} NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            config {json},
            triggers {json},
            last_run_at {ts},
            last_status TEXT,
            created_at {ts} NOT NULL,
            UNIQUE (project_id, name))""",
        """CREATE TABLE pipeline_runs (
            id {pk},
            pipeline_id {fk} NOT NULL REFERENCES pipelines (id) ON DELETE CASCADE,
            run_number INTEGER NOT NULL,
            status TEXT NOT NULL DEFAULT 'queued',
            started_at {ts},
            completed_at {ts},
            logs TEXT,
            artifacts {json},
            UNIQUE (pipeline_id, run_number))""",
        """CREATE TABLE audit_log (
            id {pk},
            at {ts} NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            project TEXT,
            detail {json})""",
        "CREATE INDEX ix_audit_log_project ON audit_log (project, id)",
        """CREATE TABLE secrets (
            id {pk},
            project_id {fk} REFERENCES projects (id) ON DELETE CASCADE,
            name TEXT NOT NULL,
            value_encrypted TEXT NOT NULL,
            created_at {ts} NOT NULL,
            updated_at {ts} NOT NULL)""",
        # NULLs are distinct in a plain UNIQUE; platform-wide secrets (no project) count as 0.
        "CREATE UNIQUE INDEX ux_secrets_project_name ON secrets (COALESCE(project_id, 0), name)",
        """CREATE TABLE env_vars (
            id {pk},
            project_id {fk} NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            value_encrypted TEXT NOT NULL,
            is_secret {bool} NOT NULL DEFAULT {false},
            updated_at {ts} NOT NULL,
            UNIQUE (project_id, key))""",
        """CREATE TABLE locks (
            name TEXT PRIMARY KEY,
            owner_pid INTEGER,
            owner_host TEXT,
            acquired_at {ts} NOT NULL,
            expires_at {ts} NOT NULL)""",
    ]),
    # The API server (cli/lxdctl/api): durable jobs, tokens, users, sessions, webhook de-duplication.
    (2, "api server", [
        """CREATE TABLE jobs (
            id {pk},
            kind TEXT NOT NULL,
            payload {json},
            project TEXT,
            actor TEXT,
            status TEXT NOT NULL DEFAULT 'queued',
            created_at {ts} NOT NULL,
            started_at {ts},
            completed_at {ts},
            result {json},
            error TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            worker_pid INTEGER,
            worker_start TEXT,
            cancel_requested {bool} NOT NULL DEFAULT {false})""",
        "CREATE INDEX ix_jobs_status ON jobs (status, id)",
        "CREATE INDEX ix_jobs_project ON jobs (project, id)",
        """CREATE TABLE job_events (
            job_id {fk} NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            at {ts} NOT NULL,
            event {json},
            PRIMARY KEY (job_id, seq))""",
        """CREATE TABLE users (
            id {pk},
            name TEXT NOT NULL UNIQUE,
            role TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            totp_secret_encrypted TEXT,
            disabled {bool} NOT NULL DEFAULT {false},
            created_at {ts} NOT NULL,
            updated_at {ts} NOT NULL)""",
        """CREATE TABLE user_project_roles (
            user_id {fk} NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            project_id {fk} NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
            role TEXT NOT NULL,
            PRIMARY KEY (user_id, project_id))""",
        """CREATE TABLE api_tokens (
            id {pk},
            token_id TEXT NOT NULL UNIQUE,
            token_hash TEXT NOT NULL,
            name TEXT NOT NULL,
            role TEXT NOT NULL,
            projects {json},
            scope TEXT NOT NULL DEFAULT 'write',
            user_id {fk} REFERENCES users (id) ON DELETE CASCADE,
            created_by TEXT,
            created_at {ts} NOT NULL,
            expires_at {ts},
            revoked_at {ts},
            last_used_at {ts})""",
        """CREATE TABLE sessions (
            id {pk},
            session_hash TEXT NOT NULL UNIQUE,
            user_id {fk} NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            ip TEXT,
            created_at {ts} NOT NULL,
            expires_at {ts} NOT NULL,
            revoked_at {ts})""",
        """CREATE TABLE webhook_deliveries (
            id {pk},
            provider TEXT NOT NULL,
            delivery_id TEXT NOT NULL,
            project TEXT,
            received_at {ts} NOT NULL,
            status TEXT NOT NULL DEFAULT 'received',
            UNIQUE (provider, delivery_id))""",
    ]),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]

PROJECT_COLUMNS = (
    "id", "name", "display_name", "description", "container_id", "domain", "status", "runtime",
    "port", "git_repository", "git_branch", "db_type", "cache_type", "ssl", "cpu", "memory",
    "disk", "container_name", "address", "spec", "created_at", "updated_at", "deleted_at",
)
DATABASE_COLUMNS = ("id", "project_id", "type", "name", "host", "port", "username",
                    "password_encrypted", "connection_string", "size_mb", "created_at")
DNS_COLUMNS = ("id", "project_id", "zone", "name", "type", "content", "ttl", "priority", "created_at")
DEPLOYMENT_COLUMNS = ("id", "project_id", "version", "git_commit", "status", "deploy_type", "started_at",
                      "completed_at", "deployed_by", "error_message", "metadata")
PIPELINE_COLUMNS = ("id", "project_id", "name", "config", "triggers", "last_run_at", "last_status", "created_at")
RUN_COLUMNS = ("id", "pipeline_id", "run_number", "status", "started_at", "completed_at", "logs", "artifacts")


# --- field rules --------------------------------------------------------------------
def _opt(func):
    def check(value, field):
        return None if value is None or value == "" else func(value, field)
    return check


def _text(value, field):
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ValidationError(field, "must be text", value)
    value = str(value)
    if "\x00" in value:
        raise ValidationError(field, "must not contain NUL characters")
    return value


def _one_line(value, field):
    value = _text(value, field)
    if "\n" in value or "\r" in value:
        raise ValidationError(field, "must be a single line")
    return value


def _int(minimum, maximum=None):
    def check(value, field):
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = None
        if isinstance(value, bool) or number is None or str(value).strip() != str(number) \
                or number < minimum or (maximum is not None and number > maximum):
            raise ValidationError(field, "must be a whole number >= %d" % minimum
                                  + ("" if maximum is None else " and <= %d" % maximum), value)
        return number
    return check


def _bool(value, field):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValidationError(field, "must be true or false", value)


def _choice(choices):
    def check(value, field):
        if value not in choices:
            raise ValidationError(field, "must be one of %s" % ", ".join(choices), value)
        return value
    return check


def _ipv4(value, field):
    try:
        return str(ipaddress.IPv4Address(str(value)))
    except ValueError:
        raise ValidationError(field, "must be an IPv4 address", value)


def _json_value(value, field):
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        raise ValidationError(field, "must be JSON data (dicts, lists, text, numbers)")
    return value


def _ts_value(value, field):
    if isinstance(value, datetime.datetime):
        return _ts(value)
    try:
        return _ts(_parse_ts(value))
    except (TypeError, ValueError):
        raise ValidationError(field, "must be a UTC timestamp like 2026-01-31T12:00:00.000000Z", value)


PROJECT_FIELDS = {
    "display_name": _opt(_one_line),
    "description": _opt(_text),
    "container_id": _opt(_one_line),
    "domain": _opt(lambda v, f: _names.domain(v, f)),
    "status": _choice(PROJECT_STATUSES),
    "runtime": _opt(_one_line),
    "port": _opt(lambda v, f: _names.port(v, f)),
    "git_repository": _opt(_one_line),
    "git_branch": _one_line,
    "db_type": _opt(_one_line),
    "cache_type": _opt(_one_line),
    "ssl": _bool,
    "cpu": _opt(_int(1, 1024)),
    "memory": _opt(lambda v, f: _names.size(v, f)),
    "disk": _opt(lambda v, f: _names.size(v, f)),
    "container_name": _opt(_one_line),
    "address": _opt(_ipv4),
    "spec": _opt(_json_value),
}
DATABASE_FIELDS = {
    "host": _opt(_one_line),
    "port": _opt(lambda v, f: _names.port(v, f)),
    "username": _opt(_one_line),
    "connection_string": _opt(_one_line),
    "size_mb": _opt(_int(0)),
}
DNS_FIELDS = {
    "ttl": _int(1, 2147483647),
    "priority": _opt(_int(0, 65535)),
}
DEPLOYMENT_FIELDS = {
    "version": _opt(_one_line),
    "git_commit": _opt(_one_line),
    "status": _choice(DEPLOYMENT_STATUSES),
    "deploy_type": _choice(DEPLOY_TYPES),
    "started_at": _opt(_ts_value),
    "completed_at": _opt(_ts_value),
    "deployed_by": _opt(_one_line),
    "error_message": _opt(_text),
    "metadata": _opt(_json_value),
}
RUN_FIELDS = {
    "status": _choice(RUN_STATUSES),
    "started_at": _opt(_ts_value),
    "completed_at": _opt(_ts_value),
    "logs": _opt(_text),
    "artifacts": _opt(_json_value),
}


def _normalize(rules, fields, what):
    unknown = sorted(set(fields) - set(rules))
    if unknown:
        raise ValidationError(what, "unknown field(s) %s; known: %s" % (", ".join(unknown), ", ".join(sorted(rules))))
    return dict((key, rules[key](value, key)) for key, value in fields.items())


def redact(detail):
    """A copy of ``detail`` with the values of secret-looking keys replaced by ``MASK``."""
    if isinstance(detail, dict):
        return dict((k, MASK if _REDACT_RE.search(str(k)) and v not in (None, "") else redact(v))
                    for k, v in detail.items())
    if isinstance(detail, (list, tuple)):
        return [redact(v) for v in detail]
    return detail


def strip_password(connection_string, password):
    """A connection string safe to store in clear: the password replaced by ``****``."""
    if not connection_string:
        return connection_string
    text = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1****@", connection_string)
    if password:
        text = text.replace(password, "****")
    return text


def generate_secret(length=32):
    """A url-safe random secret of exactly ``length`` letters and digits."""
    return "".join(_secrets.choice(_SECRET_ALPHABET) for _ in range(length))


# --- locks: liveness of a pid on this host ------------------------------------------
pid_alive = _procs.pid_alive  # kept under this name: callers and tests use it


def lock_name_for_project(project):
    return "project:%s" % _names.project_name(project, "project")


def lock_held_error(row):
    """The error for a lock that a live owner holds."""
    return LxdctlError(
        "%s is locked by pid %s on %s since %s (until %s); retry later"
        % (_describe_lock(row["name"]), row["owner_pid"] if row["owner_pid"] else "(none)",
           row["owner_host"], row["acquired_at"], row["expires_at"]),
        lock=row,
    )


def _describe_lock(name):
    return "project %s" % name[len("project:"):] if name.startswith("project:") else "lock %s" % name


# --- encryption ---------------------------------------------------------------------
class Cipher:
    """AES-256-GCM with a key file; the key is loaded (or created) on first use."""

    VERSION = "v1"

    def __init__(self, key_file):
        self.key_file = key_file
        self._aead = None
        self._key_id = None

    @staticmethod
    def _key_id_of(key):
        return hashlib.sha256(b"lxdctl-state-key-id\x00" + key).digest()[:8]

    def _load(self):
        if self._aead is not None:
            return
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError as exc:
            raise LxdctlError("The cryptography Python library is required for the state store: %s" % exc)
        key = _read_or_create_key(self.key_file)
        self._aead = AESGCM(key)
        self._key_id = self._key_id_of(key)

    @staticmethod
    def aad(table, project, name):
        return ("%s\x1f%s\x1f%s" % (table, project or "", name)).encode("utf-8")

    def encrypt(self, plaintext, table, project, name):
        self._load()
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode("utf-8"), self.aad(table, project, name))
        return "%s.%s" % (self.VERSION, base64.urlsafe_b64encode(self._key_id + nonce + sealed).decode("ascii"))

    def decrypt(self, stored, table, project, name):
        self._load()
        what = "%s %s%s" % (_ROW_WORDS.get(table, table), name, " of project %s" % project if project else "")
        try:
            version, payload = stored.split(".", 1)
            blob = base64.urlsafe_b64decode(payload.encode("ascii"))
        except (ValueError, AttributeError, TypeError):
            raise LxdctlError("Cannot decrypt %s: the stored value is not in the lxdctl format" % what)
        if version != self.VERSION or len(blob) < 8 + 12 + 16:
            raise LxdctlError("Cannot decrypt %s: the stored value is not in the lxdctl format" % what)
        if blob[:8] != self._key_id:
            raise LxdctlError(
                "Cannot decrypt %s: it was encrypted with another key (key id %s) than the one in %s "
                "(key id %s). Restore the original key file." % (what, blob[:8].hex(), self.key_file, self._key_id.hex())
            )
        from cryptography.exceptions import InvalidTag
        try:
            return self._aead.decrypt(blob[8:20], blob[20:], self.aad(table, project, name)).decode("utf-8")
        except InvalidTag:
            raise LxdctlError(
                "Cannot decrypt %s: authentication failed; the stored value was altered or copied from "
                "another row" % what
            )


_ROW_WORDS = {"env_vars": "env var", "secrets": "secret", "databases": "database password"}


def _read_or_create_key(path):
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    directory = os.path.dirname(os.path.abspath(path))
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o700, exist_ok=True)
        # Write a private temporary file, then link it into place: link() fails if another
        # process created the key meanwhile, and then we use theirs.  Never two keys.
        tmp = "%s.%d.%s.tmp" % (path, os.getpid(), _secrets.token_hex(4))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(base64.urlsafe_b64encode(os.urandom(32)).decode("ascii") + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    except OSError as exc:
        raise LxdctlError("Cannot create the state key file %s: %s" % (path, exc.strerror or exc))
    return _read_key(path)


def _read_key(path):
    try:
        info = os.stat(path)
        if info.st_mode & 0o077:
            raise LxdctlError(
                "The state key file %s is readable by others (mode %o); it must be root-only: chmod 600 %s"
                % (path, info.st_mode & 0o777, path)
            )
        with open(path, "rb") as handle:
            text = handle.read().strip()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise LxdctlError("Cannot read the state key file %s: %s" % (path, exc.strerror or exc))
    try:
        key = base64.urlsafe_b64decode(text)
    except (ValueError, TypeError):
        key = b""
    if len(key) != 32:
        raise LxdctlError("The state key file %s does not hold a 32-byte base64 key" % path)
    return key


# --- the store ----------------------------------------------------------------------
class StateStore:
    """One connection to the state database.  Use ``StateStore.open()``; close it when done."""

    def __init__(self, url, key_file, conn, dialect):
        self.url = url
        self.key_file = key_file
        self.cipher = Cipher(key_file)
        self._conn = conn
        self._dialect = dialect
        self._depth = 0
        self.backend = dialect.name
        if dialect.name == "sqlite":
            import sqlite3
            self._integrity_error = sqlite3.IntegrityError
            self._db_errors = (sqlite3.Error,)
        else:
            import psycopg2
            self._integrity_error = psycopg2.IntegrityError
            self._db_errors = (psycopg2.Error,)

    # connection ------------------------------------------------------------------
    @classmethod
    def open(cls, url=None, key_file=None, config_path=None, migrate=True):
        url = resolve_url(url, config_path)
        key_file = resolve_key_file(key_file, config_path)
        if url.startswith("sqlite:///"):
            conn, dialect = _connect_sqlite(sqlite_path(url)), _SQLite()
        elif url.startswith(("postgresql://", "postgres://")):
            conn, dialect = _connect_postgres(url), _Postgres()
        else:
            raise LxdctlError("state url %r: must start with sqlite:/// or postgresql://" % redact_url(url))
        store = cls(url, key_file, conn, dialect)
        if migrate:
            try:
                store.migrate()
            except Exception:
                store.close()
                raise
        return store

    def close(self):
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _fail(self, what, exc):
        hint = _disk_full_hint(sqlite_path(self.url)) if self.backend == "sqlite" else ""
        return LxdctlError("State store (%s) failed to %s: %s%s" % (redact_url(self.url), what, str(exc).strip(), hint))

    def _execute(self, sql, params=()):
        cur = self._conn.cursor()
        cur.execute(self._dialect.sql(sql), tuple(params))
        return cur

    def _query(self, sql, params=(), what="read the state"):
        try:
            cur = self._execute(sql, params)
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        except self._db_errors as exc:
            raise self._fail(what, exc)
        return [_row(names, r) for r in rows]

    _read = _query

    def _one(self, sql, params=()):
        rows = self._query(sql, params)
        return rows[0] if rows else None

    @contextlib.contextmanager
    def transaction(self, write=True, what="write the state", retry_conflicts=False):
        """A transaction; nested calls join the outer one.  Database errors become LxdctlError.

        A unique-constraint conflict (a concurrent writer on PostgreSQL) is re-raised as the
        driver's IntegrityError when ``retry_conflicts`` is set, so the caller can retry.
        """
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        try:
            self._execute(self._dialect.begin_write if write else "BEGIN")
        except self._db_errors as exc:
            raise self._fail(what, exc)
        self._depth = 1
        try:
            yield
            self._execute("COMMIT")
        except BaseException as exc:
            try:
                self._execute("ROLLBACK")
            except self._db_errors:
                pass
            if not isinstance(exc, self._db_errors) or (retry_conflicts and isinstance(exc, self._integrity_error)):
                raise
            raise self._fail(what, exc)
        finally:
            self._depth = 0

    def _retrying(self, what, func, attempts=4):
        """Run ``func`` in a write transaction, again when a concurrent writer won a unique key."""
        if self._depth:
            return func()  # inside the caller's transaction: it decides
        for attempt in range(attempts):
            try:
                with self.transaction(what=what, retry_conflicts=True):
                    return func()
            except self._integrity_error as exc:
                if attempt == attempts - 1:
                    raise self._fail(what, exc)
                time.sleep(0.01 * (attempt + 1))

    # migrations ------------------------------------------------------------------
    def schema_version(self):
        row = self._read("SELECT MAX(version) AS v FROM schema_migrations")
        return row[0]["v"] or 0

    def migrate(self):
        """Apply pending migrations in order; each one in its own transaction.  Idempotent."""
        d = self._dialect
        try:
            version = self.schema_version()
        except LxdctlError:
            with self.transaction(what="create schema_migrations"):
                if d.name == "postgresql":
                    self._execute("SELECT pg_advisory_xact_lock(7411920001)")
                self._execute(d.ddl("CREATE TABLE IF NOT EXISTS schema_migrations ("
                                    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at {ts} NOT NULL)"))
            version = self.schema_version()
        applied = []
        for number, name, statements in MIGRATIONS:
            if number <= version:
                continue
            with self.transaction(what="apply migration %d (%s)" % (number, name)):
                if d.name == "postgresql":  # serialise concurrent migrators
                    self._execute("SELECT pg_advisory_xact_lock(7411920001)")
                if self._one("SELECT version FROM schema_migrations WHERE version = ?", (number,)):
                    continue  # another process applied it while we waited
                for statement in statements:
                    self._execute(d.ddl(statement))
                self._execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                              (number, name, _ts(_utcnow())))
            applied.append(number)
        if version > SCHEMA_VERSION:
            raise LxdctlError("The state store %s has schema version %d, newer than this lxdctl knows (%d); "
                              "upgrade lxdctl" % (redact_url(self.url), version, SCHEMA_VERSION))
        return applied

    def migrations(self):
        return self._read("SELECT version, name, applied_at FROM schema_migrations ORDER BY version")

    # projects --------------------------------------------------------------------
    def _project_id(self, project, required=True):
        _names.project_name(project, "project")
        row = self._one("SELECT id FROM projects WHERE name = ?", (project,))
        if row is None and required:
            raise LxdctlError("Project %s does not exist in the state" % project)
        return row["id"] if row else None

    def get_project(self, name):
        _names.project_name(name, "project")
        rows = self._read("SELECT %s FROM projects WHERE name = ?" % ", ".join(PROJECT_COLUMNS), (name,))
        return rows[0] if rows else None

    def list_projects(self, status=None):
        """Every project, ordered by name: one SELECT."""
        sql = "SELECT %s FROM projects" % ", ".join(PROJECT_COLUMNS)
        params = ()
        if status:
            sql += " WHERE status = ?"
            params = (status,)
        return self._read(sql + " ORDER BY name", params)

    @staticmethod
    def normalize_project_fields(fields):
        return _normalize(PROJECT_FIELDS, fields, "project field")

    def plan_project(self, name, **fields):
        """``(before, after)`` of ``upsert_project`` without writing; ``before`` is None if new."""
        _names.project_name(name, "project")
        fields = self.normalize_project_fields(fields)
        before = self.get_project(name)
        if before is None:
            after = dict((c, None) for c in PROJECT_COLUMNS)
            after.update(name=name, status="creating", git_branch="main", ssl=False)
        else:
            after = dict(before)
        after.update(fields)
        return before, after

    def upsert_project(self, name, **fields):
        """Create or update a project; returns ``(row, changed)``.  Unchanged fields write nothing."""
        fields = self.normalize_project_fields(fields)
        _names.project_name(name, "project")
        def write():
            before = self._one("SELECT %s FROM projects WHERE name = ?" % ", ".join(PROJECT_COLUMNS)
                               + self._dialect.for_update, (name,))
            now = _ts(_utcnow())
            if before is None:
                values = dict(status="creating", git_branch="main", ssl=False)
                values.update(fields)
                values.update(name=name, created_at=now, updated_at=now)
                self._insert("projects", values)
                changed = True
            else:
                delta = dict((k, v) for k, v in fields.items() if before.get(k) != v)
                changed = bool(delta)
                if changed:
                    delta["updated_at"] = now
                    self._update("projects", delta, "id = ?", (before["id"],))
            return self._one("SELECT %s FROM projects WHERE name = ?" % ", ".join(PROJECT_COLUMNS), (name,)), changed

        return self._retrying("write project %s" % name, write)

    def delete_project(self, name):
        """Remove a project and everything it owns; returns whether it existed."""
        _names.project_name(name, "project")
        with self.transaction(what="delete project %s" % name):
            cur = self._execute("DELETE FROM projects WHERE name = ?", (name,))
            return cur.rowcount > 0

    def _insert(self, table, values):
        columns = list(values)
        cur = self._execute(
            "INSERT INTO %s (%s) VALUES (%s) RETURNING id" % (table, ", ".join(columns), ", ".join("?" * len(columns))),
            [_param(c, values[c]) for c in columns],
        )
        return cur.fetchone()[0]

    def _update(self, table, values, where, params):
        columns = list(values)
        return self._execute(
            "UPDATE %s SET %s WHERE %s" % (table, ", ".join("%s = ?" % c for c in columns), where),
            [_param(c, values[c]) for c in columns] + list(params),
        ).rowcount

    # env -------------------------------------------------------------------------
    def list_env(self, project):
        """``[{key, is_secret, updated_at}]`` without values (no key file needed)."""
        pid = self._project_id(project)
        return self._read("SELECT key, is_secret, updated_at FROM env_vars WHERE project_id = ? ORDER BY key", (pid,))

    def get_env(self, project, reveal=False):
        """``{key: value}``; values of secret vars are ``MASK`` unless ``reveal``."""
        pid = self._project_id(project)
        env = {}
        for row in self._read("SELECT key, value_encrypted, is_secret FROM env_vars WHERE project_id = ? ORDER BY key",
                              (pid,)):
            if row["is_secret"] and not reveal:
                env[row["key"]] = MASK
            else:
                env[row["key"]] = self.cipher.decrypt(row["value_encrypted"], "env_vars", project, row["key"])
        return env

    def plan_env(self, project, values, secret_keys=()):
        """The keys ``set_env`` would change (new value or new secret flag), sorted."""
        values = self._check_env(values)
        pid = self._project_id(project)
        current = dict((r["key"], r) for r in self._read(
            "SELECT key, value_encrypted, is_secret FROM env_vars WHERE project_id = ?", (pid,)))
        changed = []
        for key, value in values.items():
            row = current.get(key)
            if row is None or bool(row["is_secret"]) != (key in secret_keys) or \
                    self.cipher.decrypt(row["value_encrypted"], "env_vars", project, key) != value:
                changed.append(key)
        return sorted(changed)

    @staticmethod
    def _check_env(values):
        checked = {}
        for key, value in (values or {}).items():
            _names.env_key(key, "env")
            if value is None or isinstance(value, (dict, list)):
                raise ValidationError("env %s" % key, "must be text", value)
            value = ("true" if value else "false") if isinstance(value, bool) else str(value)
            if "\x00" in value:
                raise ValidationError("env %s" % key, "must not contain NUL characters")
            checked[key] = value
        return checked

    def set_env(self, project, values, secret_keys=()):
        """Store ``values`` (literal text) encrypted; keys in ``secret_keys`` are secret.

        Returns the sorted list of keys that changed.
        """
        values = self._check_env(values)
        secret_keys = set(secret_keys or ())
        with self.transaction(what="set env of project %s" % project):
            changed = self.plan_env(project, values, secret_keys)
            pid = self._project_id(project)
            now = _ts(_utcnow())
            for key in changed:
                self._execute(
                    "INSERT INTO env_vars (project_id, key, value_encrypted, is_secret, updated_at) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (project_id, key) DO UPDATE SET value_encrypted = excluded.value_encrypted, "
                    "is_secret = excluded.is_secret, updated_at = excluded.updated_at",
                    (pid, key, self.cipher.encrypt(values[key], "env_vars", project, key), key in secret_keys, now),
                )
        return changed

    def unset_env(self, project, keys):
        """Remove ``keys``; returns the sorted list of keys that existed."""
        for key in keys:
            _names.env_key(key, "env")
        with self.transaction(what="unset env of project %s" % project):
            pid = self._project_id(project)
            removed = []
            for key in sorted(set(keys)):
                if self._execute("DELETE FROM env_vars WHERE project_id = ? AND key = ?", (pid, key)).rowcount:
                    removed.append(key)
        return removed

    # secrets ---------------------------------------------------------------------
    def get_secret(self, project, name):
        """The decrypted secret or None.  ``project`` None means a platform-wide secret."""
        _check_secret_name(name)
        row = self._secret_row(project, name)
        return None if row is None else self.cipher.decrypt(row["value_encrypted"], "secrets", project, name)

    def _secret_row(self, project, name):
        if project is None:
            return self._one("SELECT id, value_encrypted FROM secrets WHERE project_id IS NULL AND name = ?", (name,))
        pid = self._project_id(project)
        return self._one("SELECT id, value_encrypted FROM secrets WHERE project_id = ? AND name = ?", (pid, name))

    def get_or_create_secret(self, project, name, length=32, rotate=False):
        """``(value, changed)``: the stored secret, or a new one of ``length`` characters."""
        _check_secret_name(name)
        length = _int(8, 4096)(length, "length")
        for attempt in range(3):
            try:
                with self.transaction(what="write secret %s" % name, retry_conflicts=True):
                    row = self._secret_row(project, name)
                    if row is not None and not rotate:
                        return self.cipher.decrypt(row["value_encrypted"], "secrets", project, name), False
                    value = generate_secret(length)
                    sealed = self.cipher.encrypt(value, "secrets", project, name)
                    now = _ts(_utcnow())
                    if row is None:
                        pid = None if project is None else self._project_id(project)
                        self._insert("secrets", dict(project_id=pid, name=name, value_encrypted=sealed,
                                                     created_at=now, updated_at=now))
                    else:
                        self._update("secrets", dict(value_encrypted=sealed, updated_at=now), "id = ?", (row["id"],))
                    return value, True
            except self._integrity_error:
                if attempt == 2:
                    raise LxdctlError("Failed to create secret %s: another process keeps writing it" % name)
                # another process created it between our read and insert; read theirs.
        raise AssertionError("unreachable")

    def delete_secret(self, project, name):
        _check_secret_name(name)
        with self.transaction(what="delete secret %s" % name):
            row = self._secret_row(project, name)
            if row is None:
                return False
            self._execute("DELETE FROM secrets WHERE id = ?", (row["id"],))
            return True

    def list_secrets(self, project):
        """Names of a project's secrets (never values)."""
        if project is None:
            return self._read("SELECT name, created_at, updated_at FROM secrets WHERE project_id IS NULL ORDER BY name")
        pid = self._project_id(project)
        return self._read("SELECT name, created_at, updated_at FROM secrets WHERE project_id = ? ORDER BY name", (pid,))

    # databases -------------------------------------------------------------------
    def _database_row(self, pid, dtype, name):
        return self._one("SELECT %s FROM databases WHERE project_id = ? AND type = ? AND name = ?"
                         % ", ".join(DATABASE_COLUMNS), (pid, dtype, name))

    def list_databases(self, project):
        pid = self._project_id(project)
        rows = self._read("SELECT %s FROM databases WHERE project_id = ? ORDER BY type, name"
                          % ", ".join(DATABASE_COLUMNS), (pid,))
        return [_public_database(r) for r in rows]

    def get_database(self, project, dtype, name, reveal=False):
        pid = self._project_id(project)
        row = self._database_row(pid, dtype, name)
        if row is None:
            return None
        public = _public_database(row)
        if reveal and row["password_encrypted"]:
            public["password"] = self.cipher.decrypt(row["password_encrypted"], "databases", project,
                                                     "%s/%s" % (dtype, name))
        return public

    def plan_database(self, project, dtype, name, password=None, **fields):
        """``(before, after, password_changed)`` public rows of ``add_database``, no writes."""
        _choice(DATABASE_TYPES)(dtype, "type")
        name = _one_line(name, "name")
        if password is not None:
            password = _one_line(password, "password")
        fields = _normalize(DATABASE_FIELDS, fields, "database field")
        if fields.get("connection_string"):
            fields["connection_string"] = strip_password(fields["connection_string"], password)
        pid = self._project_id(project)
        row = self._database_row(pid, dtype, name)
        before = None if row is None else _public_database(row)
        after = dict(before or dict((c, None) for c in DATABASE_COLUMNS if c != "password_encrypted"))
        after.update(fields)
        after.update(type=dtype, name=name, project_id=pid)
        password_changed = bool(password) and (
            row is None or not row["password_encrypted"]
            or self.cipher.decrypt(row["password_encrypted"], "databases", project, "%s/%s" % (dtype, name)) != password)
        after["has_password"] = bool(password) or bool(before and before["has_password"])
        return before, after, password_changed

    def add_database(self, project, dtype, name, password=None, **fields):
        """Create or update the database row ``(project, type, name)``; returns ``(row, changed)``.

        ``password`` is stored encrypted; a password inside ``connection_string`` is masked.
        """
        def write():
            before, after, password_changed = self.plan_database(project, dtype, name, password=password, **fields)
            values = dict((k, after[k]) for k in DATABASE_FIELDS if after.get(k) != (before or {}).get(k))
            if password_changed:
                values["password_encrypted"] = self.cipher.encrypt(password, "databases", project, "%s/%s" % (dtype, name))
            if before is None:
                values.update(project_id=after["project_id"], type=dtype, name=name, created_at=_ts(_utcnow()))
                self._insert("databases", values)
            elif values:
                self._update("databases", values, "id = ?", (before["id"],))
            row = self._database_row(after["project_id"], dtype, name)
            return _public_database(row), bool(before is None or values)

        return self._retrying("write database %s of project %s" % (name, project), write)

    def remove_database(self, project, dtype, name):
        with self.transaction(what="remove database %s of project %s" % (name, project)):
            pid = self._project_id(project)
            return self._execute("DELETE FROM databases WHERE project_id = ? AND type = ? AND name = ?",
                                 (pid, dtype, name)).rowcount > 0

    # dns records -----------------------------------------------------------------
    def _dns_key(self, zone, name, rtype):
        zone = _names.zone_name(zone, "zone")
        rtype = _choice(_names.RECORD_TYPES)((rtype or "").upper(), "type")
        name = _names.zone_name(name, "name") if name not in ("@", "", None) else zone
        if name != zone and not name.endswith("." + zone):
            raise ValidationError("name", "must be inside zone %s" % zone, name)
        return zone, name, rtype

    def list_dns_records(self, project):
        pid = self._project_id(project)
        return self._read("SELECT %s FROM dns_records WHERE project_id = ? ORDER BY zone, name, type"
                          % ", ".join(DNS_COLUMNS), (pid,))

    def plan_dns_record(self, project, zone, name, rtype, content, ttl=3600, priority=None):
        zone, name, rtype = self._dns_key(zone, name, rtype)
        content = _names.record_content(rtype, content)
        fields = _normalize(DNS_FIELDS, dict(ttl=ttl, priority=priority), "dns field")
        pid = self._project_id(project)
        before = self._one("SELECT %s FROM dns_records WHERE project_id = ? AND zone = ? AND name = ? AND type = ?"
                           % ", ".join(DNS_COLUMNS), (pid, zone, name, rtype))
        after = dict(before or dict((c, None) for c in DNS_COLUMNS))
        after.update(fields, project_id=pid, zone=zone, name=name, type=rtype, content=content)
        return before, after

    def add_dns_record(self, project, zone, name, rtype, content, ttl=3600, priority=None):
        """Create or update the record ``(project, zone, name, type)``; returns ``(row, changed)``."""
        def write():
            before, after = self.plan_dns_record(project, zone, name, rtype, content, ttl, priority)
            values = dict((k, after[k]) for k in ("content", "ttl", "priority") if (before or {}).get(k) != after[k])
            if before is None:
                values.update(project_id=after["project_id"], zone=after["zone"], name=after["name"],
                              type=after["type"], created_at=_ts(_utcnow()))
                self._insert("dns_records", values)
            elif values:
                self._update("dns_records", values, "id = ?", (before["id"],))
            row = self._one("SELECT %s FROM dns_records WHERE project_id = ? AND zone = ? AND name = ? AND type = ?"
                            % ", ".join(DNS_COLUMNS), (after["project_id"], after["zone"], after["name"], after["type"]))
            return row, bool(before is None or values)

        return self._retrying("write DNS record %s of project %s" % (name, project), write)

    def remove_dns_record(self, project, zone, name, rtype):
        zone, name, rtype = self._dns_key(zone, name, rtype)
        with self.transaction(what="remove DNS record %s of project %s" % (name, project)):
            pid = self._project_id(project)
            return self._execute("DELETE FROM dns_records WHERE project_id = ? AND zone = ? AND name = ? AND type = ?",
                                 (pid, zone, name, rtype)).rowcount > 0

    # deployments -----------------------------------------------------------------
    def create_deployment(self, project, **fields):
        """A new deployment row (status ``pending`` unless given); returns the row."""
        fields = _normalize(DEPLOYMENT_FIELDS, fields, "deployment field")
        values = dict(status="pending", deploy_type="standard", started_at=_ts(_utcnow()))
        values.update(fields)
        if values["status"] in DEPLOYMENT_TERMINAL and not values.get("completed_at"):
            values["completed_at"] = _ts(_utcnow())
        with self.transaction(what="record a deployment of project %s" % project):
            values["project_id"] = self._project_id(project)
            new_id = self._insert("deployments", values)
            return self.get_deployment(new_id)

    def get_deployment(self, deployment_id):
        return self._one("SELECT %s FROM deployments WHERE id = ?" % ", ".join(DEPLOYMENT_COLUMNS), (int(deployment_id),))

    def plan_deployment(self, deployment_id, **fields):
        fields = _normalize(DEPLOYMENT_FIELDS, fields, "deployment field")
        before = self.get_deployment(deployment_id)
        if before is None:
            raise LxdctlError("Deployment %s does not exist in the state" % deployment_id)
        after = dict(before)
        after.update(fields)
        if after["status"] in DEPLOYMENT_TERMINAL and before["status"] not in DEPLOYMENT_TERMINAL \
                and not fields.get("completed_at"):
            after["completed_at"] = _ts(_utcnow())
        return before, after

    def update_deployment(self, deployment_id, **fields):
        """Update a deployment (``completed_at`` set when it reaches a final status); ``(row, changed)``."""
        with self.transaction(what="update deployment %s" % deployment_id):
            before, after = self.plan_deployment(deployment_id, **fields)
            delta = dict((k, v) for k, v in after.items() if before.get(k) != v)
            if delta:
                self._update("deployments", delta, "id = ?", (before["id"],))
            return self.get_deployment(deployment_id), bool(delta)

    def delete_deployment(self, deployment_id):
        with self.transaction(what="delete deployment %s" % deployment_id):
            return self._execute("DELETE FROM deployments WHERE id = ?", (int(deployment_id),)).rowcount > 0

    def list_deployments(self, project, limit=50):
        pid = self._project_id(project)
        return self._read("SELECT %s FROM deployments WHERE project_id = ? ORDER BY id DESC LIMIT ?"
                          % ", ".join(DEPLOYMENT_COLUMNS), (pid, int(limit)))

    def last_deployment(self, project):
        rows = self.list_deployments(project, limit=1)
        return rows[0] if rows else None

    # pipelines -------------------------------------------------------------------
    def upsert_pipeline(self, project, name, config=None, triggers=None):
        """Create or replace the pipeline ``(project, name)``; returns ``(row, changed)``."""
        name = _one_line(name, "pipeline")
        _json_value(config, "config")
        _json_value(triggers, "triggers")
        def write():
            pid = self._project_id(project)
            before = self._one("SELECT %s FROM pipelines WHERE project_id = ? AND name = ?"
                               % ", ".join(PIPELINE_COLUMNS), (pid, name))
            if before is None:
                self._insert("pipelines", dict(project_id=pid, name=name, config=config, triggers=triggers,
                                               created_at=_ts(_utcnow())))
                changed = True
            else:
                changed = before["config"] != config or before["triggers"] != triggers
                if changed:
                    self._update("pipelines", dict(config=config, triggers=triggers), "id = ?", (before["id"],))
            return self.get_pipeline(project, name), changed

        return self._retrying("write pipeline %s of project %s" % (name, project), write)

    def get_pipeline(self, project, name):
        pid = self._project_id(project)
        return self._one("SELECT %s FROM pipelines WHERE project_id = ? AND name = ?"
                         % ", ".join(PIPELINE_COLUMNS), (pid, name))

    def list_pipelines(self, project):
        pid = self._project_id(project)
        return self._read("SELECT %s FROM pipelines WHERE project_id = ? ORDER BY name"
                          % ", ".join(PIPELINE_COLUMNS), (pid,))

    def delete_pipeline(self, project, name):
        with self.transaction(what="delete pipeline %s of project %s" % (name, project)):
            pid = self._project_id(project)
            return self._execute("DELETE FROM pipelines WHERE project_id = ? AND name = ?", (pid, name)).rowcount > 0

    def create_pipeline_run(self, project, pipeline, **fields):
        """A new run with the next run_number; returns the row."""
        fields = _normalize(RUN_FIELDS, fields, "pipeline run field")
        values = dict(status="queued")
        values.update(fields)
        for attempt in range(3):
            try:
                with self.transaction(what="start a run of pipeline %s" % pipeline, retry_conflicts=True):
                    row = self.get_pipeline(project, pipeline)
                    if row is None:
                        raise LxdctlError("Pipeline %s of project %s does not exist in the state" % (pipeline, project))
                    top = self._one("SELECT MAX(run_number) AS n FROM pipeline_runs WHERE pipeline_id = ?", (row["id"],))
                    values.update(pipeline_id=row["id"], run_number=(top["n"] or 0) + 1)
                    new_id = self._insert("pipeline_runs", values)
                    self._update("pipelines", dict(last_run_at=_ts(_utcnow()), last_status=values["status"]),
                                 "id = ?", (row["id"],))
                    return self._one("SELECT %s FROM pipeline_runs WHERE id = ?" % ", ".join(RUN_COLUMNS), (new_id,))
            except self._integrity_error:
                if attempt == 2:
                    raise LxdctlError("Failed to number a run of pipeline %s: too many concurrent runs" % pipeline)
        raise AssertionError("unreachable")

    def update_pipeline_run(self, run_id, **fields):
        fields = _normalize(RUN_FIELDS, fields, "pipeline run field")
        with self.transaction(what="update pipeline run %s" % run_id):
            before = self._one("SELECT %s FROM pipeline_runs WHERE id = ?" % ", ".join(RUN_COLUMNS), (int(run_id),))
            if before is None:
                raise LxdctlError("Pipeline run %s does not exist in the state" % run_id)
            if fields.get("status") in RUN_TERMINAL and not before["completed_at"] and "completed_at" not in fields:
                fields["completed_at"] = _ts(_utcnow())
            delta = dict((k, v) for k, v in fields.items() if before.get(k) != v)
            if delta:
                self._update("pipeline_runs", delta, "id = ?", (before["id"],))
                if "status" in delta:
                    self._update("pipelines", dict(last_status=delta["status"]), "id = ?", (before["pipeline_id"],))
            return self._one("SELECT %s FROM pipeline_runs WHERE id = ?" % ", ".join(RUN_COLUMNS), (before["id"],)), bool(delta)

    def list_pipeline_runs(self, project, pipeline, limit=50):
        row = self.get_pipeline(project, pipeline)
        if row is None:
            return []
        return self._read("SELECT %s FROM pipeline_runs WHERE pipeline_id = ? ORDER BY run_number DESC LIMIT ?"
                          % ", ".join(RUN_COLUMNS), (row["id"], int(limit)))

    # audit -----------------------------------------------------------------------
    def audit(self, actor, action, project=None, detail=None):
        """Append to the audit log; secret-looking keys of ``detail`` are redacted."""
        actor = _one_line(actor or "unknown", "actor")
        action = _one_line(action, "action")
        with self.transaction(what="write the audit log"):
            self._insert("audit_log", dict(at=_ts(_utcnow()), actor=actor, action=action, project=project,
                                           detail=redact(detail)))

    def list_audit(self, project=None, limit=100):
        sql = "SELECT id, at, actor, action, project, detail FROM audit_log"
        params = []
        if project is not None:
            sql += " WHERE project = ?"
            params.append(project)
        return self._read(sql + " ORDER BY id DESC LIMIT ?", params + [int(limit)])

    # webhook deliveries (API server) --------------------------------------------
    def record_webhook_delivery(self, provider, delivery_id, project=None):
        """Remember a webhook delivery; False if ``(provider, delivery_id)`` was seen before."""
        provider = _one_line(provider, "provider")
        delivery_id = _one_line(delivery_id, "delivery_id")
        if not delivery_id or len(delivery_id) > 200:
            raise ValidationError("delivery_id", "must be 1-200 characters", delivery_id)
        with self.transaction(what="record webhook delivery"):
            cur = self._execute("INSERT INTO webhook_deliveries (provider, delivery_id, project, received_at, status) "
                                "VALUES (?, ?, ?, ?, 'received') ON CONFLICT (provider, delivery_id) DO NOTHING",
                                (provider, delivery_id, project, _ts(_utcnow())))
            return cur.rowcount == 1

    def update_webhook_delivery(self, provider, delivery_id, status):
        with self.transaction(what="update webhook delivery"):
            return self._execute("UPDATE webhook_deliveries SET status = ? WHERE provider = ? AND delivery_id = ?",
                                 (_one_line(status, "status"), provider, delivery_id)).rowcount > 0

    # locks -----------------------------------------------------------------------
    def get_lock(self, name):
        return self._one("SELECT name, owner_pid, owner_host, acquired_at, expires_at FROM locks WHERE name = ?", (name,))

    def acquire_lock(self, name, ttl=DEFAULT_LOCK_TTL, pid=None, host=None):
        """Take the lock ``name`` for ``ttl`` seconds on behalf of ``pid`` on ``host``.

        Returns ``(row, acquired)``: ``acquired`` is False when the same owner already held it
        (its expiry is extended).  A lock held by a live owner raises ``LxdctlError``; one whose
        owner pid is dead on this host, or whose expiry passed, is taken over.  Without a pid
        the lock is time-based only.
        """
        if not isinstance(name, str) or not _LOCK_NAME_RE.match(name):
            raise ValidationError("lock", "must be 1-200 characters of letters, digits and _.:/-", name)
        ttl = float(ttl)
        if ttl <= 0:
            raise ValidationError("ttl", "must be a positive number of seconds", ttl)
        pid = None if pid in (None, "", 0) else int(pid)
        host = host or socket.gethostname()
        for attempt in range(5):
            try:
                with self.transaction(what="take lock %s" % name, retry_conflicts=True):
                    now = _utcnow()
                    expires = now + datetime.timedelta(seconds=ttl)
                    row = self._one("SELECT name, owner_pid, owner_host, acquired_at, expires_at FROM locks "
                                    "WHERE name = ?" + self._dialect.for_update, (name,))
                    if row is None:
                        self._execute("INSERT INTO locks (name, owner_pid, owner_host, acquired_at, expires_at) "
                                      "VALUES (?, ?, ?, ?, ?)", (name, pid, host, _ts(now), _ts(expires)))
                        return self.get_lock(name), True
                    same_owner = pid is not None and row["owner_pid"] == pid and row["owner_host"] == host
                    if same_owner:
                        self._execute("UPDATE locks SET expires_at = ? WHERE name = ?", (_ts(expires), name))
                        return self.get_lock(name), False
                    if not self._lock_stale(row, now, host):
                        raise lock_held_error(row)
                    self._execute("UPDATE locks SET owner_pid = ?, owner_host = ?, acquired_at = ?, expires_at = ? "
                                  "WHERE name = ?", (pid, host, _ts(now), _ts(expires), name))
                    return self.get_lock(name), True
            except self._integrity_error:
                # PostgreSQL: a concurrent INSERT of the same name won; read its row next time.
                time.sleep(0.01 * (attempt + 1))
        raise LxdctlError("%s: could not take the lock; retry later" % _describe_lock(name))

    @staticmethod
    def _lock_stale(row, now, host):
        if _parse_ts(row["expires_at"]) <= now:
            return True
        return bool(row["owner_pid"]) and row["owner_host"] == host and not pid_alive(row["owner_pid"])

    def release_lock(self, name, pid=None, host=None, force=False):
        """Release ``name`` if this owner (``pid`` on ``host``) holds it, or always with ``force``.

        Returns True if a lock was removed.  Releasing a lock held by another owner raises.
        """
        pid = None if pid in (None, "", 0) else int(pid)
        host = host or socket.gethostname()
        with self.transaction(what="release lock %s" % name):
            row = self._one("SELECT name, owner_pid, owner_host, acquired_at, expires_at FROM locks WHERE name = ?"
                            + self._dialect.for_update, (name,))
            if row is None:
                return False
            if not force and (row["owner_pid"] != pid or row["owner_host"] != host):
                if not self._lock_stale(row, _utcnow(), host):
                    raise LxdctlError("%s is held by pid %s on %s, not by pid %s on %s; not released"
                                      % (_describe_lock(name), row["owner_pid"], row["owner_host"], pid, host))
            self._execute("DELETE FROM locks WHERE name = ?", (name,))
            return True

    @contextlib.contextmanager
    def lock(self, name, ttl=DEFAULT_LOCK_TTL, pid=None):
        """``with store.lock("project:x", pid=os.getpid()):`` acquire, then release."""
        pid = pid or os.getpid()
        self.acquire_lock(name, ttl=ttl, pid=pid)
        try:
            yield
        finally:
            self.release_lock(name, pid=pid)


# --- helpers ------------------------------------------------------------------------
def open_from_params(params):
    """The store named by a module's ``state_url`` / ``state_key_file`` (or their fallbacks)."""
    return StateStore.open(url=params.get("state_url"), key_file=params.get("state_key_file"))


def default_actor():
    """Who the audit log names when the caller does not say: ``LXDCTL_ACTOR``, else the user."""
    for var in ("LXDCTL_ACTOR", "SUDO_USER", "USER", "LOGNAME"):
        if os.environ.get(var):
            return os.environ[var]
    return "uid:%d" % os.getuid()


def _check_secret_name(name):
    if not isinstance(name, str) or not _SECRET_NAME_RE.match(name):
        raise ValidationError("name", "a secret name is 1-128 letters, digits and _.- starting with a letter or digit", name)
    return name


def _param(column, value):
    if column in _JSON_COLUMNS:
        return None if value is None else json.dumps(value, sort_keys=True)
    return value


def _row(names, values):
    row = {}
    for name, value in zip(names, values):
        if value is None:
            row[name] = None
        elif name in _BOOL_COLUMNS:
            row[name] = bool(value)
        elif name in _JSON_COLUMNS:
            row[name] = json.loads(value) if isinstance(value, str) else value
        elif isinstance(value, datetime.datetime):
            row[name] = _ts(value)
        else:
            row[name] = value
    return row


def _public_database(row):
    public = dict((k, v) for k, v in row.items() if k != "password_encrypted")
    public["has_password"] = bool(row.get("password_encrypted"))
    return public


def _enable_wal(conn, sqlite3, attempts=100, pause=0.05):
    """Switch to WAL.  SQLite does not wait on busy_timeout for this switch, so processes
    opening a brand-new file at once get "database is locked"; they retry (5 s at most)."""
    for attempt in range(attempts):
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(pause)


def _connect_sqlite(path):
    import sqlite3

    directory = os.path.dirname(path)
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o700, exist_ok=True)
        if not os.path.exists(path):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        elif os.stat(path).st_mode & 0o077 and os.access(path, os.W_OK):
            os.chmod(path, 0o600)
    except OSError as exc:
        raise LxdctlError("Cannot create the state database %s: %s" % (path, exc.strerror or exc))
    old_umask = os.umask(0o077)  # the -wal and -shm files SQLite creates stay private too
    try:
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 30000")
        _enable_wal(conn, sqlite3)
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.Error as exc:
        raise LxdctlError("Cannot open the state database %s: %s%s" % (path, exc, _disk_full_hint(path)))
    finally:
        os.umask(old_umask)
    return conn


def _disk_full_hint(path):
    """A hint that the disk holding ``path`` is full, when it is; SQLite says only "disk I/O error"."""
    try:
        fs = os.statvfs(os.path.dirname(path))
    except OSError:
        return ""
    free = fs.f_bavail * fs.f_frsize
    if free >= 256 * 1024:
        return ""
    return " (the disk holding %s is full: %d KiB free; free some space and run the command again)" % (
        os.path.dirname(path), free // 1024)


def _connect_postgres(url):
    try:
        import psycopg2
    except ImportError as exc:
        raise LxdctlError("The psycopg2 Python library is required for a PostgreSQL state store: %s" % exc)
    try:
        conn = psycopg2.connect(url, connect_timeout=10, application_name="lxdctl-state")
    except psycopg2.Error as exc:
        raise LxdctlError("Cannot connect to the state database %s: %s" % (redact_url(url), str(exc).strip()))
    conn.autocommit = True  # transactions are explicit BEGIN/COMMIT, as with SQLite
    return conn
