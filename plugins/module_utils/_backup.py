# -*- coding: utf-8 -*-
"""Database backups of projects: dump, encrypt in chunks, store with a manifest, verify, restore.

A backup file (``<backup dir>/<project>/<id>.<postgres|mysql>.bak``)::

    MAGIC "LXDCTLBK" | version (1 byte) | header length (uint32 BE) | header (JSON, sorted keys)
    then chunks:  ciphertext length (uint32 BE) | nonce (12 bytes) | AES-256-GCM ciphertext+tag

Every chunk's associated data binds it to the project, database and backup id the *caller*
expects (not the ones the header claims), to the SHA-256 of the header, to its index and to
whether it is the last chunk.  So a chunk moved, dropped, reordered or copied from another
backup fails to decrypt, a file cut at a chunk boundary lacks its final chunk, and another
project's backup cannot be restored even if its header is rewritten.

The key is 32 random bytes in a root-only key file (``/etc/lxdctl/backup.key``, 0600, made on
first use).  Its id (the first 8 bytes of SHA-256 over a label and the key) is in the header, so
a backup encrypted with another key is told apart from a damaged one.

The manifest (``manifest.json`` beside the files) lists every backup with its SHA-256 and size.
A restore checks, in order, before touching any database: the manifest entry, size and
checksum, the header (project, database, key id), then decrypts the whole file once.

Writes go to a temporary file that is fsynced and renamed, then the manifest is replaced the
same way: a full disk leaves the older backups and the manifest as they were.

Nothing user-supplied reaches a shell; pg_dump, pg_restore, mariadb-dump and mariadb get
argument lists, and the admin password travels in PGPASSWORD / MYSQL_PWD, never argv.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import struct
import subprocess
import tempfile
import threading

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError, ValidationError

try:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.exceptions import InvalidTag

    HAS_CRYPTOGRAPHY = True
except ImportError:  # reported by require_cryptography()
    HAS_CRYPTOGRAPHY = False

DEFAULT_BACKUP_DIR = "/var/lib/lxdctl/backups"
DEFAULT_KEY_FILE = "/etc/lxdctl/backup.key"
DEFAULT_KEEP = 7
CHUNK_SIZE = 1024 * 1024
MAGIC = b"LXDCTLBK"
VERSION = 1
NONCE_SIZE = 12
TAG_SIZE = 16
MAX_HEADER = 64 * 1024
MANIFEST = "manifest.json"
DB_TYPES = ("postgres", "mysql")
STATE_TYPES = {"postgres": "postgresql", "mysql": "mysql"}
FORMATS = {"postgres": "pg_dump-custom", "mysql": "mariadb-dump-sql"}
# Microseconds since 0.1.0's first ids (which had none, and still validate), so that
# backups taken within one second sort in the order they were made: retention keeps the newest.
_ID_RE = re.compile(r"^[0-9]{8}T[0-9]{6}(?:[0-9]{6})?Z-[0-9a-f]{6}$")
_SQL_IDENT_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def require_cryptography():
    if not HAS_CRYPTOGRAPHY:
        raise LxdctlError("The cryptography Python library is required on the managed host")


# --- names and ids --------------------------------------------------------------------------
def new_backup_id(now=None):
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(3)


def backup_id(value, field="backup"):
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise ValidationError(field, "must be a backup id such as 20260101T120000Z-a1b2c3 (see `lxdctl db backups`)", value)
    return value


def sql_identifier(value, field="into"):
    if not isinstance(value, str) or not _SQL_IDENT_RE.match(value):
        raise ValidationError(field, "must be 1-63 lowercase letters, digits and underscores, starting with a letter", value)
    return value


def db_type(value, field="db"):
    if value not in DB_TYPES:
        raise ValidationError(field, "must be postgres or mysql", value)
    return value


# --- the key --------------------------------------------------------------------------------
def key_id(key):
    return hashlib.sha256(b"lxdctl-backup-key-id\x00" + key).hexdigest()[:16]


def load_key(path, create=True):
    """The 32-byte key from ``path``; created (0600, directory 0700) when missing and ``create``."""
    try:
        with open(path, "rb") as handle:
            key = handle.read()
    except (IOError, OSError) as exc:
        if exc.errno != errno.ENOENT or not create:
            raise LxdctlError("Cannot read the backup key %s: %s" % (path, exc.strerror))
        directory = os.path.dirname(path) or "."
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o700)
        key = secrets.token_bytes(32)
        tmp = "%s.tmp-%d" % (path, os.getpid())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, key)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # never replaces a key another process made meanwhile
        except OSError as link_exc:
            if link_exc.errno != errno.EEXIST:
                raise LxdctlError("Cannot create the backup key %s: %s" % (path, link_exc.strerror))
        finally:
            os.unlink(tmp)
        return load_key(path, create=False)
    mode = os.stat(path).st_mode & 0o777
    if mode & 0o077:
        raise LxdctlError("The backup key %s is readable by others (mode %o); chmod 600 it" % (path, mode))
    if len(key) != 32:
        raise LxdctlError("The backup key %s is not 32 bytes (got %d)" % (path, len(key)))
    return key


# --- encryption -----------------------------------------------------------------------------
def chunk_aad(project, database, bid, header_digest, index, final):
    return b"\x00".join([b"lxdctl-backup-v1", project.encode(), database.encode(), bid.encode(), header_digest]) + \
        struct.pack(">QB", index, 1 if final else 0)


def make_header(project, database, dtype, bid, key, created_at=None):
    header = {
        "backup_id": bid, "project": project, "database": database, "db_type": dtype,
        "format": FORMATS[dtype], "key_id": key_id(key), "chunk_size": CHUNK_SIZE,
        "created_at": created_at or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


class EncryptingWriter(object):
    """Writes the header, then ``write()`` data as encrypted chunks; ``close()`` writes the final one."""

    def __init__(self, handle, key, project, database, bid, header_bytes, chunk_size=CHUNK_SIZE):
        require_cryptography()
        self.handle = handle
        self.aead = AESGCM(key)
        self.project, self.database, self.bid = project, database, bid
        self.digest = hashlib.sha256(header_bytes).digest()
        self.chunk_size = chunk_size
        self.buffer = b""
        self.index = 0
        self.sha = hashlib.sha256()
        self.size = 0
        self._out(MAGIC + struct.pack(">BI", VERSION, len(header_bytes)) + header_bytes)

    def _out(self, data):
        self.handle.write(data)
        self.sha.update(data)
        self.size += len(data)

    def _chunk(self, data, final):
        nonce = secrets.token_bytes(NONCE_SIZE)
        aad = chunk_aad(self.project, self.database, self.bid, self.digest, self.index, final)
        sealed = self.aead.encrypt(nonce, data, aad)
        self._out(struct.pack(">I", len(sealed)) + nonce + sealed)
        self.index += 1

    def write(self, data):
        self.buffer += data
        # keep at least one byte back so the last chunk written is the one marked final
        while len(self.buffer) > self.chunk_size:
            self._chunk(self.buffer[:self.chunk_size], False)
            self.buffer = self.buffer[self.chunk_size:]

    def close(self):
        self._chunk(self.buffer, True)
        self.buffer = b""
        return self.sha.hexdigest(), self.size


def read_header(handle):
    """``(header dict, header bytes)`` of an open backup file, or ``LxdctlError``."""
    start = handle.read(len(MAGIC) + 5)
    if len(start) < len(MAGIC) + 5 or start[:len(MAGIC)] != MAGIC:
        raise LxdctlError("not an lxdctl backup file (bad magic)")
    version, length = struct.unpack(">BI", start[len(MAGIC):])
    if version != VERSION:
        raise LxdctlError("backup format version %d is not supported" % version)
    if length > MAX_HEADER:
        raise LxdctlError("the backup header is corrupt (length %d)" % length)
    raw = handle.read(length)
    if len(raw) != length:
        raise LxdctlError("the backup is truncated (inside its header)")
    try:
        header = json.loads(raw.decode())
    except ValueError:
        raise LxdctlError("the backup header is corrupt")
    return header, raw


def decrypt_chunks(handle, key, project, database, bid, header_bytes):
    """Yield the plaintext chunks; raises ``LxdctlError`` for a tampered, reordered or truncated file."""
    require_cryptography()
    aead = AESGCM(key)
    digest = hashlib.sha256(header_bytes).digest()
    index = 0
    while True:
        head = handle.read(4 + NONCE_SIZE)
        if not head:
            raise LxdctlError("the backup is truncated: its final chunk is missing")
        if len(head) < 4 + NONCE_SIZE:
            raise LxdctlError("the backup is truncated (chunk %d)" % index)
        (length,) = struct.unpack(">I", head[:4])
        if length < TAG_SIZE or length > CHUNK_SIZE * 4 + TAG_SIZE:
            raise LxdctlError("the backup is corrupt (chunk %d has a bad length)" % index)
        sealed = handle.read(length)
        if len(sealed) != length:
            raise LxdctlError("the backup is truncated (chunk %d)" % index)
        nonce = head[4:]
        plain = None
        final = False
        for final in (False, True):
            try:
                plain = aead.decrypt(nonce, sealed, chunk_aad(project, database, bid, digest, index, final))
                break
            except InvalidTag:
                continue
        if plain is None:
            raise LxdctlError("the backup does not authenticate (chunk %d): it was altered, or it is not a backup "
                              "of %s/%s" % (index, project, database))
        yield plain
        index += 1
        if final:
            if handle.read(1):
                raise LxdctlError("the backup is corrupt: data after its final chunk")
            return


# --- storage --------------------------------------------------------------------------------
def project_dir(backup_dir, project):
    return os.path.join(backup_dir, project)


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(path):
    if not os.path.isdir(path):
        try:
            os.makedirs(path, 0o700)
        except OSError as exc:
            raise LxdctlError("Cannot create the backup directory %s: %s" % (path, exc.strerror))
    os.chmod(path, 0o700)


def read_manifest(directory):
    path = os.path.join(directory, MANIFEST)
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return {"version": 1, "backups": []}
        raise LxdctlError("Cannot read the backup manifest %s: %s" % (path, exc.strerror))
    except ValueError:
        raise LxdctlError("The backup manifest %s is not valid JSON" % path)
    data.setdefault("backups", [])
    return data


def write_atomic(path, data):
    """Write ``data`` to ``path`` through a fsynced temp file and a rename; the old file stays on failure."""
    tmp = "%s.tmp-%d" % (path, os.getpid())
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
        _fsync_dir(os.path.dirname(path))
    except OSError:
        _unlink(tmp)
        raise


def write_manifest(directory, manifest):
    body = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    write_atomic(os.path.join(directory, MANIFEST), body)


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


class DirLock(object):
    """An exclusive flock on ``<dir>/.lock`` for the manifest's read-modify-write."""

    def __init__(self, directory):
        self.path = os.path.join(directory, ".lock")
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def list_backups(backup_dir, project, dtype=None):
    """The project's backups, newest first (manifest entries)."""
    directory = project_dir(backup_dir, project)
    if not os.path.isdir(directory):
        return []
    rows = [b for b in read_manifest(directory)["backups"] if dtype is None or b.get("db_type") == dtype]
    return sorted(rows, key=lambda b: b["id"], reverse=True)


