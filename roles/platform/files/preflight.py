#!/usr/bin/env python3
"""Preflight of role platform: read-only checks, one JSON report on stdout.

Input: JSON in the environment variable LXDCTL_PREFLIGHT (never a command line, never a
shell).  Output: {"init_system", "bridge_address", "subnet", "missing_packages",
"errors": [messages naming the setting and how to fix it], "files": {path: state},
"lines": {path: [lines]}, "daemons": {name: status}, "secrets": {...}}.

The file, line and daemon states let the role compute its differences up front and touch
only what differs, so a rerun that changes nothing costs a handful of tasks.  The report
holds the existing credentials, so the task that runs this is no_log.
"""
import grp
import hashlib
import pwd
import socket
import ipaddress
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request

_USERS_RE = re.compile(r'\("([^"]+)",pid=(\d+)')


def init_system():
    if not os.path.isdir("/run/systemd/system"):
        return "none"
    try:
        with open("/proc/1/comm") as handle:
            if handle.read().strip() == "systemd":
                return "systemd"
    except OSError:
        pass
    try:
        return "systemd" if os.path.basename(os.readlink("/proc/1/exe")) == "systemd" else "none"
    except OSError:
        return "none"


def check_network(spec, errors):
    value = spec.get("network_address")
    rule = ("platform_lxd_network_address (--subnet) must be the bridge's IPv4 address with a prefix "
            "of /8 to /30, such as 10.77.0.1/24 (got %r); fix it and run lxdctl init again" % (value,))
    try:
        iface = ipaddress.ip_interface(str(value))
    except ValueError:
        errors.append(rule)
        return None, None
    if "/" not in str(value) or iface.version != 4 or not 8 <= iface.network.prefixlen <= 30:
        errors.append(rule)
        return None, None
    if iface.ip in (iface.network.network_address, iface.network.broadcast_address):
        errors.append("platform_lxd_network_address (--subnet) %s is the network or broadcast address of "
                      "%s; give the bridge's own address, such as %s/%d"
                      % (value, iface.network, next(iface.network.hosts()), iface.network.prefixlen))
        return None, None
    if not iface.ip.is_private:
        errors.append("platform_lxd_network_address (--subnet) %s is not a private address; use one from "
                      "10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16" % value)
        return None, None
    # The subnet must not overlap a network of another interface of this host.
    try:
        out = subprocess.run(["ip", "-j", "-4", "addr"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             universal_newlines=True, check=False).stdout
        for link in json.loads(out or "[]"):
            if link.get("ifname") == spec.get("network_name"):
                continue
            for addr in link.get("addr_info", []):
                other = ipaddress.ip_interface("%s/%s" % (addr["local"], addr["prefixlen"])).network
                if other.overlaps(iface.network) and not other.is_loopback:
                    errors.append("platform_lxd_network_address (--subnet) %s overlaps %s on interface %s; "
                                  "choose a free private subnet, e.g. --subnet 10.77.0.1/24"
                                  % (iface.network, other, link.get("ifname")))
    except (OSError, ValueError, KeyError):
        pass
    return str(iface.ip), str(iface.network)


def listeners():
    """[(proto, address, port, [process names])] of listening sockets."""
    found = []
    for proto, flag in (("tcp", "-Hltnp"), ("udp", "-Hlunp")):
        try:
            out = subprocess.run(["ss", flag], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 universal_newlines=True, check=False).stdout
        except OSError:
            continue
        for line in out.splitlines():
            parts = line.split()
            if len(parts) < 4:
                continue
            local = parts[3]
            addr, _, port = local.rpartition(":")
            addr = addr.strip("[]").split("%")[0]
            try:
                port = int(port)
            except ValueError:
                continue
            names = ["%s (pid %s)" % m for m in _USERS_RE.findall(line)]
            found.append((proto, addr, port, names))
    return found


def _covers(listen_addr, wanted):
    wild = ("0.0.0.0", "*", "::", "")
    return listen_addr in wild or wanted in wild or listen_addr == wanted


def check_ports(spec, bridge, errors):
    seen = {}
    socks = listeners()
    for item in spec.get("ports", []):
        setting, option, port = item["setting"], item.get("option"), item.get("port")
        if port in (None, ""):
            continue  # the component is disabled
        how = ("choose another with %s or -e %s=PORT" % (option, setting)) if option else \
            "choose another with -e %s=PORT" % setting
        try:
            port = int(port)
            if not 1 <= port <= 65535:
                raise ValueError
        except (TypeError, ValueError):
            errors.append("%s must be a port number from 1 to 65535 (got %r)" % (setting, item.get("port")))
            continue
        addresses = [a if a != "bridge" else bridge for a in item.get("addresses", ["127.0.0.1"]) if a]
        for address in addresses:
            key = (address, port)
            if key in seen and seen[key] != setting:
                errors.append("%s: port %d on %s is also set for %s; %s" % (setting, port, address, seen[key], how))
            seen[key] = setting
            for proto, laddr, lport, names in socks:
                if lport != port or proto not in item.get("protos", ["tcp"]) or not _covers(laddr, address):
                    continue
                owners = item.get("owners", [])
                if names and all(n.split(" (")[0] in owners for n in names):
                    continue  # our own daemon holds it already
                who = ", ".join(names) or "another process"
                errors.append("%s: port %d (%s on %s) is already in use by %s; stop that process or %s"
                              % (setting, port, proto, laddr or address, who, how))
                break


def check_address(spec, errors):
    for setting, option in (("platform_dns_address", "--dns-address"), ("platform_public_address", None)):
        value = spec.get(setting)
        if not value:
            continue
        try:
            ipaddress.ip_address(value)
        except ValueError:
            errors.append("%s%s must be an IP address (got %r)" % (setting, " (%s)" % option if option else "", value))


def missing_packages(packages):
    if not packages:
        return []
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\\n"] + list(packages),
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True,
                             check=False).stdout
    except OSError:
        return list(packages)
    installed = {line.split()[0] for line in out.splitlines() if line.endswith(" installed")}
    return [pkg for pkg in packages if pkg not in installed]


