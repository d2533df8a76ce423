"""Database backups: round trips for PostgreSQL and MariaDB, bad backups refused before the
database is touched, a full disk, retention and schedules.

The projects here are state rows plus real tenant databases (postgres_tenant / mysql_tenant);
no container is needed.  Data is checked with psql and mariadb, independently of the modules.
"""
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile

import pytest

from tests.integration.data_support import my_admin, my_tenant, pg_admin, pg_tenant, run_module

PG_PROJECT = "it-ops-bkpg"
MY_PROJECT = "it-ops-bkmy"
OTHER_PROJECT = "it-ops-bkother"
BACKUP_ROOT = "/var/lib/lxdctl/backups"
PG_SUM = "SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM t"
MY_SUM = "SELECT md5(group_concat(concat_ws(':', id, v) ORDER BY id SEPARATOR ',')) FROM t"
MARKER = "it-ops-plaintext-marker-7f3a"


def sql_name(project):
    return "p_" + project.replace("-", "_")


def lxdctl(*args, check=True, timeout=600):
    proc = subprocess.run(["lxdctl"] + list(args), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if check:
        assert proc.returncode == 0, "lxdctl %s: rc=%s\n%s\n%s" % (" ".join(args), proc.returncode, proc.stdout, proc.stderr)
    return proc


def ok(result):
    assert not result.failed, result
    return result


def make_project(cfg, project, dtype, password):
    name = sql_name(project)
    ok(run_module("lxdctl_state", {"entity": "project", "project": project, "values": {"status": "running"}}))
    if dtype == "postgres":
        ok(run_module("postgres_tenant", {"name": name, "password": password}))
        section, stype = cfg["postgres"], "postgresql"
    else:
        ok(run_module("mysql_tenant", {"name": name, "password": password}))
        section, stype = cfg["mysql"], "mysql"
    ok(run_module("lxdctl_state", {"entity": "database", "project": project,
                                   "values": {"type": stype, "name": name, "host": section["tenant_host"],
                                              "port": section["port"], "username": name},
                                   "secret_values": {"password": password}}))


def drop_project(project, dtype):
    name = sql_name(project)
    run_module("postgres_tenant" if dtype == "postgres" else "mysql_tenant", {"name": name, "state": "absent"})
    run_module("lxdctl_state", {"entity": "project", "project": project, "state": "absent"})
    shutil.rmtree(os.path.join(BACKUP_ROOT, project), ignore_errors=True)


def pg_sql(cfg, project, password, sql):
    proc = pg_tenant(cfg, sql, sql_name(project), password, sql_name(project))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def my_sql(cfg, project, password, sql):
    proc = my_tenant(cfg, sql, sql_name(project), password, sql_name(project))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def pg_project(platform_config):
    password = "it-ops-" + secrets.token_urlsafe(12)
    drop_project(PG_PROJECT, "postgres")
    make_project(platform_config, PG_PROJECT, "postgres", password)
    pg_sql(platform_config, PG_PROJECT, password,
           "CREATE TABLE t (id int PRIMARY KEY, v text); "
           "INSERT INTO t SELECT g, md5(g::text) || '%s' FROM generate_series(1, 500) g" % MARKER)
    yield password
    drop_project(PG_PROJECT, "postgres")
    pg_admin(platform_config, "DROP DATABASE IF EXISTS %s_copy" % sql_name(PG_PROJECT))


@pytest.fixture(scope="module")
def my_project(platform_config):
    password = "it-ops-" + secrets.token_urlsafe(12)
    drop_project(MY_PROJECT, "mysql")
    make_project(platform_config, MY_PROJECT, "mysql", password)
    my_sql(platform_config, MY_PROJECT, password,
           "CREATE TABLE t (id int PRIMARY KEY, v text); "
           "INSERT INTO t VALUES (1, 'one %s'), (2, 'two'), (3, 'three ''quoted'' \\\\ back')" % MARKER)
    yield password
    drop_project(MY_PROJECT, "mysql")
    my_admin(platform_config, "DROP DATABASE IF EXISTS %s_copy" % sql_name(MY_PROJECT))


def backup_json(project, *extra):
    proc = lxdctl("db", "backup", project, "--output", "json", *extra)
    return json.loads(proc.stdout)


def manifest(project):
    with open(os.path.join(BACKUP_ROOT, project, "manifest.json")) as handle:
        return json.load(handle)


def assert_clean(text, *passwords):
    for password in passwords:
        assert password not in text


def test_it_ops_pg_round_trip(platform_config, pg_project):
    cfg, pw = platform_config, pg_project
    before = pg_sql(cfg, PG_PROJECT, pw, PG_SUM)
    taken = backup_json(PG_PROJECT)
    assert taken["db_type"] == "postgres" and taken["database"] == sql_name(PG_PROJECT)
    path = os.path.join(BACKUP_ROOT, PG_PROJECT, "%s.postgres.bak" % taken["id"])
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.stat(os.path.join(BACKUP_ROOT, PG_PROJECT)).st_mode & 0o777 == 0o700
    assert os.stat("/etc/lxdctl/backup.key").st_mode & 0o777 == 0o600
    with open(path, "rb") as handle:
        raw = handle.read()
    assert MARKER.encode() not in raw and b"CREATE TABLE" not in raw  # encrypted at rest
    assert hashlib.sha256(raw).hexdigest() == taken["sha256"]

    listed = json.loads(lxdctl("db", "backups", PG_PROJECT, "--output", "json").stdout)
    assert [b["id"] for b in listed][0] == taken["id"]
    table = lxdctl("db", "backups", PG_PROJECT).stdout
    assert taken["id"] in table

    # change the data: rows updated and deleted, a new table
    pg_sql(cfg, PG_PROJECT, pw, "UPDATE t SET v = 'changed' WHERE id < 100; DELETE FROM t WHERE id > 400; "
                                "CREATE TABLE t2 (x int)")
    assert pg_sql(cfg, PG_PROJECT, pw, PG_SUM) != before

    # restore without --yes and no terminal: refused
    refused = lxdctl("db", "restore", PG_PROJECT, check=False)
    assert refused.returncode != 0 and "--yes" in refused.stderr

    restored = lxdctl("db", "restore", PG_PROJECT, "--yes", "--output", "json")
    assert json.loads(restored.stdout)["restored"] == taken["id"]
    assert pg_sql(cfg, PG_PROJECT, pw, PG_SUM) == before
    assert pg_sql(cfg, PG_PROJECT, pw, "SELECT count(*) FROM pg_tables WHERE tablename = 't2'") == "0"
    assert pg_admin(cfg, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '%s'"
                    % sql_name(PG_PROJECT)) == sql_name(PG_PROJECT)
    assert pg_admin(cfg, "SELECT has_database_privilege('public', '%s', 'CONNECT')" % sql_name(PG_PROJECT)) == "f"
    assert_clean(restored.stdout + restored.stderr, pw, cfg["postgres"]["admin_password"])

    # --into a new database with the same owner; the live one is untouched
    pg_sql(cfg, PG_PROJECT, pw, "UPDATE t SET v = 'live' WHERE id = 1")
    live = pg_sql(cfg, PG_PROJECT, pw, PG_SUM)
    into = lxdctl("db", "restore", PG_PROJECT, "--backup", taken["id"], "--into", sql_name(PG_PROJECT) + "_copy", "--yes")
    assert_clean(into.stdout + into.stderr, pw)
    copy = pg_tenant(cfg, PG_SUM, sql_name(PG_PROJECT), pw, sql_name(PG_PROJECT) + "_copy")
    assert copy.returncode == 0, copy.stderr
    assert copy.stdout.strip() == before
    assert pg_sql(cfg, PG_PROJECT, pw, PG_SUM) == live
    assert pg_admin(cfg, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '%s_copy'"
                    % sql_name(PG_PROJECT)) == sql_name(PG_PROJECT)
    again = lxdctl("db", "restore", PG_PROJECT, "--into", sql_name(PG_PROJECT) + "_copy", "--yes", check=False)
    assert again.returncode != 0 and "exists already" in again.stderr


def test_it_ops_mysql_round_trip(platform_config, my_project):
    cfg, pw = platform_config, my_project
    before = my_sql(cfg, MY_PROJECT, pw, MY_SUM)
    taken = backup_json(MY_PROJECT)
    assert taken["db_type"] == "mysql"
    with open(os.path.join(BACKUP_ROOT, MY_PROJECT, "%s.mysql.bak" % taken["id"]), "rb") as handle:
        assert MARKER.encode() not in handle.read()
    my_sql(cfg, MY_PROJECT, pw, "UPDATE t SET v = 'changed' WHERE id = 2; INSERT INTO t VALUES (9, 'new'); "
                                "CREATE TABLE t2 (x int)")
    assert my_sql(cfg, MY_PROJECT, pw, MY_SUM) != before
    restored = lxdctl("db", "restore", MY_PROJECT, "--yes")
    assert_clean(restored.stdout + restored.stderr, pw, cfg["mysql"]["admin_password"])
    assert my_sql(cfg, MY_PROJECT, pw, MY_SUM) == before
    assert my_sql(cfg, MY_PROJECT, pw, "SHOW TABLES") == "t"

    into = lxdctl("db", "restore", MY_PROJECT, "--into", sql_name(MY_PROJECT) + "_copy", "--yes")
    assert into.returncode == 0
    copy = my_tenant(cfg, MY_SUM, sql_name(MY_PROJECT), pw, sql_name(MY_PROJECT) + "_copy")
    assert copy.returncode == 0, copy.stderr  # the owner's account reaches the new database
    assert copy.stdout.strip() == before

    # a schedule for a mysql-only project backs up its mysql database
    if cfg.get("init_system") != "systemd":
        cron_file = "/etc/cron.d/lxdctl-backup-%s" % MY_PROJECT
        try:
            lxdctl("db", "backup", MY_PROJECT, "--schedule", "hourly")
            with open(cron_file) as handle:
                assert "db backup %s --db mysql " % MY_PROJECT in handle.read()
        finally:
            lxdctl("db", "backup", MY_PROJECT, "--unschedule")
        assert not os.path.exists(cron_file)


def _refused(project, expect, *extra):
    proc = lxdctl("db", "restore", project, "--yes", *extra, check=False)
    assert proc.returncode != 0, proc.stdout
    assert expect in proc.stderr, proc.stderr
    assert "nothing was restored" in proc.stderr
    return proc


def test_it_ops_bad_backups_refused_before_the_database(platform_config, pg_project):
    cfg, pw = platform_config, pg_project
    good = backup_json(PG_PROJECT)
    pg_sql(cfg, PG_PROJECT, pw, "UPDATE t SET v = 'after-backup' WHERE id = 7")
    current = pg_sql(cfg, PG_PROJECT, pw, PG_SUM)
    directory = os.path.join(BACKUP_ROOT, PG_PROJECT)
    path = os.path.join(directory, good["file"] if "file" in good else "%s.postgres.bak" % good["id"])
    with open(path, "rb") as handle:
        original = handle.read()
    try:
        # corrupt: one flipped byte in the middle
        flipped = bytearray(original)
        flipped[len(flipped) // 2] ^= 0x40
        with open(path, "wb") as handle:
            handle.write(bytes(flipped))
        _refused(PG_PROJECT, "corrupt", "--backup", good["id"])
        assert pg_sql(cfg, PG_PROJECT, pw, PG_SUM) == current

        # truncated
        with open(path, "wb") as handle:
            handle.write(original[:len(original) - 100])
        _refused(PG_PROJECT, "truncated", "--backup", good["id"])
        assert pg_sql(cfg, PG_PROJECT, pw, PG_SUM) == current

        # tampered with the manifest's checksum forged too: the encryption catches it
        data = manifest(PG_PROJECT)
        for entry in data["backups"]:
            if entry["id"] == good["id"]:
                entry["sha256"] = hashlib.sha256(bytes(flipped)).hexdigest()
        with open(os.path.join(directory, "manifest.json"), "w") as handle:
            json.dump(data, handle)
        with open(path, "wb") as handle:
            handle.write(bytes(flipped))
        _refused(PG_PROJECT, "does not authenticate", "--backup", good["id"])
        assert pg_sql(cfg, PG_PROJECT, pw, PG_SUM) == current
    finally:
        with open(path, "wb") as handle:
            handle.write(original)
        data = manifest(PG_PROJECT)
        for entry in data["backups"]:
            if entry["id"] == good["id"]:
                entry["sha256"] = good["sha256"]
        with open(os.path.join(directory, "manifest.json"), "w") as handle:
            json.dump(data, handle)


def test_it_ops_foreign_and_wrong_key_backups_refused(platform_config, pg_project):
    cfg, pw = platform_config, pg_project
    other_pw = "it-ops-" + secrets.token_urlsafe(12)
    drop_project(OTHER_PROJECT, "postgres")
    keydir = tempfile.mkdtemp(prefix="it-ops-key-")
    try:
        make_project(cfg, OTHER_PROJECT, "postgres", other_pw)
        pg_tenant(cfg, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'other')",
                  sql_name(OTHER_PROJECT), other_pw, sql_name(OTHER_PROJECT))
        foreign = backup_json(OTHER_PROJECT)
        current = pg_sql(cfg, PG_PROJECT, pw, PG_SUM)

        # another project's backup, file and manifest entry copied in, checksum and all
        own_dir = os.path.join(BACKUP_ROOT, PG_PROJECT)
        src = os.path.join(BACKUP_ROOT, OTHER_PROJECT, "%s.postgres.bak" % foreign["id"])
        shutil.copy(src, os.path.join(own_dir, os.path.basename(src)))
        entry = [b for b in manifest(OTHER_PROJECT)["backups"] if b["id"] == foreign["id"]][0]
        entry = dict(entry, project=PG_PROJECT, database=sql_name(PG_PROJECT))
        data = manifest(PG_PROJECT)
        data["backups"].append(entry)
        with open(os.path.join(own_dir, "manifest.json"), "w") as handle:
            json.dump(data, handle)
        _refused(PG_PROJECT, "belongs to another project", "--backup", foreign["id"])
        assert pg_sql(cfg, PG_PROJECT, pw, PG_SUM) == current
        data["backups"] = [b for b in data["backups"] if b["id"] != foreign["id"]]
        with open(os.path.join(own_dir, "manifest.json"), "w") as handle:
            json.dump(data, handle)
        os.unlink(os.path.join(own_dir, os.path.basename(src)))

        # a backup encrypted with another key
        other_key = os.path.join(keydir, "other.key")
        made = ok(run_module("db_backup", {"project": PG_PROJECT, "backup_key_file": other_key}))
        assert os.stat(other_key).st_mode & 0o777 == 0o600
        _refused(PG_PROJECT, "encrypted with another key", "--backup", made["backup"]["id"])
        assert pg_sql(cfg, PG_PROJECT, pw, PG_SUM) == current
        # with its own key it restores (verify only)
        verified = ok(run_module("db_restore", {"project": PG_PROJECT, "backup": made["backup"]["id"],
                                                "backup_key_file": other_key, "verify_only": True}))
        assert not verified.changed
    finally:
        drop_project(OTHER_PROJECT, "postgres")
        shutil.rmtree(keydir, ignore_errors=True)


def test_it_ops_full_disk_keeps_older_backups(platform_config, pg_project):
    mount = tempfile.mkdtemp(prefix="it-ops-tmpfs-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "it-ops-tmpfs", mount], check=True)
    try:
        first = ok(run_module("db_backup", {"project": PG_PROJECT, "backup_dir": mount}))
        directory = os.path.join(mount, PG_PROJECT)
        with open(os.path.join(directory, "manifest.json"), "rb") as handle:
            manifest_before = handle.read()
        with open(first["path"], "rb") as handle:
            file_before = handle.read()
        # fill the disk, leaving less than a backup needs
        filler = os.path.join(mount, "filler")
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        full = run_module("db_backup", {"project": PG_PROJECT, "backup_dir": mount})
        assert full.failed
        assert "No space left" in full["msg"] and "intact" in full["msg"], full["msg"]
        assert sorted(os.listdir(directory)) == sorted([".lock", "manifest.json", os.path.basename(first["path"])])
        with open(os.path.join(directory, "manifest.json"), "rb") as handle:
            assert handle.read() == manifest_before
        with open(first["path"], "rb") as handle:
            assert handle.read() == file_before
        os.unlink(filler)
        verified = ok(run_module("db_restore", {"project": PG_PROJECT, "backup_dir": mount, "verify_only": True}))
        assert verified["backup"]["id"] == first["backup"]["id"]
    finally:
        subprocess.run(["umount", mount], check=False)
        os.rmdir(mount)


def test_it_ops_retention(platform_config, pg_project):
    directory = tempfile.mkdtemp(prefix="it-ops-keep-")
    try:
        ids = []
        for _ in range(3):
            made = ok(run_module("db_backup", {"project": PG_PROJECT, "backup_dir": directory, "keep": 2}))
            ids.append(made["backup"]["id"])
        assert made["removed"] == [ids[0]]
        files = sorted(f for f in os.listdir(os.path.join(directory, PG_PROJECT)) if f.endswith(".bak"))
        assert files == sorted("%s.postgres.bak" % i for i in ids[1:])
        with open(os.path.join(directory, PG_PROJECT, "manifest.json")) as handle:
            assert sorted(b["id"] for b in json.load(handle)["backups"]) == sorted(ids[1:])
        check = ok(run_module("db_backup", {"project": PG_PROJECT, "backup_dir": directory}, check=True))
        assert check.changed
        assert len([f for f in os.listdir(os.path.join(directory, PG_PROJECT)) if f.endswith(".bak")]) == 2
        gone = ok(run_module("db_backup", {"project": PG_PROJECT, "backup_dir": directory, "state": "absent"}))
        assert gone.changed and not os.path.exists(os.path.join(directory, PG_PROJECT))
        again = ok(run_module("db_backup", {"project": PG_PROJECT, "backup_dir": directory, "state": "absent"}))
        assert not again.changed
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_it_ops_schedule_cron(platform_config, pg_project):
    cron_file = "/etc/cron.d/lxdctl-backup-%s" % PG_PROJECT
    try:
        bad = lxdctl("db", "backup", PG_PROJECT, "--schedule", "61 * * * *", check=False)
        assert bad.returncode == 2 and "out of range" in bad.stderr
        bad = lxdctl("db", "backup", PG_PROJECT, "--schedule", "* * * * * ; rm -rf /", check=False)
        assert bad.returncode == 2
        made = json.loads(lxdctl("db", "backup", PG_PROJECT, "--schedule", "*/15 2 * * mon-fri", "--keep", "3",
                                 "--output", "json").stdout)
        if platform_config.get("init_system") == "systemd":
            assert made["scheduler"] == "systemd"
            return
        assert made["scheduler"] == "cron" and made["files"] == [cron_file]
        with open(cron_file) as handle:
            lines = [l for l in handle.read().splitlines() if l and not l.startswith("#")]
        job = lines[-1].split()
        assert job[:6] == ["*/15", "2", "*", "*", "mon-fri", "root"]
        assert job[6].endswith("/lxdctl") and job[7:] == ["db", "backup", PG_PROJECT, "--db", "postgres", "--keep", "3",
                                                          "--quiet", ">/dev/null", "2>&1"]
        assert os.access(job[6], os.X_OK)
        # the scheduled command itself works, quietly
        count = len(json.loads(lxdctl("db", "backups", PG_PROJECT, "--output", "json").stdout))
        run = subprocess.run(job[6:-2], capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        assert run.returncode == 0 and run.stdout == "" and run.stderr == "", run.stderr
        assert len(json.loads(lxdctl("db", "backups", PG_PROJECT, "--output", "json").stdout)) == min(count + 1, 3)
        assert os.stat(cron_file).st_mode & 0o777 == 0o644
        daily = json.loads(lxdctl("db", "backup", PG_PROJECT, "--schedule", "daily", "--output", "json").stdout)
        assert daily["on_calendar"] == "*-*-* 03:17:00"
        lxdctl("db", "backup", PG_PROJECT, "--unschedule")
        assert not os.path.exists(cron_file)
    finally:
        if os.path.exists(cron_file):
            os.unlink(cron_file)


def test_it_ops_backup_bad_input(platform_config):
    missing = lxdctl("db", "backup", "it-ops-nosuch", check=False)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    missing = lxdctl("db", "restore", "it-ops-nosuch", "--yes", check=False)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    bad_id = lxdctl("db", "restore", "it-ops-nosuch", "--backup", "../../etc/passwd", "--yes", check=False)
    assert bad_id.returncode == 2
    bad_into = lxdctl("db", "restore", "it-ops-nosuch", "--into", "Bad-Name;", "--yes", check=False)
    assert bad_into.returncode == 2


@pytest.mark.parametrize("dtype", ["postgres", "mysql"])
def test_it_ops_rejected_dump_leaves_the_database(platform_config, pg_project, my_project, dtype):
    """A backup that decrypts fine but that the server rejects: the restore fails and the
    project's database is exactly as it was (no scratch database is left behind either)."""
    from ansible_collections.lxdctl.platform.plugins.module_utils import _backup

    cfg = platform_config
    project, pw = (PG_PROJECT, pg_project) if dtype == "postgres" else (MY_PROJECT, my_project)
    query = (lambda sql: pg_sql(cfg, project, pw, sql)) if dtype == "postgres" else (lambda sql: my_sql(cfg, project, pw, sql))
    before = query(PG_SUM if dtype == "postgres" else MY_SUM)
    store = _backup.BackupStore(BACKUP_ROOT, project, _backup.DEFAULT_KEY_FILE)
    entry, _removed = store.backup(dtype, sql_name(project), ["printf", "this is not a dump;\n"],
                                   {"PATH": os.environ["PATH"]})
    proc = lxdctl("db", "restore", project, "--backup", entry["id"], "--yes", check=False)
    assert proc.returncode == 1 and "left as it was" in proc.stderr, proc.stderr
    assert query(PG_SUM if dtype == "postgres" else MY_SUM) == before
    if dtype == "postgres":
        assert pg_admin(cfg, "SELECT count(*) FROM pg_database WHERE datname LIKE '%s\\_\\_%%'" % sql_name(project)) == "0"
    else:
        assert my_admin(cfg, "SHOW DATABASES LIKE '%s\\_\\_%%'" % sql_name(project).replace("_", "\\_")) == ""


def _my_scratch(cfg, project):
    """The restore's scratch databases of ``project`` that exist, by the mariadb client."""
    return my_admin(cfg, "SHOW DATABASES LIKE '%s\\_\\_%%'" % sql_name(project).replace("_", "\\_")).split()


def _raw_mysql_backup(project, sql):
    """A well-formed encrypted backup of ``project``'s database whose dump is ``sql``."""
    from ansible_collections.lxdctl.platform.plugins.module_utils import _backup

    store = _backup.BackupStore(BACKUP_ROOT, project, _backup.DEFAULT_KEY_FILE)
    entry, _removed = store.backup("mysql", sql_name(project), ["printf", "%s", sql], {"PATH": os.environ["PATH"]})
    return entry["id"]


def test_it_ops_mysql_restore_killed_or_failing_midway_keeps_the_data(platform_config, my_project):
    """The load goes to a scratch database and one atomic RENAME TABLE swaps it in: a restore
    killed (kill -9 of the whole CLI tree) or failing in the middle of its load leaves the
    project's tables as they were, and the next restore clears the leftovers and completes."""
    from tests.support.faults import kill_group, run_cli

    cfg, pw = platform_config, my_project
    before = my_sql(cfg, MY_PROJECT, pw, MY_SUM)
    good = backup_json(MY_PROJECT)["id"]
    work = sql_name(MY_PROJECT) + "__restoring"
    # A dump that creates the table, pauses in the middle of its rows, then would finish.
    slow = _raw_mysql_backup(MY_PROJECT, "CREATE TABLE t (id int PRIMARY KEY, v text);\n"
                                         "INSERT INTO t VALUES (1, 'from the slow dump');\n"
                                         "SELECT SLEEP(20);\nINSERT INTO t VALUES (2, 'never');\n")

    def loading():
        return my_admin(cfg, "SELECT count(*) FROM `%s`.t" % work) == "1"

    killed = run_cli("db", "restore", MY_PROJECT, "--backup", slow, "--yes", when=(loading, kill_group))
    assert killed.fired and killed.returncode != 0, killed
    assert my_sql(cfg, MY_PROJECT, pw, MY_SUM) == before
    assert my_sql(cfg, MY_PROJECT, pw, "SHOW TABLES") == "t"
    assert work in _my_scratch(cfg, MY_PROJECT)  # killed mid-load: its half-made copy is left

    # failing midway: the server rejects a statement after the first table was loaded
    broken = _raw_mysql_backup(MY_PROJECT, "CREATE TABLE t (id int PRIMARY KEY, v text);\n"
                                           "INSERT INTO t VALUES (1, 'from the broken dump');\n"
                                           "CREATE TABLE u (x int);\nTHIS IS NOT SQL;\n")
    failed = lxdctl("db", "restore", MY_PROJECT, "--backup", broken, "--yes", check=False)
    assert failed.returncode == 1 and "left as it was" in failed.stderr, failed.stderr
    assert my_sql(cfg, MY_PROJECT, pw, MY_SUM) == before
    assert my_sql(cfg, MY_PROJECT, pw, "SHOW TABLES") == "t"
    assert _my_scratch(cfg, MY_PROJECT) == []  # the killed run's copy went too

    # and a good restore after both completes
    my_sql(cfg, MY_PROJECT, pw, "UPDATE t SET v = 'changed after' WHERE id = 1; CREATE TABLE t3 (x int)")
    lxdctl("db", "restore", MY_PROJECT, "--backup", good, "--yes")
    assert my_sql(cfg, MY_PROJECT, pw, MY_SUM) == before
    assert my_sql(cfg, MY_PROJECT, pw, "SHOW TABLES") == "t"
    assert _my_scratch(cfg, MY_PROJECT) == []
