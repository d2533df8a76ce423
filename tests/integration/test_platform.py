"""The host platform after ``lxdctl init --yes --no-nat --with-pebble`` (scripts/test.sh).

Every service is checked with an independent client (psql, mariadb, redis-cli, dig, curl, a
raw memcached socket); then a rerun must change nothing, a dry run must change nothing, bad
input must fail with a message naming the setting, and no generated secret may appear in
any output.
"""
import hashlib
import json
import os
import socket
import stat
import subprocess
import sys

import pytest

from lxdctl.collection import collections_path, playbook_path

pytestmark = pytest.mark.integration

INIT = ["lxdctl", "init", "--yes", "--no-nat", "--with-pebble"]
CONFIG_DIR = "/etc/lxdctl"
PREFIX = "t_platform_"  # resources this file creates


def run(argv, stdin=None, env=None, timeout=120):
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout, env=full_env)


def secrets_of(cfg):
    return [cfg["pdns"]["api_key"], cfg["postgres"]["admin_password"], cfg["mysql"]["admin_password"],
            cfg["redis"]["admin_password"]]


def assert_no_secret(text, cfg):
    for secret in secrets_of(cfg):
        assert secret not in text, "a generated credential appeared in the output"


# --- platform.json ---------------------------------------------------------------------------
def test_platform_json_follows_the_schema(platform_config):
    cfg = platform_config
    assert set(cfg) == {"version", "init_system", "public_address", "lxd", "pdns", "postgres", "mysql", "redis",
                        "memcached", "nginx", "acme", "state", "dns"}
    assert cfg["version"] == 1 and cfg["init_system"] in ("systemd", "none")
    assert set(cfg["lxd"]) == {"url", "pool", "network", "profile", "bridge_address", "subnet", "images"}
    assert set(cfg["lxd"]["images"]) >= {"base"}
    assert set(cfg["pdns"]) == {"api_url", "api_key", "server_id", "dns_address", "dns_port"}
    for name in ("postgres", "mysql"):
        assert set(cfg[name]) == {"host", "port", "admin_user", "admin_password", "tenant_host"}
    assert set(cfg["redis"]) == {"host", "port", "admin_user", "admin_password", "tenant_host", "aclfile"}
    assert set(cfg["memcached"]) == {"listen", "port_range", "run_dir"}
    assert set(cfg["nginx"]) == {"sites_dir", "http_port", "https_port", "acme_webroot", "cert_dir"}
    assert set(cfg["acme"]) == {"directory_url", "ca_bundle"}
    assert set(cfg["state"]) == {"url", "key_file"}
    assert cfg["dns"] == {"managed_zones": ["lxdctl.test"], "default_zone": "lxdctl.test"}
    assert cfg["pdns"]["dns_port"] == 5300 and isinstance(cfg["postgres"]["port"], int)
    assert cfg["public_address"] == cfg["lxd"]["bridge_address"]
    assert cfg["postgres"]["admin_user"] == "lxdctl_admin"


def test_init_system_is_detected_not_assumed(platform_config):
    # Read independently of the role: systemd counts only when it is PID 1 and booted the host.
    with open("/proc/1/comm") as handle:
        pid1 = handle.read().strip()
    booted = os.path.isdir("/run/systemd/system") and pid1 == "systemd"
    assert platform_config["init_system"] == ("systemd" if booted else "none")


def test_kernel_limits_for_many_containers_are_raised(platform_config):
    # The inotify default (128 instances, shared by all containers of one uid) stops a host at
    # about 20 containers, the keys limit of LXD's production guide (2000, ~9 a container) at about
    # 220; init raises them and the other limits of that guide.
    wanted = {"fs.inotify.max_user_instances": 1048576, "fs.inotify.max_user_watches": 1048576,
              "kernel.keys.maxkeys": 50000, "kernel.keys.maxbytes": 25000000,
              "net.ipv4.neigh.default.gc_thresh3": 8192}
    proc = run(["sysctl", "-n"] + list(wanted))
    assert proc.returncode == 0, proc.stderr
    live = dict(zip(wanted, (int(v) for v in proc.stdout.split())))
    assert all(live[key] >= value for key, value in wanted.items()), live
    with open("/etc/sysctl.d/60-lxdctl.conf") as handle:
        kept = dict(line.replace(" ", "").split("=") for line in handle if "=" in line and not line.startswith("#"))
    assert {key: int(value) for key, value in kept.items()} == wanted