def check_mirror(mirror, codename, errors):
    if not mirror:
        return
    url = mirror.rstrip("/") + "/dists/%s/Release" % codename
    if not re.match(r"^https?://[^\s]+$", mirror):
        errors.append("platform_images_mirror (--mirror) must be an http:// or https:// Debian mirror URL "
                      "(got %r)" % mirror)
        return
    try:
        request = urllib.request.Request(url, method="HEAD")
        urllib.request.urlopen(request, timeout=5).close()
    except urllib.error.HTTPError as exc:
        errors.append("platform_images_mirror (--mirror) %s answers %s for %s: it is not a Debian mirror with "
                      "%s; fix the URL or leave it empty to use the host's apt source" % (mirror, exc.code, url, codename))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        errors.append("platform_images_mirror (--mirror) %s cannot be reached (%s); fix the URL, make it "
                      "reachable, or leave it empty to use the host's apt source" % (mirror, reason))


def file_states(paths):
    states = {}
    for path in paths:
        try:
            st = os.lstat(path)
        except OSError:
            states[path] = {"exists": False}
            continue
        state = {"exists": True, "mode": "%04o" % (st.st_mode & 0o7777), "isdir": os.path.isdir(path)}
        try:
            state["owner"] = pwd.getpwuid(st.st_uid).pw_name
        except KeyError:
            state["owner"] = str(st.st_uid)
        try:
            state["group"] = grp.getgrgid(st.st_gid).gr_name
        except KeyError:
            state["group"] = str(st.st_gid)
        if os.path.isfile(path) and not os.path.islink(path):
            digest = hashlib.sha1()
            with open(path, "rb") as handle:
                digest.update(handle.read())
            state["sha1"] = digest.hexdigest()
        states[path] = state
    return states


def file_lines(paths):
    found = {}
    for path in paths:
        try:
            with open(path) as handle:
                found[path] = [line.rstrip("\n") for line in handle]
        except OSError:
            found[path] = []
    return found


def _pid_alive(pidfile):
    try:
        with open(pidfile) as handle:
            pid = int(handle.readline().strip())
        os.kill(pid, 0)
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, ValueError, IndexError):
        return False


def _answers(wait_port, wait_unix):
    if wait_port:
        host, _, port = str(wait_port).rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=0.5).close()
        except (OSError, ValueError):
            return False
    if wait_unix:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(0.5)
        try:
            sock.connect(wait_unix)
        except OSError:
            return False
        finally:
            sock.close()
    return bool(wait_port or wait_unix)


