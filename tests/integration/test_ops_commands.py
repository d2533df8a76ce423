"""logs, metrics, exec, health-check and smoke-test against a real project container.

The container is made with lxd_instance (labelled user.lxdctl.project, like the project role
makes it) and recorded in the state with lxdctl_state; a python http.server runs in it as the
transient unit ``lxdctl-app@it`` (the deploy role's unit name), published through nginx_site.
"""
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from tests.integration.data_support import run_module
from tests.support.cli import lxdctl

PROJECT = "it-ops-app"
CONTAINER = "lxdctl-" + PROJECT
SECRET = "it-ops-env-" + os.urandom(6).hex()


def lxc_exec(*argv, check=True):
    proc = subprocess.run(["lxc", "exec", CONTAINER, "--"] + list(argv), capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def ok(result):
    assert not result.failed, result
    return result


@pytest.fixture(scope="module")
def app(platform_config):
    cfg = platform_config
    domain = "%s.%s" % (PROJECT, cfg["dns"]["default_zone"])
    run_module("lxd_instance", {"name": CONTAINER, "state": "absent", "force_stop": True})
    inst = ok(run_module("lxd_instance", {
        "name": CONTAINER, "image": cfg["lxd"]["images"]["python"], "pool": cfg["lxd"]["pool"],
        "profiles": [cfg["lxd"]["profile"]], "config": {"user.lxdctl.project": PROJECT, "limits.memory": "256MiB"},
        "devices": {"eth0": {"type": "nic", "network": cfg["lxd"]["network"], "name": "eth0",
                             "security.port_isolation": "true"}},
        "state": "started", "timeout": 120}))
    address = inst["ipv4"][0] if isinstance(inst.get("ipv4"), list) else inst["ipv4"]
    ok(run_module("lxdctl_state", {"entity": "project", "project": PROJECT, "values": {
        "status": "running", "domain": domain, "container_name": CONTAINER, "runtime": "python", "port": 8000,
        "address": address}}))
    lxc_exec("sh", "-c", "for i in $(seq 1 60); do systemctl is-system-running 2>/dev/null | grep -qE 'running|degraded' "
                         "&& exit 0; sleep 0.5; done; exit 0")
    lxc_exec("sh", "-c", "id -u app >/dev/null 2>&1 || useradd --system --user-group --create-home "
                         "--home-dir /srv/app --shell /bin/sh app; mkdir -p /srv/www /etc/lxdctl; "
                         "echo healthy > /srv/www/health; echo '<h1>it-ops home</h1>' > /srv/www/index.html")
    env_text = "# test env\nIT_OPS_SECRET='%s'\nIT_OPS_QUOTED='a b '\"'\"'c'\"'\"' $HOME'\n" % SECRET
    subprocess.run(["lxc", "exec", CONTAINER, "--", "sh", "-c", "cat > /etc/lxdctl/app.env; chown app:app "
                    "/etc/lxdctl/app.env; chmod 600 /etc/lxdctl/app.env"], input=env_text, text=True, check=True)
    lxc_exec("systemd-run", "--unit=lxdctl-app@it.service", "--uid=app", "--property=WorkingDirectory=/srv/www",
             "/usr/bin/python3", "-u", "-m", "http.server", "8000", "--bind", "0.0.0.0")
    ok(run_module("nginx_site", {"name": PROJECT, "server_names": [domain],
                                 "upstreams": [{"address": "%s:8000" % address}]}))
    for _ in range(60):
        probe = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: " + domain,
                                "http://%s:%s/health" % (cfg["public_address"], cfg["nginx"]["http_port"])],
                               capture_output=True, text=True)
        if probe.stdout == "200":
            break
        time.sleep(0.5)
    yield {"domain": domain, "address": address}
    run_module("nginx_site", {"name": PROJECT, "state": "absent"})
    run_module("lxd_instance", {"name": CONTAINER, "state": "absent", "force_stop": True})
    run_module("lxdctl_state", {"entity": "project", "project": PROJECT, "state": "absent"})