def test_configuration_is_root_only(platform_config):
    assert stat.S_IMODE(os.stat(CONFIG_DIR).st_mode) == 0o700
    for name in ("platform.json", "secrets.json", "state.key"):
        st = os.stat(os.path.join(CONFIG_DIR, name))
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0, name
    assert len(set(secrets_of(platform_config))) == 4 and all(len(s) >= 32 for s in secrets_of(platform_config))


# --- each service, with its own client ---------------------------------------------------------
def psql(cfg, sql, user=None, password=None, host=None):
    pg = cfg["postgres"]
    return run(["psql", "-X", "-h", host or pg["host"], "-p", str(pg["port"]), "-U", user or pg["admin_user"],
                "-d", "postgres", "-Atc", sql],
               env={"PGPASSWORD": password or pg["admin_password"], "PGCONNECT_TIMEOUT": "10"})


def test_postgres_admin_over_loopback_only(platform_config):
    cfg = platform_config
    ok = psql(cfg, "SELECT current_user, current_setting('password_encryption')")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "lxdctl_admin|scram-sha-256"
    listen = psql(cfg, "SHOW listen_addresses").stdout.strip()
    assert listen == "127.0.0.1,%s" % cfg["lxd"]["bridge_address"]
    from_bridge = psql(cfg, "SELECT 1", host=cfg["postgres"]["tenant_host"])
    assert from_bridge.returncode != 0 and "pg_hba.conf rejects" in from_bridge.stderr
    wrong = psql(cfg, "SELECT 1", password="not-the-password")
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr


def test_postgres_tenants_only_from_the_bridge_subnet(platform_config):
    cfg = platform_config
    role, password = PREFIX + "probe", hashlib.sha256(os.urandom(16)).hexdigest()
    psql(cfg, "DROP ROLE IF EXISTS %s" % role)
    created = psql(cfg, "CREATE ROLE %s LOGIN PASSWORD '%s'" % (role, password))
    assert created.returncode == 0, created.stderr
    try:
        # The host's bridge address is inside the subnet, so it stands in for a container.
        bridge = psql(cfg, "SELECT current_user", user=role, password=password, host=cfg["postgres"]["tenant_host"])
        assert bridge.returncode == 0 and bridge.stdout.strip() == role, bridge.stderr
        loopback = psql(cfg, "SELECT 1", user=role, password=password, host="127.0.0.1")
        assert loopback.returncode != 0 and "pg_hba.conf rejects" in loopback.stderr
        method = psql(cfg, "SELECT rolpassword LIKE 'SCRAM-SHA-256$%%' FROM pg_authid WHERE rolname = '%s'" % role)
        assert method.stdout.strip() == "t"
    finally:
        psql(cfg, "DROP ROLE IF EXISTS %s" % role)


def mariadb(cfg, sql, host=None):
    my = cfg["mysql"]
    return run(["mariadb", "-h", host or my["host"], "-P", str(my["port"]), "-u", my["admin_user"], "-N", "-B",
                "-e", sql], env={"MYSQL_PWD": my["admin_password"]})


def test_mariadb_admin_and_listeners(platform_config):
    cfg = platform_config
    who = mariadb(cfg, "SELECT CURRENT_USER()")
    assert who.returncode == 0, who.stderr
    assert who.stdout.strip() == "lxdctl_admin@127.0.0.1"
    grants = mariadb(cfg, "SHOW GRANTS").stdout
    assert "ALL PRIVILEGES ON *.*" in grants and "WITH GRANT OPTION" in grants
    bind = mariadb(cfg, "SELECT @@bind_address").stdout.strip()
    assert bind == "127.0.0.1,%s" % cfg["lxd"]["bridge_address"]
    # Listening on the bridge address; the admin account itself exists only for loopback.
    assert _tcp(cfg["mysql"]["tenant_host"], cfg["mysql"]["port"])
    hosts = mariadb(cfg, "SELECT Host FROM mysql.user WHERE User = 'lxdctl_admin' ORDER BY Host").stdout.split()
    assert hosts == ["127.0.0.1", "localhost"]


