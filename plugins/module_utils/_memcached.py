# -*- coding: utf-8 -*-
"""One memcached process per project: port registry and process control.

Each instance listens on the platform's memcached address (the bridge address) on a port
of its own, allocated from ``memcached.port_range`` of the platform configuration and
recorded in ``<run_dir>/registry.json`` so that it stays the same across reruns.  The
process runs as the ``memcache`` user through ``_daemon`` (a systemd unit
``lxdctl-memcached-<name>.service`` on systemd hosts, a pidfile-managed process otherwise).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import fcntl
import json
import os
import shutil
import socket
import subprocess

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError
from ansible_collections.lxdctl.platform.plugins.module_utils import _daemon, _platform_config

DEFAULT_RUN_DIR = "/var/lib/lxdctl/memcached"
DEFAULT_PORT_RANGE = (21000, 21999)
DEFAULT_USER = "memcache"


def settings(params=None):
    """``listen``, ``port_range`` and ``run_dir``: parameters, then platform.json ``memcached``."""
    params = params or {}
    section = _platform_config.section("memcached")
    listen = params.get("listen") or section.get("listen") or _platform_config.section("lxd").get("bridge_address")
    if not listen:
        raise LxdctlError("listen: not given, and the platform configuration has no memcached.listen")
    port_range = section.get("port_range") or DEFAULT_PORT_RANGE
    try:
        low, high = int(port_range[0]), int(port_range[1])
    except (TypeError, ValueError, IndexError):
        raise LxdctlError("memcached.port_range of the platform configuration must be [low, high], got %r"
                          % (port_range,))
    run_dir = configured_run_dir(params)
    return {"listen": listen, "port_range": (low, high), "run_dir": run_dir}


def configured_run_dir(params=None):
    """``run_dir``: the parameter, then platform.json ``memcached.run_dir``, then the default."""
    return ((params or {}).get("run_dir") or _platform_config.section("memcached").get("run_dir")
            or DEFAULT_RUN_DIR)


def daemon_name(name):
    return "memcached-%s" % name


def pidfile(run_dir, name):
    return os.path.join(run_dir, "%s.pid" % name)


def argv(binary, listen, port, memory_mb, max_connections=1024):
    return [binary, "-l", listen, "-p", str(int(port)), "-U", "0", "-m", str(int(memory_mb)),
            "-c", str(int(max_connections))]


def find_binary():
    for candidate in (shutil.which("memcached"), "/usr/bin/memcached", "/usr/local/bin/memcached"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise LxdctlError("memcached is not installed on this host (no memcached binary on PATH)")


def port_free(host, port):
    """True when nothing listens on ``host:port`` and it can be bound."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        return True
    except (OSError, socket.error):
        return False
    finally:
        sock.close()


def allocate_port(registry, port_range, listen, name, is_free=port_free):
    """The lowest port of ``port_range`` no other registered instance holds and free now."""
    taken = set(entry.get("port") for key, entry in registry.items() if key != name)
    low, high = port_range
    for port in range(low, high + 1):
        if port not in taken and is_free(listen, port):
            return port
    raise LxdctlError("No free memcached port left in %d-%d" % (low, high))


class Registry(object):
    """``<run_dir>/registry.json`` under an exclusive lock (``with Registry(dir) as reg``)."""

    def __init__(self, run_dir, create=True):
        self.run_dir = run_dir
        self.path = os.path.join(run_dir, "registry.json")
        self.create = create
        self.data = {}
        self._lock = None

    def __enter__(self):
        if self.create and not os.path.isdir(self.run_dir):
            try:
                os.makedirs(self.run_dir, 0o755)
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    raise LxdctlError("Failed to create %s: %s" % (self.run_dir, exc.strerror))
        if os.path.isdir(self.run_dir):
            try:
                self._lock = open(os.path.join(self.run_dir, "registry.lock"), "a")
                fcntl.flock(self._lock, fcntl.LOCK_EX)
            except (IOError, OSError) as exc:
                raise LxdctlError("Failed to lock the memcached registry in %s: %s" % (self.run_dir, exc))
        try:
            with open(self.path) as handle:
                self.data = json.load(handle).get("instances", {})
        except (IOError, OSError):
            self.data = {}
        except ValueError as exc:
            raise LxdctlError("The memcached registry %s is not valid JSON: %s" % (self.path, exc))
        return self

    def save(self):
        tmp = self.path + ".tmp"
        try:
            with open(tmp, "w") as handle:
                json.dump({"version": 1, "instances": self.data}, handle, indent=2, sort_keys=True)
            os.chmod(tmp, 0o644)
            os.rename(tmp, self.path)
        except (IOError, OSError) as exc:
            raise LxdctlError("Failed to write the memcached registry %s: %s" % (self.path, exc))

    def __exit__(self, *exc_info):
        if self._lock is not None:
            self._lock.close()
        return False