def retention_plan(backups, keep):
    """The entries to delete so that the newest ``keep`` of each (db type, database) stay."""
    if keep < 1:
        raise ValidationError("keep", "must be at least 1", keep)
    doomed, seen = [], {}
    for entry in sorted(backups, key=lambda b: b["id"], reverse=True):
        group = (entry.get("db_type"), entry.get("database"))
        seen[group] = seen.get(group, 0) + 1
        if seen[group] > keep:
            doomed.append(entry)
    return doomed


def _disk_error(exc, directory, kept):
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return LxdctlError("No space left in %s: the new backup was not kept; the %d earlier backup(s) are intact. "
                           "Free some space or lower the retention (--keep)." % (directory, kept))
    return LxdctlError("Cannot write the backup in %s: %s" % (directory, exc.strerror or exc))


# --- dump and restore commands ------------------------------------------------------------------
def pg_env(conn):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PGPASSWORD": conn.get("admin_password") or "",
           "PGCONNECT_TIMEOUT": "10", "PGAPPNAME": "lxdctl-backup"}
    return env


def pg_common(conn):
    return ["-h", str(conn["host"]), "-p", str(conn["port"]), "-U", str(conn["admin_user"]), "--no-password"]


def pg_dump_argv(conn, database):
    return ["pg_dump", "-Fc"] + pg_common(conn) + ["-d", database]