def redis_cli(cfg, *args, password=True, host=None):
    rd = cfg["redis"]
    argv = ["redis-cli", "-h", host or rd["host"], "-p", str(rd["port"])]
    env = {}
    if password:
        argv += ["--user", rd["admin_user"]]
        env["REDISCLI_AUTH"] = rd["admin_password"]
    return run(argv + list(args), env=env)


def test_redis_admin_acl_file_and_default_user(platform_config):
    cfg = platform_config
    assert redis_cli(cfg, "PING").stdout.strip() == "PONG"
    assert redis_cli(cfg, "PING", host=cfg["redis"]["tenant_host"]).stdout.strip() == "PONG"
    assert redis_cli(cfg, "CONFIG", "GET", "aclfile").stdout.split()[-1] == "/etc/redis/lxdctl-users.acl"
    assert redis_cli(cfg, "ACL", "SAVE").stdout.strip() == "OK"
    users = redis_cli(cfg, "ACL", "LIST").stdout
    assert "user default off" in users and "user lxdctl_admin on" in users
    # The default user can do nothing, neither without a password nor with an empty one.
    anonymous = redis_cli(cfg, "GET", "x", password=False)
    assert "NOAUTH" in anonymous.stdout + anonymous.stderr
    empty = run(["redis-cli", "-h", "127.0.0.1", "-p", str(cfg["redis"]["port"]), "AUTH", "default", ""])
    assert "WRONGPASS" in empty.stdout + empty.stderr or "ERR" in empty.stdout + empty.stderr
    with open("/etc/redis/lxdctl-users.acl") as handle:
        text = handle.read()
    assert "user lxdctl_admin on #" in text and cfg["redis"]["admin_password"] not in text


def test_powerdns_dns_and_api(platform_config):
    cfg = platform_config
    pdns = cfg["pdns"]
    dig = run(["dig", "+short", "+time=3", "+tries=2", "@" + pdns["dns_address"], "-p", str(pdns["dns_port"]),
               "lxdctl.test", "SOA"])
    assert dig.returncode == 0 and dig.stdout.startswith("ns1.lxdctl.test. hostmaster.lxdctl.test."), dig.stdout
    with_key = run(["curl", "-s", "-f", "-H", "@-", pdns["api_url"] + "/api/v1/servers/localhost/zones"],
                   stdin="X-API-Key: %s\n" % pdns["api_key"])
    assert with_key.returncode == 0, with_key.stderr
    assert "lxdctl.test." in [zone["name"] for zone in json.loads(with_key.stdout)]
    without = run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", pdns["api_url"] + "/api/v1/servers"])
    assert without.stdout == "401"
    assert not _tcp(cfg["lxd"]["bridge_address"], pdns["api_url"].rsplit(":", 1)[1])  # the API is loopback only


def test_nginx_serves_our_default_server(platform_config):
    cfg = platform_config
    health = run(["curl", "-s", "-f", "http://127.0.0.1:%d/lxdctl-health" % cfg["nginx"]["http_port"]])
    assert health.returncode == 0 and health.stdout == "ok\n"
    token = PREFIX + "acme-token"
    path = os.path.join(cfg["nginx"]["acme_webroot"], ".well-known", "acme-challenge", token)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write("challenge-body")
    try:
        challenge = run(["curl", "-s", "-f", "-H", "Host: anything.lxdctl.test",
                         "http://%s/.well-known/acme-challenge/%s" % (cfg["public_address"], token)])
        assert challenge.stdout == "challenge-body"
    finally:
        os.unlink(path)
    assert run(["nginx", "-t", "-q"]).returncode == 0
    assert os.path.isdir(cfg["nginx"]["sites_dir"]) and os.path.isdir(cfg["nginx"]["cert_dir"])
    assert not os.path.exists("/etc/nginx/sites-enabled/default")


