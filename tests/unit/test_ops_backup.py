"""Pure parts of the backups: chunked encryption (tamper, truncation, reorder, foreign), cron
parsing and its systemd translation, retention, key files."""
import io
import os
import struct

import pytest

from ansible_collections.lxdctl.platform.plugins.module_utils import _backup
from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError, ValidationError

KEY = b"k" * 32
BID = "20260101T120000Z-abcdef"


def seal(data, project="app", database="p_app", bid=BID, key=KEY, chunk=16):
    out = io.BytesIO()
    header = _backup.make_header(project, database, "postgres", bid, key)
    writer = _backup.EncryptingWriter(out, key, project, database, bid, header, chunk_size=chunk)
    for i in range(0, len(data), 7):
        writer.write(data[i:i + 7])
    _sha, size = writer.close()
    raw = out.getvalue()
    assert size == len(raw)
    return raw


def unseal(raw, project="app", database="p_app", bid=BID, key=KEY):
    handle = io.BytesIO(raw)
    header, header_bytes = _backup.read_header(handle)
    return header, b"".join(_backup.decrypt_chunks(handle, key, project, database, bid, header_bytes))


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 160, 1000])
def test_round_trip_any_size(size):
    data = os.urandom(size)
    header, plain = unseal(seal(data))
    assert plain == data
    assert header["project"] == "app" and header["key_id"] == _backup.key_id(KEY)


def chunk_offsets(raw):
    (hlen,) = struct.unpack(">I", raw[9:13])
    pos = 13 + hlen
    offsets = []
    while pos < len(raw):
        (length,) = struct.unpack(">I", raw[pos:pos + 4])
        offsets.append((pos, 4 + 12 + length))
        pos += 4 + 12 + length
    return offsets


def test_tampered_byte_is_refused():
    raw = bytearray(seal(b"x" * 100))
    raw[-5] ^= 1
    with pytest.raises(LxdctlError, match="does not authenticate"):
        unseal(bytes(raw))


def test_header_tamper_is_refused():
    raw = seal(b"x" * 100)
    forged = raw.replace(b'"project":"app"', b'"project":"apq"')
    with pytest.raises(LxdctlError, match="does not authenticate"):
        unseal(forged)


def test_truncation_at_a_chunk_boundary_is_refused():
    raw = seal(b"y" * 100)
    offsets = chunk_offsets(raw)
    assert len(offsets) > 2
    cut = raw[:offsets[-1][0]]  # drop the final chunk exactly
    with pytest.raises(LxdctlError, match="final chunk is missing"):
        unseal(cut)
    with pytest.raises(LxdctlError, match="truncated"):
        unseal(raw[:-3])


def test_reordered_chunks_are_refused():
    raw = seal(b"abcdefghijklmnop" * 4)
    offsets = chunk_offsets(raw)
    (a, alen), (b, blen) = offsets[0], offsets[1]
    swapped = raw[:a] + raw[b:b + blen] + raw[a:a + alen] + raw[b + blen:]
    with pytest.raises(LxdctlError, match="does not authenticate"):
        unseal(swapped)


def test_trailing_data_is_refused():
    with pytest.raises(LxdctlError, match="after its final chunk"):
        unseal(seal(b"z" * 10) + b"junk")


def test_foreign_project_database_id_or_key_is_refused():
    raw = seal(b"secret data")
    for kwargs in ({"project": "other"}, {"database": "p_other"}, {"bid": "20260101T120000Z-000000"},
                   {"key": b"j" * 32}):
        with pytest.raises(LxdctlError):
            unseal(raw, **kwargs)


def test_not_a_backup():
    with pytest.raises(LxdctlError, match="not an lxdctl backup"):
        unseal(b"PGDMP....")


def test_key_file_created_0600_and_checked(tmp_path):
    path = str(tmp_path / "keys" / "backup.key")
    key = _backup.load_key(path)
    assert len(key) == 32 and os.stat(path).st_mode & 0o777 == 0o600
    assert _backup.load_key(path) == key
    os.chmod(path, 0o644)
    with pytest.raises(LxdctlError, match="readable by others"):
        _backup.load_key(path)
    with pytest.raises(LxdctlError, match="Cannot read"):
        _backup.load_key(str(tmp_path / "none"), create=False)