def pg_restore_argv(conn, database):
    return ["pg_restore", "--exit-on-error", "--single-transaction"] + pg_common(conn) + ["-d", database]


def my_env(conn):
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MYSQL_PWD": conn.get("admin_password") or ""}


def my_common(conn):
    return ["--host=%s" % conn["host"], "--port=%s" % conn["port"], "--user=%s" % conn["admin_user"],
            "--protocol=TCP", "--default-character-set=utf8mb4"]


def mysql_dump_argv(conn, database):
    return (["mariadb-dump"] + my_common(conn)
            + ["--single-transaction", "--routines", "--triggers", "--events", "--hex-blob", "--skip-dump-date",
               "--", database])


def mysql_load_argv(conn, database):
    return ["mariadb"] + my_common(conn) + ["--batch", "--database=%s" % database]


def _stderr_text(data, secrets_=()):
    text = (data or b"").decode("utf-8", "replace").strip()
    for secret in secrets_:
        if secret:
            text = text.replace(secret, "********")
    lines = text.splitlines()
    return " / ".join(lines[-5:]) if lines else ""


class BackupStore(object):
    """One project's backups in ``backup_dir/<project>``."""

    def __init__(self, backup_dir, project, key_file, create_key=True):
        self.backup_dir = backup_dir
        self.project = project
        self.dir = project_dir(backup_dir, project)
        self.key_file = key_file
        self._key = None
        self.create_key = create_key

    @property
    def key(self):
        if self._key is None:
            self._key = load_key(self.key_file, create=self.create_key)
        return self._key

    def file_for(self, bid, dtype):
        return os.path.join(self.dir, "%s.%s.bak" % (bid, dtype))

    # backup ---------------------------------------------------------------------------------
    def backup(self, dtype, database, dump_argv, env, keep=DEFAULT_KEEP, secrets_=()):
        """Run the dump into a new encrypted file; returns ``(entry, removed entries)``."""
        if not os.path.isdir(self.backup_dir):
            ensure_dir(self.backup_dir)
        ensure_dir(self.dir)
        key = self.key
        bid = new_backup_id()
        header = make_header(self.project, database, dtype, bid, key)
        final_path = self.file_for(bid, dtype)
        tmp = os.path.join(self.dir, ".tmp-%s" % bid)
        kept = len(list_backups(self.backup_dir, self.project))
        proc = None
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                writer = EncryptingWriter(handle, key, self.project, database, bid, header)
                try:
                    proc = subprocess.Popen(dump_argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, env=env)
                except OSError as exc:
                    raise LxdctlError("Cannot run %s: %s" % (dump_argv[0], exc.strerror))
                err_chunks = []
                reader = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()))
                reader.daemon = True
                reader.start()
                while True:
                    data = proc.stdout.read(CHUNK_SIZE)
                    if not data:
                        break
                    writer.write(data)
                rc = proc.wait()
                reader.join()
                if rc != 0:
                    detail = _stderr_text(b"".join(err_chunks), secrets_)
                    raise LxdctlError("%s failed (rc=%d): %s" % (dump_argv[0], rc, detail))
                sha, size = writer.close()
                handle.flush()
                os.fsync(handle.fileno())
            os.rename(tmp, final_path)
            _fsync_dir(self.dir)
        except OSError as exc:
            _unlink(tmp)
            raise _disk_error(exc, self.dir, kept)
        except BaseException:
            _unlink(tmp)
            raise
        finally:
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
        entry = {"id": bid, "project": self.project, "database": database, "db_type": dtype,
                 "format": FORMATS[dtype], "file": os.path.basename(final_path), "size": size, "sha256": sha,
                 "key_id": key_id(key), "created_at": json.loads(header.decode())["created_at"]}
        try:
            with DirLock(self.dir):
                manifest = read_manifest(self.dir)
                manifest["backups"].append(entry)
                removed = retention_plan(manifest["backups"], keep)
                ids = set(r["id"] for r in removed)
                manifest["backups"] = [b for b in manifest["backups"] if b["id"] not in ids]
                write_manifest(self.dir, manifest)
        except OSError as exc:
            _unlink(final_path)
            raise _disk_error(exc, self.dir, kept)
        for old in removed:
            _unlink(os.path.join(self.dir, old["file"]))
        return entry, removed

    # verify ---------------------------------------------------------------------------------
    def entry(self, bid=None, dtype=None):
        backups = list_backups(self.backup_dir, self.project, dtype)
        if bid is None:
            if not backups:
                raise LxdctlError("project %s has no %sbackups (take one with `lxdctl db backup %s`)"
                                  % (self.project, (dtype + " ") if dtype else "", self.project))
            return backups[0]
        backup_id(bid)
        for entry in backups:
            if entry["id"] == bid:
                return entry
        raise LxdctlError("project %s has no backup %s (see `lxdctl db backups %s`)" % (self.project, bid, self.project))

    def verify(self, entry):
        """Check size, checksum, header and key, then authenticate every chunk. Raises ``LxdctlError``."""
        path = os.path.join(self.dir, os.path.basename(entry["file"]))
        what = "Backup %s of project %s" % (entry["id"], self.project)
        try:
            size = os.path.getsize(path)
        except OSError as exc:
            raise LxdctlError("%s: cannot read %s: %s" % (what, path, exc.strerror))
        sha = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(CHUNK_SIZE), b""):
                sha.update(block)
        if size != entry.get("size") or sha.hexdigest() != entry.get("sha256"):
            reason = "truncated" if size < (entry.get("size") or 0) else "corrupt"
            raise LxdctlError("%s is %s: its SHA-256 checksum does not match the manifest (%d bytes, expected %s); "
                              "nothing was restored" % (what, reason, size, entry.get("size")))
        with open(path, "rb") as handle:
            try:
                header, raw = read_header(handle)
            except LxdctlError as exc:
                raise LxdctlError("%s: %s; nothing was restored" % (what, exc.msg))
            if header.get("project") != self.project:
                raise LxdctlError("%s belongs to another project (%s); refusing to restore it into %s; nothing was restored"
                                  % (what, header.get("project"), self.project))
            if header.get("backup_id") != entry["id"] or header.get("database") != entry["database"] \
                    or header.get("db_type") != entry["db_type"]:
                raise LxdctlError("%s does not match its manifest entry (it is backup %s of %s); nothing was restored"
                                  % (what, header.get("backup_id"), header.get("database")))
            if header.get("key_id") != key_id(self.key):
                raise LxdctlError("%s was encrypted with another key (key id %s, this host's key is %s); "
                                  "nothing was restored" % (what, header.get("key_id"), key_id(self.key)))
            try:
                for _chunk in decrypt_chunks(handle, self.key, self.project, entry["database"], entry["id"], raw):
                    pass
            except LxdctlError as exc:
                raise LxdctlError("%s: %s; nothing was restored" % (what, exc.msg))
        return header

    def stream_into(self, entry, argv, env, secrets_=()):
        """Decrypt the (verified) backup into ``argv``'s stdin; raises ``LxdctlError`` when it fails."""
        path = os.path.join(self.dir, os.path.basename(entry["file"]))
        with tempfile.TemporaryFile() as errors, open(path, "rb") as handle:
            _header, raw = read_header(handle)
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors, env=env)
            except OSError as exc:
                raise LxdctlError("Cannot run %s: %s" % (argv[0], exc.strerror))
            try:
                for chunk in decrypt_chunks(handle, self.key, self.project, entry["database"], entry["id"], raw):
                    proc.stdin.write(chunk)
            except BrokenPipeError:
                pass  # the tool stopped reading; its exit code and stderr say why
            except BaseException:
                proc.kill()  # never let the tool commit a partial input
                proc.wait()
                raise
            finally:
                try:
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
            rc = proc.wait()
            errors.seek(0)
            text = errors.read()
        if rc != 0:
            raise LxdctlError("%s failed (rc=%d): %s" % (argv[0], rc, _stderr_text(text, secrets_)))