def _unit_ok(item):
    """Active, enabled, answering, and (a distribution unit) carrying our restart drop-in,
    as the daemon module leaves it; anything less and the role runs the module."""
    unit = item.get("unit") or "lxdctl-%s" % item["name"]
    unit = unit if "." in unit else unit + ".service"
    if item.get("unit") and not os.path.isfile("/etc/systemd/system/%s.d/lxdctl.conf" % unit):
        return False
    for verb in ("is-active", "is-enabled"):
        if subprocess.run(["systemctl", verb, "--quiet", unit], check=False).returncode != 0:
            return False
    return _answers(item.get("wait_port"), item.get("wait_unix")) or not (item.get("wait_port") or item.get("wait_unix"))


def daemon_states(daemons, system):
    states = {}
    for item in daemons:
        if system == "systemd":
            states[item["name"]] = "running" if _unit_ok(item) else "stopped"
        elif _pid_alive(item.get("pidfile") or ""):
            states[item["name"]] = "running" if _answers(item.get("wait_port"), item.get("wait_unix")) or not (
                item.get("wait_port") or item.get("wait_unix")) else "starting"
        elif _answers(item.get("wait_port"), item.get("wait_unix")):
            states[item["name"]] = "external"
        else:
            states[item["name"]] = "stopped"
    return states


def read_secrets(path):
    if not path:
        return {}
    try:
        with open(path) as handle:
            data = json.load(handle)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def admin_logins(spec, secrets):
    """Whether the admin accounts already work (so the admin setup can be skipped)."""
    found = {"postgres": False, "mysql": False}
    pg = spec.get("postgres")
    if pg and secrets.get("postgres_admin_password"):
        try:
            import psycopg2

            conn = psycopg2.connect(host="127.0.0.1", port=pg["port"], user=pg["user"],
                                    password=secrets["postgres_admin_password"], dbname="postgres", connect_timeout=3)
            with conn.cursor() as cur:
                cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
                found["postgres"] = bool(cur.fetchone()[0])
            conn.close()
        except Exception:  # noqa: BLE001 - any failure means "set it up"
            pass
    my = spec.get("mysql")
    if my and secrets.get("mysql_admin_password"):
        try:
            import pymysql

            ok = True
            for kwargs in ({"host": "127.0.0.1", "port": my["port"]}, {"unix_socket": my["socket"]}):
                conn = pymysql.connect(user=my["user"], password=secrets["mysql_admin_password"], connect_timeout=3,
                                       **kwargs)
                with conn.cursor() as cur:
                    cur.execute("SELECT Grant_priv FROM mysql.user WHERE User = %s AND Host = %s",
                                (my["user"], "localhost" if "unix_socket" in kwargs else "127.0.0.1"))
                    row = cur.fetchone()
                    ok = ok and bool(row and row[0] == "Y")
                conn.close()
            found["mysql"] = ok
        except Exception:  # noqa: BLE001
            pass
    return found


def missing_zones(spec, secrets):
    """Zones not yet in PowerDNS; all of them when its API does not answer."""
    zones = list(spec.get("zones") or [])
    if not zones or not secrets.get("pdns_api_key") or not spec.get("api_url"):
        return zones
    try:
        request = urllib.request.Request(spec["api_url"] + "/api/v1/servers/localhost/zones",
                                         headers={"X-API-Key": secrets["pdns_api_key"]})
        with urllib.request.urlopen(request, timeout=3) as response:
            have = {zone["name"].rstrip(".") for zone in json.loads(response.read().decode())}
    except (OSError, ValueError, KeyError, urllib.error.URLError):
        return zones
    return [zone for zone in zones if zone.rstrip(".") not in have]


def main():
    spec = json.loads(os.environ.get("LXDCTL_PREFLIGHT") or "{}")
    errors = []
    bridge, subnet = check_network(spec, errors)
    check_address(spec, errors)
    check_ports(spec, bridge, errors)
    check_mirror(spec.get("mirror"), spec.get("codename") or "bookworm", errors)
    report = {
        "init_system": init_system(),
        "bridge_address": bridge,
        "subnet": subnet,
        "missing_packages": missing_packages(spec.get("packages", [])),
        "errors": errors,
        "files": file_states(spec.get("files", [])),
        "lines": file_lines(spec.get("line_files", [])),
        "daemons": daemon_states(spec.get("daemons", []), init_system()),
    }
    secrets = read_secrets(spec.get("secrets_file"))
    report["secrets"] = secrets
    report["admin_ok"] = admin_logins(spec.get("admins") or {}, secrets)
    report["missing_zones"] = missing_zones(spec.get("pdns") or {}, secrets)
    json.dump(report, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