def test_pebble_directory_over_its_own_tls(platform_config):
    acme = platform_config["acme"]
    assert acme["ca_bundle"] == "/etc/lxdctl/pebble/ca.pem"
    directory = run(["curl", "-s", "-f", "--cacert", acme["ca_bundle"], acme["directory_url"]])
    assert directory.returncode == 0, directory.stderr
    assert "newOrder" in json.loads(directory.stdout)
    untrusted = run(["curl", "-s", "-o", "/dev/null", acme["directory_url"]])
    assert untrusted.returncode != 0  # its listener certificate is ours, not a public one


def test_memcached_default_instance(platform_config):
    sock = socket.create_connection(("127.0.0.1", 11211), timeout=5)
    try:
        sock.sendall(b"version\r\n")
        assert sock.recv(100).startswith(b"VERSION 1.")
    finally:
        sock.close()
    assert os.path.isdir(platform_config["memcached"]["run_dir"])


def test_platform_status_shows_everything_up(platform_config):
    table = run(["lxdctl", "platform", "status"])
    assert table.returncode == 0, table.stdout + table.stderr
    report = run(["lxdctl", "platform", "status", "--output", "json"])
    assert report.returncode == 0
    rows = {row["component"]: row for row in json.loads(report.stdout)["components"]}
    assert set(rows) == {"lxd", "powerdns", "postgresql", "mariadb", "redis", "memcached", "nginx", "pebble"}
    for name, row in rows.items():
        assert row["up"] is True and row["version"], row
    assert rows["postgresql"]["version"].startswith("15")
    assert rows["redis"]["version"].startswith("7")
    assert rows["powerdns"]["endpoint"] == "dns 127.0.0.1:5300, api http://127.0.0.1:8081"
    assert_no_secret(table.stdout + report.stdout, platform_config)


# --- reruns, dry runs, bad input ----------------------------------------------------------------
def test_rerun_changes_nothing_and_shows_no_secret(platform_config):
    before = _fingerprint()
    again = run(INIT + ["-v"], timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    recap = [line for line in again.stdout.splitlines() if line.startswith("localhost") and "changed=" in line]
    assert recap and "changed=0" in recap[-1] and "failed=0" in recap[-1], recap
    assert_no_secret(again.stdout + again.stderr, platform_config)
    quiet = run(INIT, timeout=900)
    assert quiet.returncode == 0 and "done: 0 changes" in quiet.stderr, quiet.stderr[-2000:]
    assert_no_secret(quiet.stdout + quiet.stderr, platform_config)
    assert _fingerprint() == before


def test_init_creates_the_state_store_with_its_schema(platform_config, tmp_path):
    # A store that does not exist yet (LXDCTL_DATABASE_URL points the modules at a new file):
    # init makes it, so sqlite3 and read-only commands work before the first project.
    db = tmp_path / "state" / "state.db"
    done = run(INIT, env={"LXDCTL_DATABASE_URL": "sqlite:///%s" % db}, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
    tables = run(["sqlite3", "-readonly", str(db), ".tables"])
    assert tables.returncode == 0, tables.stderr
    assert {"projects", "databases", "dns_records", "deployments", "pipelines", "pipeline_runs"} <= set(tables.stdout.split())
    listed = run(["sqlite3", "-readonly", str(db), "SELECT count(*) FROM projects"])
    assert listed.stdout.strip() == "0"


def test_dry_run_of_a_different_setting_changes_nothing(platform_config):
    before = _fingerprint()
    dry = run(INIT + ["--dry-run", "--dns-port", "5301"], timeout=900)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "would be made" in dry.stderr and "done: 0 changes" not in dry.stderr
    assert_no_secret(dry.stdout + dry.stderr, platform_config)
    assert _fingerprint() == before
    assert not _tcp("127.0.0.1", 5301)
    assert _tcp("127.0.0.1", 5300)


def test_taken_dns_port_names_the_setting_then_a_fixed_rerun_converges(platform_config):
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        before = _fingerprint()
        taken = run(INIT + ["--dns-port", str(port)], timeout=900)
        assert taken.returncode == 1
        assert "platform_dns_port: port %d" % port in taken.stderr
        assert "already in use by python" in taken.stderr and "--dns-port" in taken.stderr
        assert _fingerprint() == before  # preflight stopped it before any change
    finally:
        holder.close()


def test_unreachable_mirror_names_the_setting(platform_config):
    bad = run(INIT + ["--mirror", "http://127.0.0.1:9/debian"], timeout=900)
    assert bad.returncode == 1
    assert "platform_images_mirror (--mirror) http://127.0.0.1:9/debian cannot be reached" in bad.stderr
    assert "leave it empty" in bad.stderr


def test_invalid_subnet_is_refused_by_the_cli_and_by_the_role(platform_config):
    cli = run(INIT + ["--subnet", "10.77.0.0/24"])
    assert cli.returncode == 2 and "--subnet" in cli.stderr and "network or broadcast address" in cli.stderr
    # ansible-playbook directly (as ops teams and AWX run it) gets the same rule from the preflight.
    env = {"ANSIBLE_COLLECTIONS_PATH": collections_path(), "ANSIBLE_NOCOLOR": "1"}
    direct = run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", "-c", "local",
                  "-e", "ansible_python_interpreter=%s" % sys.executable,
                  "-e", json.dumps({"platform_lxd_network_address": "10.77.0.300/24", "platform_lxd_network_nat": False,
                                    "platform_pebble_enabled": True}),
                  playbook_path("bootstrap")], env=env, timeout=900)
    assert direct.returncode != 0
    assert "platform_lxd_network_address (--subnet) must be the bridge's IPv4 address" in direct.stdout


