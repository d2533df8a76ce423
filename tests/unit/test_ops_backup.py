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