def project_database(params, dtype):
    """``(db type, database name, owner)`` of the project from the state store."""
    from ansible_collections.lxdctl.platform.plugins.module_utils import _state

    store = _state.StateStore.open(params.get("state_url"), params.get("state_key_file"))
    try:
        project = params["project"]
        if store.get_project(project) is None:
            raise LxdctlError("project %s does not exist (see `lxdctl list`)" % project)
        rows = [r for r in store.list_databases(project) if r["type"] in ("postgresql", "mysql")]
    finally:
        store.close()
    by_type = dict((("postgres" if r["type"] == "postgresql" else "mysql"), r) for r in rows)
    if dtype is None:
        if not by_type:
            raise LxdctlError("project %s has no database (add one with `lxdctl db create %s --db postgres`)"
                              % (project, project))
        if len(by_type) > 1:
            raise LxdctlError("project %s has a postgres and a mysql database; choose one with --db" % project)
        dtype = list(by_type)[0]
    if dtype not in by_type:
        raise LxdctlError("project %s has no %s database" % (project, dtype))
    row = by_type[dtype]
    return dtype, row["name"], row.get("username") or row["name"]


def connection(params, dtype):
    from ansible_collections.lxdctl.platform.plugins.module_utils import _mysql, _postgres

    if dtype == "postgres":
        conn = _postgres.resolve(params)
        return {"host": conn["postgres_host"], "port": conn["postgres_port"], "admin_user": conn["postgres_admin_user"],
                "admin_password": conn.get("postgres_admin_password") or ""}
    conn = _mysql.resolve(params)
    return {"host": conn["mysql_host"], "port": conn["mysql_port"], "admin_user": conn["mysql_admin_user"],
            "admin_password": conn.get("mysql_admin_password") or ""}