def test_retention_plan_per_database():
    rows = [{"id": "2026010%dT000000Z-aaaaaa" % i, "db_type": "postgres", "database": "p_a"} for i in range(1, 6)]
    rows.append({"id": "20260101T000000Z-bbbbbb", "db_type": "mysql", "database": "p_a"})
    doomed = _backup.retention_plan(rows, 3)
    assert sorted(d["id"] for d in doomed) == ["20260101T000000Z-aaaaaa", "20260102T000000Z-aaaaaa"]
    with pytest.raises(ValidationError):
        _backup.retention_plan(rows, 0)


def test_ids_and_identifiers():
    assert _backup.backup_id(_backup.new_backup_id()) 
    for bad in ("../x", "20260101T120000Z", "", None, "20260101T120000Z-ABCDEF"):
        with pytest.raises(ValidationError):
            _backup.backup_id(bad)
    assert _backup.sql_identifier("p_app_copy") == "p_app_copy"
    for bad in ("P_app", "p-app", "1abc", "a;b", "x" * 64):
        with pytest.raises(ValidationError):
            _backup.sql_identifier(bad)


@pytest.mark.parametrize("expr,calendar", [
    ("daily", "*-*-* 03:17:00"),
    ("hourly", "*-*-* *:17:00"),
    ("*/15 * * * *", "*-*-* *:00,15,30,45:00"),
    ("0 2 * * *", "*-*-* 02:00:00"),
    ("30 1-3 * * mon-fri", "Mon,Tue,Wed,Thu,Fri *-*-* 01..03:30:00"),
    ("5 4 1,15 * *", "*-*-01,15 04:05:00"),
    ("0 0 * jan,jul 0", "Sun *-01,07-* 00:00:00"),
    ("0 12 * * 7", "Sun *-*-* 12:00:00"),
    ("  0   3  *  *  *  ", "*-*-* 03:00:00"),
])
def test_cron_to_systemd(expr, calendar):
    assert _backup.parse_schedule(expr)["systemd"] == calendar


@pytest.mark.parametrize("expr", [
    "", "weekly", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *",
    "* * * * 8", "5-1 * * * *", "*/0 * * * *", "a * * * *", "* * * * * ; rm -rf /", "$(id) * * * *",
    "1,,2 * * * *", "0 0 1 * mon",
])
def test_bad_cron_is_refused(expr):
    with pytest.raises(ValidationError):
        _backup.parse_schedule(expr)


def test_schedule_units_use_validated_parts():
    units = _backup.schedule_units("app", "mysql", "*/5 * * * *", "/usr/local/bin/lxdctl")
    assert units["cron"].splitlines()[-1] == "*/5 * * * * root /usr/local/bin/lxdctl db backup app --db mysql --keep 7 --quiet >/dev/null 2>&1"
    assert "OnCalendar=*-*-* *:00,05,10,15,20,25,30,35,40,45,50,55:00" in units["timer"]
    assert "ExecStart=/usr/local/bin/lxdctl db backup app --db mysql --keep 7 --quiet" in units["service"]


def test_dump_commands_keep_passwords_out_of_argv():
    conn = {"host": "127.0.0.1", "port": 5432, "admin_user": "admin", "admin_password": "s3cret"}
    for argv in (_backup.pg_dump_argv(conn, "p_a"), _backup.pg_restore_argv(conn, "p_a"),
                 _backup.mysql_dump_argv(conn, "p_a"), _backup.mysql_load_argv(conn, "p_a")):
        assert isinstance(argv, list) and "s3cret" not in " ".join(argv)
    assert _backup.pg_dump_argv(conn, "p_a")[:2] == ["pg_dump", "-Fc"]
    assert _backup.pg_env(conn)["PGPASSWORD"] == "s3cret"
    assert _backup.my_env(conn)["MYSQL_PWD"] == "s3cret"


