"""``lxdctl platform status``: each platform component, its version, whether it is up, and
its endpoints.  Read-only: it reads /etc/lxdctl/platform.json and asks each service directly
(all at once, with short timeouts), so it is fast and changes nothing.
"""
import json
import os
import socket
import ssl
import subprocess
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import click

from lxdctl.collection import module_utils
from lxdctl.options import output_option
from lxdctl.output import emit

TIMEOUT = 3


@click.group()
def platform():
    """The host platform that `lxdctl init` set up."""


@platform.command("status")
@output_option
def status(output):
    """Show each component (LXD, PowerDNS, PostgreSQL, MariaDB, Redis, memcached, nginx,
    pebble), its version, whether it is up and its endpoints.  Exits 1 when one is down."""
    errors = module_utils("_errors")
    config_mod = module_utils("_platform_config")
    try:
        config = config_mod.load(required=True)
    except errors.LxdctlError as exc:
        raise click.ClickException(exc.msg)
    rows = collect(config)
    if output == "json":
        emit({"init_system": config.get("init_system"), "public_address": config.get("public_address"),
              "components": rows}, output)
    else:
        click.echo("init system: %s   public address: %s" % (config.get("init_system"), config.get("public_address")))
        emit(rows, output, columns=["component", "up", "version", "endpoint", "detail"])
    if not all(row["up"] for row in rows):
        raise SystemExit(1)


def collect(config):
    checks = [
        ("lxd", _lxd),
        ("powerdns", _pdns),
        ("postgresql", _postgres),
        ("mariadb", _mysql),
        ("redis", _redis),
        ("memcached", _memcached),
        ("nginx", _nginx),
    ]
    if config.get("acme", {}).get("ca_bundle"):
        checks.append(("pebble", _pebble))
    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        futures = [(name, pool.submit(_safe, func, config)) for name, func in checks]
        rows = []
        for name, future in futures:
            row = {"component": name, "up": False, "version": None, "endpoint": None, "detail": None}
            row.update(future.result())
            rows.append(row)
    return rows


def _safe(func, config):
    try:
        return func(config)
    except Exception as exc:  # noqa: BLE001 - a down service is a row, not a crash
        return {"up": False, "detail": _short(exc)}


def _short(exc):
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:120]


def _command_version(argv, prefix=""):
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                              timeout=TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = proc.stdout.strip().splitlines()
    for line in text:
        if prefix in line:
            return line.split(prefix, 1)[1].strip().split()[0] if prefix else line.strip()
    return None


def _unix_http_get(path, url_path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    try:
        sock.connect(path)
        sock.sendall(("GET %s HTTP/1.0\r\nHost: lxd\r\n\r\n" % url_path).encode())
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    finally:
        sock.close()
    raw = b"".join(chunks).decode("utf-8", "replace")
    head, _, body = raw.partition("\r\n\r\n")
    return int(head.split()[1]), body


def _lxd(config):
    lxd = config.get("lxd", {})
    url = lxd.get("url", "unix:///var/lib/lxd/unix.socket")
    path = url[len("unix://"):] if url.startswith("unix://") else url
    code, body = _unix_http_get(path, "/1.0")
    meta = json.loads(body).get("metadata", {}) if code == 200 else {}
    env = meta.get("environment", {})
    return {"up": code == 200, "version": env.get("server_version"), "endpoint": url,
            "detail": "pool %s, network %s (%s), profile %s" % (lxd.get("pool"), lxd.get("network"),
                                                                 lxd.get("subnet"), lxd.get("profile"))}


def _pdns(config):
    pdns = config.get("pdns", {})
    request = urllib.request.Request("%s/api/v1/servers/%s" % (pdns["api_url"], pdns.get("server_id", "localhost")),
                                     headers={"X-API-Key": pdns.get("api_key", "")})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        info = json.loads(response.read().decode())
    dns_up = _tcp(pdns.get("dns_address", "127.0.0.1"), pdns.get("dns_port", 53))
    return {"up": dns_up, "version": info.get("version"),
            "endpoint": "dns %s:%s, api %s" % (pdns.get("dns_address"), pdns.get("dns_port"), pdns["api_url"]),
            "detail": "zones: %s" % ", ".join(config.get("dns", {}).get("managed_zones", [])) if dns_up
            else "the API answers but DNS on %s:%s does not" % (pdns.get("dns_address"), pdns.get("dns_port"))}


def _postgres(config):
    import psycopg2

    pg = config.get("postgres", {})
    conn = psycopg2.connect(host=pg["host"], port=pg["port"], user=pg["admin_user"], password=pg["admin_password"],
                            dbname="postgres", connect_timeout=TIMEOUT)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0].split()[0]
    finally:
        conn.close()
    return {"up": True, "version": version, "endpoint": "%s:%s (tenants %s:%s)"
            % (pg["host"], pg["port"], pg.get("tenant_host"), pg["port"])}