def remove_all(backup_dir, project):
    directory = project_dir(backup_dir, project)
    if os.path.isdir(directory):
        shutil.rmtree(directory)
        return True
    return False


# --- schedules -------------------------------------------------------------------------------------
_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
_MONTHS = dict((name, i + 1) for i, name in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split()))
_DAYS = dict((name, i) for i, name in enumerate("sun mon tue wed thu fri sat".split()))
_SYSTEMD_DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
CRON_RULE = ("must be daily, hourly, or a cron expression of five fields (minute hour day-of-month month "
             "day-of-week) made of numbers, *, ranges a-b, lists a,b and steps */n")


def _cron_value(text, index, low, high):
    names = _MONTHS if index == 3 else _DAYS if index == 4 else {}
    value = names.get(text.lower()) if text.isalpha() else None
    if value is None:
        if not text.isdigit():
            raise ValidationError("schedule", CRON_RULE, text)
        value = int(text)
    if not low <= value <= high:
        raise ValidationError("schedule", "%s %s is out of range %d-%d" % (_CRON_FIELDS[index][0], text, low, high))
    return value


def parse_cron_field(text, index):
    """A list of items ``(start, end, step)``; ``*`` is ``(low, high, step)``."""
    name, low, high = _CRON_FIELDS[index]
    items = []
    for part in text.split(","):
        if not part:
            raise ValidationError("schedule", "empty list item in the %s field" % name, text)
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1 or int(step_text) > high:
                raise ValidationError("schedule", "bad step %r in the %s field" % (step_text, name), text)
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            first, last = base.split("-", 1)
            start, end = _cron_value(first, index, low, high), _cron_value(last, index, low, high)
            if start > end:
                raise ValidationError("schedule", "range %s in the %s field goes backwards" % (base, name), text)
        else:
            start = _cron_value(base, index, low, high)
            end = high if slash else start
        items.append((start, end, step))
    return items