def test_store_backup_verify_and_stream(tmp_path):
    """A multi-chunk 'dump' (cat of a file) through BackupStore, verified and streamed back out."""
    data = os.urandom(2 * _backup.CHUNK_SIZE + 12345)
    source = tmp_path / "dump.bin"
    source.write_bytes(data)
    store = _backup.BackupStore(str(tmp_path / "backups"), "app", str(tmp_path / "backup.key"))
    entry, removed = store.backup("postgres", "p_app", ["cat", str(source)], {"PATH": os.environ["PATH"]}, keep=2)
    assert removed == [] and entry["size"] > len(data)
    path = os.path.join(store.dir, entry["file"])
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert data[:4096] not in open(path, "rb").read()
    assert store.verify(entry)["backup_id"] == entry["id"]
    out = tmp_path / "restored.bin"
    store.stream_into(entry, ["sh", "-c", 'cat > "$0"', str(out)], {"PATH": os.environ["PATH"]})
    assert out.read_bytes() == data

    # a failing dump leaves nothing behind and the earlier backup listed
    with pytest.raises(LxdctlError, match="failed"):
        store.backup("postgres", "p_app", ["sh", "-c", "echo partial; echo oops >&2; exit 3"], {"PATH": os.environ["PATH"]})
    assert [b["id"] for b in _backup.list_backups(store.backup_dir, "app")] == [entry["id"]]
    assert sorted(os.listdir(store.dir)) == sorted([".lock", "manifest.json", entry["file"]])

    # a failing restore tool is reported with its stderr
    with pytest.raises(LxdctlError, match="nope"):
        store.stream_into(entry, ["sh", "-c", "echo nope >&2; exit 1"], {"PATH": os.environ["PATH"]})

    # one flipped byte: refused by the checksum before anything runs
    raw = bytearray(open(path, "rb").read())
    raw[len(raw) // 2] ^= 1
    open(path, "wb").write(bytes(raw))
    with pytest.raises(LxdctlError, match="corrupt"):
        store.verify(entry)


def test_backup_ids_made_within_one_second_sort_in_the_order_they_were_made():
    import datetime

    start = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
    ids = [_backup.new_backup_id(start + datetime.timedelta(microseconds=step)) for step in (1, 2, 999998)]
    assert sorted(ids) == ids
    for bid in ids + ["20260101T120000Z-abcdef"]:
        assert _backup.backup_id(bid) == bid


# --- MariaDB restore: a fixed scratch database, swapped in by one atomic RENAME TABLE ----------
from ansible_collections.lxdctl.platform.plugins.module_utils import _mysql  # noqa: E402
from ansible_collections.lxdctl.platform.plugins.modules import db_restore  # noqa: E402


def test_mysql_restore_names_are_fixed_and_no_tenant_name():
    assert _mysql.restore_names("p_app") == ("p_app__restoring", "p_app__replaced")
    from ansible_collections.lxdctl.platform.plugins.module_utils._names import projects_named_by
    assert all(projects_named_by("sql", name) == [] for name in _mysql.restore_names("p_app"))


def test_swap_tables_is_one_statement_both_ways():
    swap = _mysql.swap_tables("p_app", "p_app__restoring", "p_app__replaced", ["b", "a"], ["a`x", "c"])
    assert swap.display() == ("RENAME TABLE `p_app`.`a` TO `p_app__replaced`.`a`, `p_app`.`b` TO `p_app__replaced`.`b`, "
                              "`p_app__restoring`.`a``x` TO `p_app`.`a``x`, `p_app__restoring`.`c` TO `p_app`.`c`")
    assert _mysql.swap_tables("p_app", "w", "o", [], []) is None
    with pytest.raises(LxdctlError):
        _mysql.quote_table("a\x00b")


class FakeMariaDB(object):
    """Databases as {name: {kind: [names]}}; DDL applied as MariaDB would (RENAME all or none)."""

    def __init__(self, databases, sessions=()):
        self.dbs = databases
        self.log = []
        self._sessions = list(sessions)

    def database_exists(self, name):
        return name in self.dbs

    def schema_objects(self, name):
        objects = {"tables": [], "views": [], "triggers": [], "routines": [], "events": []}
        objects.update(self.dbs.get(name, {}))
        return dict((k, sorted(v)) for k, v in objects.items())

    def sessions(self, user):
        return self._sessions

    def execute(self, statements):
        for stmt in statements:
            sql = stmt.display()
            self.log.append(sql)
            if sql.startswith("DROP DATABASE IF EXISTS"):
                self.dbs.pop(sql.split("`")[1], None)
            elif sql.startswith("CREATE DATABASE"):
                self.dbs[sql.split("`")[1]] = {"tables": []}
            elif sql.startswith("RENAME TABLE"):
                moves = [pair.split(" TO ") for pair in sql[len("RENAME TABLE "):].split(", ")]
                new = dict((k, dict(v, tables=list(v.get("tables", [])))) for k, v in self.dbs.items())
                for src, dst in moves:
                    (sdb, table), (ddb, _t) = [[p.strip("`") for p in side.split("`.`")] for side in (src, dst)]
                    new[sdb]["tables"].remove(table)
                    if table in new[ddb]["tables"]:
                        raise LxdctlError("Failed to run %s: table %s exists" % (sql, table))
                    new[ddb]["tables"].append(table)
                self.dbs = new

    def close(self):
        pass


class FakeStore(object):
    def __init__(self, tables=("t",), fail=None, objects=None):
        self.tables, self.fail, self.objects = list(tables), fail, objects or {}
        self.loaded_into = []

    def stream_into(self, entry, argv, env, secrets_=()):
        target = argv[-1].split("=", 1)[1]
        self.loaded_into.append(target)
        self.db.dbs[target]["tables"] = self.tables[: len(self.tables) // 2] if self.fail else list(self.tables)
        self.db.dbs[target].update(self.objects)
        if self.fail:
            raise LxdctlError(self.fail)


def restore_mysql(monkeypatch, db, store, into=None):
    store.db = db
    monkeypatch.setattr(_mysql, "MariaDB", lambda params: db)
    service = db_restore.RestoreService.__new__(db_restore.RestoreService)
    service.params, service.project, service.store = {}, "app", store
    conn = {"host": "127.0.0.1", "port": 3306, "admin_user": "admin", "admin_password": "pw"}
    service._mysql({"id": BID}, conn, "p_app", "p_app", into)


def test_mysql_restore_loads_aside_and_swaps_in_one_rename(monkeypatch):
    db = FakeMariaDB({"p_app": {"tables": ["t", "extra"]},
                      # what a restore killed after its swap left: dropped first
                      "p_app__replaced": {"tables": ["t"]}, "p_app__restoring": {"tables": ["half"]}},
                     sessions=[41])
    store = FakeStore(tables=["t", "u"])
    restore_mysql(monkeypatch, db, store)
    assert store.loaded_into == ["p_app__restoring"]
    assert db.dbs == {"p_app": {"tables": ["t", "u"]}}
    renames = [sql for sql in db.log if sql.startswith("RENAME")]
    assert len(renames) == 1
    assert db.log.index("KILL CONNECTION 41") < db.log.index(renames[0])
    assert db.log[:2] == ["DROP DATABASE IF EXISTS `p_app__restoring`", "DROP DATABASE IF EXISTS `p_app__replaced`"]
    assert not any(sql.startswith("DROP DATABASE IF EXISTS `p_app`") for sql in db.log)


def test_mysql_restore_failing_midway_leaves_the_database_and_no_scratch(monkeypatch):
    db = FakeMariaDB({"p_app": {"tables": ["t", "keep"]}})
    with pytest.raises(LxdctlError, match="p_app was left as it was: ERROR 1064"):
        restore_mysql(monkeypatch, db, FakeStore(tables=["t", "u"], fail="ERROR 1064 at line 9"))
    assert db.dbs == {"p_app": {"tables": ["t", "keep"]}}
    assert not any(sql.startswith("RENAME") for sql in db.log)


def test_mysql_restore_refuses_what_rename_cannot_move_before_replacing_anything(monkeypatch):
    db = FakeMariaDB({"p_app": {"tables": ["t"]}})
    with pytest.raises(LxdctlError, match="trigger t_bi.*--into"):
        restore_mysql(monkeypatch, db, FakeStore(objects={"triggers": ["t_bi"]}))
    assert db.dbs == {"p_app": {"tables": ["t"]}}
    live = FakeMariaDB({"p_app": {"tables": ["t"], "views": ["v"]}})
    store = FakeStore()
    with pytest.raises(LxdctlError, match="view v"):
        restore_mysql(monkeypatch, live, store)
    assert store.loaded_into == [] and set(live.dbs) == {"p_app"}