def _mysql(config):
    import pymysql

    my = config.get("mysql", {})
    conn = pymysql.connect(host=my["host"], port=my["port"], user=my["admin_user"], password=my["admin_password"],
                           connect_timeout=TIMEOUT)
    try:
        version = conn.get_server_info()
    finally:
        conn.close()
    if version.startswith("5.5.5-"):  # MariaDB's replication-compatibility prefix
        version = version[len("5.5.5-"):]
    return {"up": True, "version": version.split("-")[0], "endpoint": "%s:%s (tenants %s:%s)"
            % (my["host"], my["port"], my.get("tenant_host"), my["port"])}


def _redis(config):
    import redis

    rd = config.get("redis", {})
    client = redis.Redis(host=rd["host"], port=rd["port"], username=rd["admin_user"], password=rd["admin_password"],
                         socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
    try:
        info = client.info("server")
    finally:
        client.close()
    return {"up": True, "version": info.get("redis_version"), "endpoint": "%s:%s (tenants %s:%s)"
            % (rd["host"], rd["port"], rd.get("tenant_host"), rd["port"]), "detail": "aclfile %s" % rd.get("aclfile")}


def _memcached(config):
    mc = config.get("memcached", {})
    sock = socket.create_connection(("127.0.0.1", 11211), timeout=TIMEOUT)
    try:
        sock.sendall(b"version\r\n")
        reply = sock.recv(256).decode("ascii", "replace").strip()
    finally:
        sock.close()
    version = reply.split()[1] if reply.startswith("VERSION") else None
    ports = mc.get("port_range") or []
    return {"up": version is not None, "version": version, "endpoint": "127.0.0.1:11211",
            "detail": "project instances on %s:%s" % (mc.get("listen"), "-".join(str(p) for p in ports))}


def _nginx(config):
    ng = config.get("nginx", {})
    port = ng.get("http_port", 80)
    with urllib.request.urlopen("http://127.0.0.1:%s/lxdctl-health" % port, timeout=TIMEOUT) as response:
        up = response.status == 200
    sites = ng.get("sites_dir", "")
    count = len([name for name in os.listdir(sites) if name.endswith(".conf")]) if os.path.isdir(sites) else 0
    return {"up": up, "version": _command_version(["nginx", "-v"], "nginx/"),
            "endpoint": "http :%s, https :%s" % (port, ng.get("https_port", 443)),
            "detail": "%d site%s in %s" % (count, "" if count == 1 else "s", sites)}


def _pebble(config):
    acme = config.get("acme", {})
    context = ssl.create_default_context(cafile=acme.get("ca_bundle"))
    with urllib.request.urlopen(acme["directory_url"], timeout=TIMEOUT, context=context) as response:
        up = response.status == 200 and "newOrder" in response.read().decode()
    return {"up": up, "version": _dpkg_version("pebble"), "endpoint": acme["directory_url"],
            "detail": "CA bundle %s" % acme.get("ca_bundle")}


def _tcp(host, port):
    try:
        socket.create_connection((host, int(port)), timeout=TIMEOUT).close()
        return True
    except OSError:
        return False


def _dpkg_version(package):
    return _command_version(["dpkg-query", "-W", "-f", "${Version}\n", package])