def parse_schedule(value):
    """``{"kind": "daily"|"hourly"|"cron", "cron": "<5 fields>", "fields": [...]}`` or ``ValidationError``."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("schedule", CRON_RULE, value)
    text = " ".join(value.split())
    if text in ("daily", "@daily"):
        return {"kind": "daily", "cron": "17 3 * * *", "systemd": "*-*-* 03:17:00"}
    if text in ("hourly", "@hourly"):
        return {"kind": "hourly", "cron": "17 * * * *", "systemd": "*-*-* *:17:00"}
    if any(ch not in "0123456789*,-/ abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ" for ch in text):
        raise ValidationError("schedule", CRON_RULE, value)
    fields = text.split(" ")
    if len(fields) != 5:
        raise ValidationError("schedule", CRON_RULE, value)
    parsed = [parse_cron_field(field, i) for i, field in enumerate(fields)]
    return {"kind": "cron", "cron": text, "systemd": cron_to_oncalendar(fields, parsed)}


def _calendar_items(items, width):
    out = []
    for start, end, step in items:
        if start == end:
            out.append("%0*d" % (width, start))
        elif step == 1:
            out.append("%0*d..%0*d" % (width, start, width, end))
        else:
            out.extend("%0*d" % (width, v) for v in range(start, end + 1, step))
    return ",".join(out)


def cron_to_oncalendar(fields, parsed):
    """The systemd OnCalendar= equivalent of a parsed cron expression."""
    minute, hour, dom, month, dow = parsed
    if fields[2] != "*" and fields[4] != "*":
        raise ValidationError("schedule", "a cron expression with both day-of-month and day-of-week restricted "
                                          "cannot be expressed as a systemd timer; restrict only one")
    parts = []
    if fields[4] != "*":
        days = []
        for start, end, step in dow:
            days.extend(range(start, end + 1, step))
        parts.append(",".join(sorted(set(_SYSTEMD_DAYS[d] for d in days), key=_SYSTEMD_DAYS.index)))
    date = "*-%s-%s" % ("*" if fields[3] == "*" else _calendar_items(month, 2),
                        "*" if fields[2] == "*" else _calendar_items(dom, 2))
    clock = "%s:%s:00" % ("*" if fields[1] == "*" else _calendar_items(hour, 2),
                          "*" if fields[0] == "*" else _calendar_items(minute, 2))
    parts.extend([date, clock])
    return " ".join(parts)


def schedule_units(project, dtype, schedule, lxdctl_bin, keep=DEFAULT_KEEP):
    """``{"service": text, "timer": text, "cron": text}`` for the schedule; values are validated."""
    parsed = parse_schedule(schedule)
    argv = [lxdctl_bin, "db", "backup", project, "--db", dtype, "--keep", "%d" % int(keep), "--quiet"]
    command = " ".join(argv)
    service = ("# Written by lxdctl (db backup --schedule).\n[Unit]\nDescription=lxdctl backup of project %s (%s)\n\n"
               "[Service]\nType=oneshot\nExecStart=%s\n" % (project, dtype, command))
    timer = ("# Written by lxdctl (db backup --schedule).\n[Unit]\nDescription=lxdctl backup of project %s (%s)\n\n"
             "[Timer]\nOnCalendar=%s\nPersistent=true\nRandomizedDelaySec=60\n\n[Install]\nWantedBy=timers.target\n"
             % (project, dtype, parsed["systemd"]))
    cron = ("# Written by lxdctl (db backup --schedule %s).\nSHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
            "%s root %s >/dev/null 2>&1\n" % (parsed["kind"], parsed["cron"], command))
    return {"service": service, "timer": timer, "cron": cron, "parsed": parsed}