def status(name, run_dir, listen, port):
    return _daemon.status(daemon_name(name), pidfile(run_dir, name), wait_port="%s:%s" % (listen, port))


def process_running(name, run_dir):
    """True when the instance's process (or unit) runs, whatever its port."""
    return _daemon.status(daemon_name(name), pidfile(run_dir, name)) == "running"


def start(name, run_dir, listen, port, memory_mb, user=DEFAULT_USER):
    return _daemon.start(
        daemon_name(name), argv(find_binary(), listen, port, memory_mb), pidfile(run_dir, name),
        user=user, wait_port="%s:%s" % (listen, port), timeout=30,
    )


def list_instances(run_dir, unit_dir=None, system=None):
    """Every instance this host has, by name: read-only (reconcile lists orphans with it).

    An instance counts when the registry records it, when its pidfile names a live process, or
    (under systemd) when its unit file exists: a process whose registry entry was lost or
    edited away is still found (and ``memcached_instance state=absent`` still stops it).  Each is
    ``{"name", "port", "listen", "memory_mb", "running", "registered"}``, ordered by name.
    """
    system = system or _daemon.init_system()
    unit_dir = unit_dir or _daemon.UNIT_DIR
    registered = {}
    pidfiles = set()
    units = set()
    if os.path.isdir(run_dir):
        with Registry(run_dir, create=False) as registry:
            registered = dict(registry.data)
        try:
            entries = os.listdir(run_dir)
        except OSError as exc:
            raise LxdctlError("Failed to list %s: %s" % (run_dir, exc.strerror))
        pidfiles = set(entry[:-len(".pid")] for entry in entries if entry.endswith(".pid"))
    if system == "systemd" and os.path.isdir(unit_dir):
        prefix, suffix = _daemon.unit_name(daemon_name("")).rsplit(".", 1)[0], ".service"
        units = set(entry[len(prefix):-len(suffix)] for entry in os.listdir(unit_dir)
                    if entry.startswith(prefix) and entry.endswith(suffix)
                    and len(entry) > len(prefix) + len(suffix))
    instances = []
    for name in sorted(set(registered) | pidfiles | units):
        entry = registered.get(name) or {}
        running = _daemon.status(daemon_name(name), pidfile(run_dir, name), system=system) == "running"
        if not entry and not running and name not in units:
            continue  # a stale pidfile alone: nothing runs, nothing is recorded or installed
        instances.append({"name": name, "port": entry.get("port"), "listen": entry.get("listen"),
                          "memory_mb": entry.get("memory_mb"), "running": running, "registered": bool(entry)})
    return instances


def stop(name, run_dir):
    stopped = _daemon.stop(daemon_name(name), pidfile(run_dir, name))
    if _daemon.init_system() == "systemd":
        unit = _daemon.unit_name(daemon_name(name))
        path = os.path.join(_daemon.UNIT_DIR, unit)
        if os.path.exists(path):
            subprocess.run([_daemon.SYSTEMCTL, "disable", unit], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           check=False)  # already disabled is fine: the unit file goes next
            try:
                os.unlink(path)
            except OSError as exc:
                raise LxdctlError("Failed to remove %s: %s" % (path, exc.strerror))
            subprocess.run([_daemon.SYSTEMCTL, "daemon-reload"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           check=False)
    return stopped