def test_it_ops_exec(app):
    proc = lxdctl("exec", PROJECT, "--", "sh", "-c", 'echo "$IT_OPS_SECRET|$IT_OPS_QUOTED"; id -un; pwd; '
                                                     'echo to-stderr >&2; exit 7', check=7)
    assert proc.stdout.splitlines() == ["%s|a b 'c' $HOME" % SECRET, "app", "/srv/app"]
    assert proc.stderr.strip() == "to-stderr"
    root = lxdctl("exec", PROJECT, "--root", "--", "sh", "-c", 'id -un; echo "$IT_OPS_SECRET"', check=0)
    assert root.stdout.splitlines() == ["root", SECRET]
    alias = lxdctl("container", "exec", PROJECT, "--", "printf", "%s\\n", "$(id)", ";", "`x`", check=0)
    assert alias.stdout.splitlines() == ["$(id)", ";", "`x`"]  # words pass through, never a shell
    piped = lxdctl("exec", PROJECT, "--", "cat", input="from stdin\n", check=0, stdin=None)
    assert piped.stdout == "from stdin\n"
    lxdctl("exec", PROJECT, "--", "test", "-t", "0", check=1)  # no terminal: no TTY
    tty = subprocess.run(["script", "-qec", "lxdctl exec %s -- test -t 0" % PROJECT, "/dev/null"],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert tty.returncode == 0, tty.stdout + tty.stderr  # stdin a terminal: a TTY in the container
    missing = lxdctl("exec", PROJECT, "--", "no-such-command-it-ops", check=None)
    assert missing.returncode != 0


def test_it_ops_exec_without_app_user_runs_as_root(app):
    lxc_exec("sh", "-c", "cp -p /etc/passwd /etc/passwd.it-ops && sed -i 's/^app:/app-hidden:/' /etc/passwd")
    try:
        proc = lxdctl("exec", PROJECT, "--", "id", "-un", check=0)
        assert proc.stdout.strip() == "root" and "no user app" in proc.stderr
    finally:
        lxc_exec("sh", "-c", "mv /etc/passwd.it-ops /etc/passwd")


def test_it_ops_health_and_smoke(app):
    good = lxdctl("health-check", PROJECT, "--output", "json", check=0)
    data = json.loads(good.stdout)
    assert data["ok"] is True and data["status"] == 200 and data["body"].strip() == "healthy"
    assert data["url"] == "http://%s/health" % app["domain"]
    assert lxdctl("health-check", PROJECT, check=0).stdout.startswith("ok ")
    bad = lxdctl("health-check", PROJECT, "--path", "/nope", "--output", "json", check=1)
    assert json.loads(bad.stdout)["status"] == 404
    lxdctl("health-check", PROJECT, "--path", "/nope", "--expect-status", "404", check=0)
    smoke = json.loads(lxdctl("smoke-test", PROJECT, "--path", "/", "--path", "/health", "--output", "json",
                              check=0).stdout)
    assert smoke["ok"] and [c["status"] for c in smoke["checks"]] == [200, 200]
    lxdctl("smoke-test", PROJECT, "--expect-text", "it-ops home", check=0)
    lxdctl("smoke-test", PROJECT, "--expect-text", "not on the page", check=1)
    lxdctl("health-check", PROJECT, "--path", "no-slash", check=2)

    # the app stops: nginx answers 502, the check fails
    lxc_exec("systemctl", "stop", "lxdctl-app@it.service")
    try:
        down = lxdctl("health-check", PROJECT, "--output", "json", "--timeout", "5", check=1)
        assert json.loads(down.stdout)["status"] in (502, 504)
        lxdctl("smoke-test", PROJECT, check=1)
    finally:
        lxc_exec("systemd-run", "--unit=lxdctl-app@it.service", "--uid=app", "--property=WorkingDirectory=/srv/www",
                 "/usr/bin/python3", "-u", "-m", "http.server", "8000", "--bind", "0.0.0.0")
    lxdctl("health-check", PROJECT, "--retries", "20", check=0)


def test_it_ops_logs(app):
    lxdctl("health-check", PROJECT, "--path", "/health?it-ops-log-marker", check=0)
    found = ""
    for _ in range(20):
        found = lxdctl("logs", PROJECT, "--tail", "50", check=0).stdout
        if "it-ops-log-marker" in found:
            break
        time.sleep(0.5)
    assert "it-ops-log-marker" in found
    one = lxdctl("logs", PROJECT, "--tail", "1", check=0).stdout.strip().splitlines()
    assert len(one) == 1
    system = lxdctl("logs", PROJECT, "--system", "--tail", "200", check=0).stdout
    assert "systemd" in system
    recent = lxdctl("logs", PROJECT, "--since", "1 hour ago", check=0).stdout
    assert "it-ops-log-marker" in recent
    lxdctl("logs", PROJECT, "--since", "--help; rm", check=2)

    follow = subprocess.Popen(["lxdctl", "logs", PROJECT, "--follow", "--tail", "0"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        time.sleep(2)
        lxdctl("health-check", PROJECT, "--path", "/health?it-ops-follow-marker", check=0)
        deadline = time.time() + 20
        line = ""
        while time.time() < deadline:
            line = follow.stdout.readline()
            if "it-ops-follow-marker" in line:
                break
        assert "it-ops-follow-marker" in line
    finally:
        follow.terminate()
        follow.wait(timeout=20)


def test_it_ops_metrics(app):
    data = json.loads(lxdctl("metrics", PROJECT, "--output", "json", check=0).stdout)
    assert len(data) == 1
    row = data[0]
    assert row["project"] == PROJECT and row["container"] == CONTAINER and row["running"] is True
    assert row["memory_bytes"] > 0 and row["processes"] > 0
    assert row["memory_limit_bytes"] == 256 * 1024 * 1024
    assert row["network"]["eth0"]["rx_bytes"] > 0 and row["network"]["eth0"]["tx_bytes"] > 0

    # busy loop for a while: CPU usage shows up
    burn = subprocess.Popen(["lxc", "exec", CONTAINER, "--", "timeout", "6", "sh", "-c", "while :; do :; done"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        busy = json.loads(lxdctl("metrics", PROJECT, "--output", "json", "--interval", "2", check=0).stdout)[0]
        assert busy["cpu_percent"] > 20, busy["cpu_percent"]
    finally:
        burn.wait(timeout=30)

    prom = lxdctl("metrics", "--output", "prometheus", check=0).stdout
    line_re = re.compile(r'^[a-z_]+\{([a-z_]+="[^"\\\n]*(?:\\.[^"\\\n]*)*",?)+\} -?[0-9.e+-]+$')
    for line in prom.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or line_re.match(line), line
    assert 'lxdctl_up{container="%s",project="%s"} 1' % (CONTAINER, PROJECT) in prom
    assert re.search(r'lxdctl_memory_usage_bytes\{container="%s",project="%s"\} [1-9][0-9]*' % (CONTAINER, PROJECT), prom)
    assert "# TYPE lxdctl_network_receive_bytes_total counter" in prom

    table = lxdctl("metrics", check=0).stdout
    assert PROJECT in table and "running" in table
    watched = lxdctl("metrics", PROJECT, "--watch", "--count", "2", "--interval", "0.5", "--output", "json", check=0)
    assert watched.stdout.count('"project": "%s"' % PROJECT) == 2


@pytest.mark.parametrize("args", [
    ["logs", "it-ops-nosuch"], ["metrics", "it-ops-nosuch"], ["exec", "it-ops-nosuch", "--", "true"],
    ["container", "exec", "it-ops-nosuch", "--", "true"], ["health-check", "it-ops-nosuch"],
    ["smoke-test", "it-ops-nosuch"], ["ssl", "renew", "it-ops-nosuch"],
])
def test_it_ops_missing_project(args):
    proc = lxdctl(*args, check=1)
    assert "project it-ops-nosuch does not exist" in proc.stderr


def test_it_ops_project_without_container(platform_config):
    name = "it-ops-nocont"
    ok(run_module("lxdctl_state", {"entity": "project", "project": name, "values": {"status": "stopped"}}))
    try:
        for args in (["logs", name], ["exec", name, "--", "true"]):
            proc = lxdctl(*args, check=1)
            assert "has no container" in proc.stderr
        proc = lxdctl("metrics", name, check=1)
        assert "has no container" in proc.stderr
        proc = lxdctl("ssl", "renew", name, check=1)
        assert "without TLS" in proc.stderr
    finally:
        run_module("lxdctl_state", {"entity": "project", "project": name, "state": "absent"})


def _serial_of_file(path):
    return subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", path], capture_output=True, text=True,
                          check=True).stdout.strip()


def _served_serial(cfg, domain):
    conn = subprocess.run(["openssl", "s_client", "-connect", "%s:%s" % (cfg["public_address"], cfg["nginx"]["https_port"]),
                           "-servername", domain], input="", capture_output=True, text=True, timeout=30)
    cert = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=conn.stdout, capture_output=True, text=True)
    return cert.stdout.strip()


def test_it_ops_ssl_renew(platform_config, app):
    cfg = platform_config
    domain = app["domain"]
    zone = cfg["dns"]["default_zone"]
    cert_dir = cfg["nginx"]["cert_dir"]
    cert, key = os.path.join(cert_dir, domain + ".crt"), os.path.join(cert_dir, domain + ".key")
    ok(run_module("powerdns_record", {"zone": zone, "name": domain, "type": "A", "records": [cfg["public_address"]]}))
    ok(run_module("lxdctl_state", {"entity": "project", "project": PROJECT, "values": {"ssl": True}}))
    try:
        first = json.loads(lxdctl("ssl", "renew", PROJECT, "--output", "json", check=0, timeout=300).stdout)
        assert first["domain"] == domain and first["certificate"] == cert and first["renewed"] is True
        serial1 = _serial_of_file(cert)
        ok(run_module("nginx_site", {"name": PROJECT, "server_names": [domain],
                                     "upstreams": [{"address": "%s:8000" % app["address"]}],
                                     "tls_certificate": cert, "tls_certificate_key": key}))
        assert _served_serial(cfg, domain) == serial1

        kept = json.loads(lxdctl("ssl", "renew", PROJECT, "--output", "json", check=0, timeout=300).stdout)
        assert kept["renewed"] is False and _serial_of_file(cert) == serial1

        forced = json.loads(lxdctl("ssl", "renew", PROJECT, "--force", "--output", "json", check=0, timeout=300).stdout)
        assert forced["renewed"] is True
        serial2 = _serial_of_file(cert)
        assert serial2 != serial1
        assert _served_serial(cfg, domain) == serial2  # nginx was reloaded

        secure = json.loads(lxdctl("health-check", PROJECT, "--insecure", "--output", "json", check=0).stdout)
        assert secure["url"] == "https://%s/health" % domain and secure["status"] == 200
    finally:
        run_module("lxdctl_state", {"entity": "project", "project": PROJECT, "values": {"ssl": False}})
        run_module("nginx_site", {"name": PROJECT, "server_names": [domain],
                                  "upstreams": [{"address": "%s:8000" % app["address"]}]})
        run_module("powerdns_record", {"zone": zone, "name": domain, "type": "A", "state": "absent"})
        for path in (cert, key):
            if os.path.exists(path):
                os.unlink(path)


def test_it_ops_real_project(platform_config):
    """The same commands on a project made by `lxdctl create` (container, database, env, DNS, site)."""
    name = "it-ops-real"
    lxdctl("delete", name, "--yes", timeout=600, check=None)
    lxdctl("create", name, "--db", "postgres", "--runtime", "python", check=0, timeout=600)
    try:
        proc = lxdctl("exec", name, "--", "sh", "-c", 'id -un; test -n "$DATABASE_URL" && echo has-url', check=0)
        assert proc.stdout.split() == ["app", "has-url"]
        assert "postgresql://" not in proc.stdout  # the URL itself (with its password) was not printed
        empty = lxdctl("logs", name, check=0)
        assert "deploy the app first" in empty.stderr
        # the container's own journal: systemd's boot (the image has the app user, so no useradd is logged)
        assert "Startup finished" in lxdctl("logs", name, "--system", "--tail", "500", check=0).stdout
        row = json.loads(lxdctl("metrics", name, "--output", "json", check=0).stdout)[0]
        assert row["running"] and row["processes"] > 0
        taken = json.loads(lxdctl("db", "backup", name, "--output", "json", check=0, timeout=300).stdout)
        assert taken["db_type"] == "postgres" and taken["database"] == "p_it_ops_real"
        restored = json.loads(lxdctl("db", "restore", name, "--yes", "--output", "json", check=0, timeout=300).stdout)
        assert restored["restored"] == taken["id"]
        records = json.loads(lxdctl("dns", "list", "--output", "json", check=0).stdout)
        assert any(r["name"] == "%s.%s" % (name, platform_config["dns"]["default_zone"]) and r["project"] == name
                   for r in records)
    finally:
        lxdctl("delete", name, "--yes", timeout=600, check=None)
        shutil.rmtree("/var/lib/lxdctl/backups/" + name, ignore_errors=True)