def test_drifted_config_is_put_back_and_nginx_reloaded_not_restarted(platform_config):
    path = "/etc/nginx/conf.d/lxdctl.conf"
    with open(path) as handle:
        original = handle.read()
    with open("/run/nginx.pid") as handle:
        pid = handle.read().strip()
    with open(path, "a") as handle:
        handle.write("# %sdrift\n" % PREFIX)
    repaired = run(INIT, timeout=900)
    assert repaired.returncode == 0, repaired.stderr[-2000:]
    assert "changed Configuration files" in repaired.stderr and "changed Services" in repaired.stderr
    with open(path) as handle:
        assert handle.read() == original
    with open("/run/nginx.pid") as handle:
        assert handle.read().strip() == pid  # a graceful reload keeps the master process
    assert run(["curl", "-s", "-f", "http://127.0.0.1/lxdctl-health"]).stdout == "ok\n"


def test_rerun_after_bad_input_converges(platform_config):
    fixed = run(INIT, timeout=900)
    assert fixed.returncode == 0 and "done: 0 changes" in fixed.stderr, fixed.stderr[-2000:]


# --- helpers ------------------------------------------------------------------------------------
def _tcp(host, port):
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        return True
    except OSError:
        return False


_WATCHED = [
    "/etc/lxdctl/platform.json", "/etc/lxdctl/secrets.json", "/etc/lxdctl/state.key",
    "/etc/powerdns/pdns.d/lxdctl.conf", "/etc/postgresql/15/main/pg_hba.conf",
    "/etc/postgresql/15/main/conf.d/lxdctl.conf", "/etc/mysql/mariadb.conf.d/90-lxdctl.cnf",
    "/etc/redis/lxdctl.conf", "/etc/nginx/conf.d/lxdctl.conf", "/etc/lxdctl/pebble/pebble-config.json",
]
_PIDFILES = ["/run/lxdctl/pdns.pid", "/run/postgresql/15-main.pid", "/run/lxdctl/mariadb.pid",
             "/run/lxdctl/redis.pid", "/run/lxdctl/memcached.pid", "/run/nginx.pid", "/run/lxdctl/pebble.pid"]


def _fingerprint():
    """Content and mode of every file the role writes, and the pid of every daemon."""
    state = {}
    for path in _WATCHED:
        with open(path, "rb") as handle:
            state[path] = (hashlib.sha1(handle.read()).hexdigest(), os.stat(path).st_mode)
    for path in _PIDFILES:
        if os.path.exists(path):
            with open(path) as handle:
                state[path] = handle.readline().strip()
    return state
