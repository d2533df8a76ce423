# -*- coding: utf-8 -*-
"""The LXD client wrapper (pylxd).  Every module that talks to LXD goes through here.

Sections below are owned by topic: connection (shared), instances, and host objects
(storage pools, networks, profiles, images).  Each function raises ``LxdctlError`` with
context; "not found" becomes ``None`` where the caller asks for a lookup.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import os
import time

from ansible.module_utils.basic import env_fallback

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError
from ansible_collections.lxdctl.platform.plugins.module_utils import _platform_config

try:
    import pylxd
    from pylxd.exceptions import NotFound as LxdNotFound, LXDAPIException

    HAS_PYLXD = True
    PYLXD_IMPORT_ERROR = None
except ImportError as exc:  # reported by require_pylxd() as a readable failure
    HAS_PYLXD = False
    PYLXD_IMPORT_ERROR = exc
    LxdNotFound = LXDAPIException = Exception

DEFAULT_SOCKET = "/var/lib/lxd/unix.socket"

# Connection options, written once; the doc fragment lxdctl.platform.lxd documents them.
CONNECTION_ARGSPEC = dict(
    lxd_url=dict(type="str", fallback=(env_fallback, ["LXDCTL_LXD_URL"])),
    lxd_client_cert=dict(type="path", fallback=(env_fallback, ["LXDCTL_LXD_CLIENT_CERT"])),
    lxd_client_key=dict(type="path", no_log=False, fallback=(env_fallback, ["LXDCTL_LXD_CLIENT_KEY"])),
    lxd_verify=dict(type="raw", fallback=(env_fallback, ["LXDCTL_LXD_VERIFY"])),
)


def require_pylxd():
    if not HAS_PYLXD:
        raise LxdctlError("The pylxd Python library is required on the managed host: %s" % PYLXD_IMPORT_ERROR)


def connect(params):
    """A ``pylxd.Client`` for the unix socket (default) or a remote HTTPS endpoint."""
    require_pylxd()
    params = _platform_config.resolve(params, "lxd", {"lxd_url": "url"})
    url = params.get("lxd_url") or ("unix://" + DEFAULT_SOCKET)
    try:
        if url.startswith("unix://"):
            path = url[len("unix://"):]
            if not os.path.exists(path):
                raise LxdctlError("LXD socket %s does not exist: is LXD running? (lxd_url)" % path)
            return pylxd.Client(endpoint=path)
        if not url.startswith("https://"):
            raise LxdctlError("lxd_url: must start with unix:// or https://, got %r" % url)
        cert = params.get("lxd_client_cert")
        key = params.get("lxd_client_key")
        if not (cert and key):
            raise LxdctlError("lxd_client_cert and lxd_client_key are needed for an https:// lxd_url")
        verify = params.get("lxd_verify")
        if isinstance(verify, str) and verify.lower() in ("false", "no", "0"):
            verify = False
        elif verify in (None, "", "true", "yes", "1"):
            verify = True
        if verify is True:
            return pylxd.Client(endpoint=url, cert=(cert, key), verify=verify)
        # requests lets REQUESTS_CA_BUNDLE override a session's verify=False or CA path;
        # a session that ignores the environment keeps the setting asked for.
        from pylxd.client import get_session_for_url

        session = get_session_for_url(url, cert=(cert, key), verify=verify)
        session.trust_env = False
        return pylxd.Client(endpoint=url, cert=(cert, key), verify=verify, session=session)
    except LxdctlError:
        raise
    except Exception as exc:  # noqa: BLE001 - connection errors of every kind get the endpoint named
        raise LxdctlError("Failed to connect to LXD at %s: %s" % (url, exc))


def lxd_error(context, exc):
    """An ``LxdctlError`` for a failed LXD call, naming what was attempted."""
    return LxdctlError("%s: %s" % (context, exc))


# --- instances (lxd_instance, connection plugin, inventory plugin) ---------------------
# Raw API calls (``client.api.instances[name]``) rather than pylxd's model objects, so
# that exactly the fields we mean are read and written.

# Config keys LXD writes itself; never compared, never written by the modules.
INSTANCE_INTERNAL_PREFIXES = ("volatile.", "image.")


def _operation_wait(client, response, context):
    """Wait for an async LXD operation and raise on failure."""
    try:
        body = response.json()
    except ValueError:
        return None
    if body.get("type") != "async":
        return body.get("metadata")
    try:
        op = client.operations.wait_for_operation(body["operation"])
    except Exception as exc:  # noqa: BLE001
        raise lxd_error(context, exc)
    if getattr(op, "status", "") == "Failure" or getattr(op, "err", ""):
        raise LxdctlError("%s: %s" % (context, getattr(op, "err", "") or "operation failed"))
    return op


def get_instance(client, name):
    """The instance's API record (a dict, LXD's own shape), or ``None`` if it does not exist."""
    try:
        return client.api.instances[name].get().json()["metadata"]
    except LxdNotFound:
        return None
    except Exception as exc:  # noqa: BLE001
        raise lxd_error("Failed to get instance %s" % name, exc)


def list_instances(client):
    """Every instance with its full record (recursion=1)."""
    try:
        return client.api.instances.get(params={"recursion": "1"}).json()["metadata"]
    except Exception as exc:  # noqa: BLE001
        raise lxd_error("Failed to list instances", exc)


def managed_config(config):
    """The config without the keys LXD maintains itself (volatile.*, image.*)."""
    return dict(
        (key, value)
        for key, value in (config or {}).items()
        if not key.startswith(INSTANCE_INTERNAL_PREFIXES)
    )


def instance_summary(record):
    """What the modules return and compare: name, status, type, profiles, config, devices."""
    if record is None:
        return None
    return {
        "name": record.get("name"),
        "status": record.get("status"),
        "type": record.get("type", "container"),
        "profiles": list(record.get("profiles") or []),
        "config": managed_config(record.get("config")),
        "devices": dict(record.get("devices") or {}),
    }


# LXD's own database answers these while many requests contend for it (seen with 20 creates at
# once on 2 cores: 'failed to add "Starting instance" Operation ... to database: Failed to
# begin transaction: context deadline exceeded').  They are transient: the request is repeated.
LXD_BUSY_MARKS = ("context deadline exceeded", "database is locked", "Failed to begin transaction")
BUSY_ATTEMPTS = 4


def lxd_busy(error):
    return any(mark in str(error) for mark in LXD_BUSY_MARKS)


def _retry_when_busy(attempt_once, pause=0.5):
    """Run ``attempt_once`` again (up to BUSY_ATTEMPTS in all) while it fails because LXD is busy."""
    for attempt in range(BUSY_ATTEMPTS):
        try:
            return attempt_once()
        except LxdctlError as err:
            if attempt == BUSY_ATTEMPTS - 1 or not lxd_busy(err.msg):
                raise
            time.sleep(pause * 2 ** attempt)


def create_instance(client, name, source, profiles=None, config=None, devices=None, instance_type="container",
                    ephemeral=False):
    body = {"name": name, "source": source, "type": instance_type, "ephemeral": bool(ephemeral),
            "config": dict(config or {}), "devices": dict(devices or {})}
    if profiles is not None:
        body["profiles"] = list(profiles)
    context = "Failed to create instance %s" % name
    attempts = []

    def attempt_once():
        if attempts and get_instance(client, name) is not None:
            return  # the busy attempt before made it after all
        attempts.append(1)
        try:
            response = client.api.instances.post(json=body)
        except Exception as exc:  # noqa: BLE001
            raise lxd_error(context, exc)
        _operation_wait(client, response, context)

    _retry_when_busy(attempt_once)


def update_instance(client, name, profiles, config, devices):
    """Replace the instance's profiles, config and devices (internal config keys kept)."""
    record = get_instance(client, name)
    if record is None:
        raise LxdctlError("Failed to update instance %s: it does not exist" % name)
    kept = dict((k, v) for k, v in (record.get("config") or {}).items() if k.startswith(INSTANCE_INTERNAL_PREFIXES))
    kept.update(config)
    body = {
        "architecture": record.get("architecture"),
        "config": kept,
        "devices": dict(devices),
        "ephemeral": record.get("ephemeral", False),
        "profiles": list(profiles),
        "description": record.get("description", ""),
    }
    context = "Failed to update instance %s" % name
    try:
        response = client.api.instances[name].put(json=body)
    except Exception as exc:  # noqa: BLE001
        raise lxd_error(context, exc)
    _operation_wait(client, response, context)


def set_instance_state(client, name, action, timeout=30, force=True, wait=True):
    """``action`` is start, stop or restart; waits for the operation unless ``wait`` is false."""
    context = "Failed to %s instance %s" % (action, name)

    def attempt_once():
        try:
            response = client.api.instances[name].state.put(
                json={"action": action, "timeout": int(timeout), "force": bool(force)}
            )
        except Exception as exc:  # noqa: BLE001
            raise lxd_error(context, exc)
        if wait:
            _operation_wait(client, response, context)

    _retry_when_busy(attempt_once)


def _operation_targets_instance(operation, name):
    instances = ((operation or {}).get("resources") or {}).get("instances") or []
    return any(url.rstrip("/").split("?")[0].rsplit("/", 1)[-1] == name for url in instances)


def _is_exec(operation):
    # A command run in the instance is a task too, but it changes nothing LXD settles: a build
    # left running by a killed deploy would otherwise hold up the next stop or delete for minutes.
    return operation.get("description") == "Executing command" or "command" in (operation.get("metadata") or {})


def running_instance_tasks(client, name):
    """Ids of LXD task operations (start, stop, create ...) still running on instance ``name``, commands aside."""
    try:
        listing = client.api.operations.get(params={"recursion": "1"}).json()["metadata"] or {}
    except Exception as exc:  # noqa: BLE001
        raise lxd_error("Failed to list LXD operations", exc)
    found = []
    for operation in listing.get("running") or []:
        if operation.get("class") == "task" and not _is_exec(operation) and _operation_targets_instance(operation, name):
            found.append(operation["id"])
    return found


def wait_for_instance_tasks(client, name, timeout):
    """Wait until no task operation runs on the instance, so its status is settled.

    A run that started the instance in the background (``lxd_instance background_start``)
    leaves its start to LXD; the next run waits here for it.  An operation that fails is not an
    error here: the caller reads the status afterwards and acts on it (starts it again).
    """
    deadline = time.time() + float(timeout)
    for operation_id in running_instance_tasks(client, name):
        left = max(1, int(deadline - time.time()))
        try:
            client.api.operations[operation_id].wait.get(params={"timeout": str(left)})
        except LxdNotFound:
            continue  # ended and forgotten between the listing and the wait
        except Exception as exc:  # noqa: BLE001
            raise lxd_error("Failed to wait for LXD's operation on instance %s" % name, exc)


def delete_instance(client, name):
    record = get_instance(client, name)
    if record is None:
        return False
    if record.get("status") not in ("Stopped",):
        set_instance_state(client, name, "stop", timeout=30, force=True)
    context = "Failed to delete instance %s" % name
    try:
        response = client.api.instances[name].delete()
    except LxdNotFound:
        return False
    except Exception as exc:  # noqa: BLE001
        raise lxd_error(context, exc)
    _operation_wait(client, response, context)
    return True


def instance_state(client, name):
    try:
        return client.api.instances[name].state.get().json()["metadata"]
    except LxdNotFound:
        return None
    except Exception as exc:  # noqa: BLE001
        raise lxd_error("Failed to get the state of instance %s" % name, exc)


def addresses_from_state(state):
    """``{"ipv4": [...], "ipv6": [...]}``: global addresses of every NIC except loopback."""
    found = {"ipv4": [], "ipv6": []}
    for ifname, net in sorted(((state or {}).get("network") or {}).items()):
        if ifname == "lo" or (net or {}).get("type") == "loopback":
            continue
        for addr in (net or {}).get("addresses") or []:
            if addr.get("scope") != "global":
                continue
            if addr.get("family") == "inet":
                found["ipv4"].append(addr.get("address"))
            elif addr.get("family") == "inet6":
                found["ipv6"].append(addr.get("address"))
    return found


def instance_addresses(client, name):
    return addresses_from_state(instance_state(client, name))


def wait_for_ipv4(client, name, timeout, interval=0.25):
    """Wait until the instance runs and has a global IPv4 address; return its addresses."""
    deadline = time.time() + float(timeout)
    while True:
        state = instance_state(client, name)
        addresses = addresses_from_state(state)
        if state and state.get("status") == "Running" and addresses["ipv4"]:
            return addresses
        if time.time() >= deadline:
            raise LxdctlError(
                "Instance %s did not get an IPv4 address within %s seconds (status %s)"
                % (name, timeout, (state or {}).get("status", "unknown"))
            )
        time.sleep(interval)


# Runs the original argv ("$@") with stdin from a pushed file ("$0"), removed before the exec.
_STDIN_WRAPPER = 'exec <"$0" || exit 126; rm -f -- "$0"; exec "$@"'


def instance_exec(client, name, argv, stdin=None, environment=None, cwd=None):
    """Run ``argv`` (a list, never a shell string) in the instance; ``(rc, stdout, stderr)`` as bytes.

    Uses LXD's recorded-output exec (plain HTTPS requests, no websockets): over HTTPS the
    websocket exec of pylxd/ws4py loses output and can crash. ``stdin`` (bytes) is pushed as a
    0600 file and redirected in by a fixed wrapper; nothing of ``argv`` is put into shell text.
    """
    if not isinstance(argv, (list, tuple)) or not argv:
        raise LxdctlError("instance_exec needs a non-empty argument list")
    context = "Failed to run a command in instance %s" % name
    command = list(argv)
    if stdin is not None:
        stdin_path = "/tmp/.lxdctl-stdin-%s" % binascii.hexlify(os.urandom(12)).decode()
        write_file(client, name, stdin_path, stdin, mode=0o600, uid=0, gid=0)
        command = ["/bin/sh", "-c", _STDIN_WRAPPER, stdin_path] + command
    body = {"command": command, "environment": dict(environment or {}), "wait-for-websocket": False,
            "record-output": True, "interactive": False}
    if cwd:
        body["cwd"] = cwd
    api = client.api.instances[name]
    try:
        response = api["exec"].post(json=body)
        operation_id = response.json()["operation"].rsplit("/", 1)[1]
        operation = client.api.operations[operation_id].wait.get().json()["metadata"]
    except LxdNotFound:
        raise LxdctlError("%s: it does not exist" % context)
    except Exception as exc:  # noqa: BLE001
        raise lxd_error(context, exc)
    if operation.get("status") != "Success":
        raise LxdctlError("%s: %s" % (context, operation.get("err") or operation.get("status")))
    metadata = operation.get("metadata") or {}
    streams = {}
    for fd, path in (metadata.get("output") or {}).items():
        log = api.logs[path.rsplit("/", 1)[1]]
        try:
            streams[fd] = log.get(is_api=False).content
            log.delete()
        except Exception as exc:  # noqa: BLE001
            raise lxd_error("%s: reading its output" % context, exc)
    return int(metadata.get("return", -1)), streams.get("1", b""), streams.get("2", b"")


def read_file(client, name, path):
    """``{"content": bytes, "uid": int, "gid": int, "mode": int, "type": str}`` or ``None``."""
    try:
        response = client.api.instances[name].files.get(params={"path": path}, is_api=False)
    except LxdNotFound:
        return None
    except Exception as exc:  # noqa: BLE001
        raise lxd_error("Failed to read %s in instance %s" % (path, name), exc)
    headers = response.headers
    try:
        return {
            "content": response.content,
            "uid": int(headers.get("X-LXD-uid", 0)),
            "gid": int(headers.get("X-LXD-gid", 0)),
            "mode": int(headers.get("X-LXD-mode", "0644"), 8),
            "type": headers.get("X-LXD-type", "file"),
        }
    except ValueError as exc:
        raise lxd_error("Failed to read %s in instance %s" % (path, name), exc)


def write_file(client, name, path, content, mode=None, uid=None, gid=None):
    """Write ``content`` (bytes) to ``path``; mode is an int (e.g. 0o640)."""
    headers = {"X-LXD-type": "file", "X-LXD-write": "overwrite"}
    if mode is not None:
        headers["X-LXD-mode"] = "%04o" % mode
    if uid is not None:
        headers["X-LXD-uid"] = str(int(uid))
    if gid is not None:
        headers["X-LXD-gid"] = str(int(gid))
    try:
        client.api.instances[name].files.post(params={"path": path}, data=content, headers=headers)
    except Exception as exc:  # noqa: BLE001
        raise lxd_error("Failed to write %s in instance %s" % (path, name), exc)


def delete_file(client, name, path):
    try:
        client.api.instances[name].files.delete(params={"path": path})
    except LxdNotFound:
        return False
    except Exception as exc:  # noqa: BLE001
        raise lxd_error("Failed to delete %s in instance %s" % (path, name), exc)
    return True


def make_directory(client, name, path, mode=0o755, uid=0, gid=0):
    """Create the directory ``path`` (its parent must exist); mode is an int."""
    headers = {"X-LXD-type": "directory", "X-LXD-mode": "%04o" % mode, "X-LXD-uid": str(int(uid)),
               "X-LXD-gid": str(int(gid))}
    try:
        client.api.instances[name].files.post(params={"path": path}, data=b"", headers=headers)
    except Exception as exc:  # noqa: BLE001
        raise lxd_error("Failed to create directory %s in instance %s" % (path, name), exc)


# --- host objects: storage pools, networks, profiles, images ---------------------------
import ipaddress  # noqa: E402 - imports of this section, kept inside it
import re  # noqa: E402

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import ValidationError  # noqa: E402

# Storage pools, networks and profiles share one shape in the LXD API: GET, POST to the
# collection, PATCH (config keys merged) or PUT (whole object), DELETE.  These helpers
# return plain dicts so the modules can diff them; "not found" is ``None``.
HOST_OBJECT_KINDS = {
    "storage pool": "storage_pools",
    "network": "networks",
    "profile": "profiles",
}


def _host_endpoint(client, kind, name=None):
    node = getattr(client.api, HOST_OBJECT_KINDS[kind])
    return node if name is None else node[name]


def get_host_object(client, kind, name):
    """The LXD object ``kind`` called ``name`` as its API dict, or ``None`` when missing."""
    try:
        return _host_endpoint(client, kind, name).get().json()["metadata"]
    except LxdNotFound:
        return None
    except Exception as exc:  # noqa: BLE001
        raise lxd_error("Failed to get %s %s" % (kind, name), exc)


def create_host_object(client, kind, body):
    try:
        response = _host_endpoint(client, kind).post(json=body)
        _wait_if_async(client, response)
    except Exception as exc:  # noqa: BLE001
        raise lxd_error("Failed to create %s %s" % (kind, body.get("name")), exc)


def patch_host_object(client, kind, name, body):
    """Merge ``body`` into the object (LXD merges config keys; devices are replaced)."""
    try:
        response = _host_endpoint(client, kind, name).patch(json=body)
        _wait_if_async(client, response)
    except Exception as exc:  # noqa: BLE001
        raise lxd_error("Failed to update %s %s" % (kind, name), exc)


def put_host_object(client, kind, name, body):
    """Replace the object's writable fields (config, description, devices) with ``body``."""
    try:
        response = _host_endpoint(client, kind, name).put(json=body)
        _wait_if_async(client, response)
    except Exception as exc:  # noqa: BLE001
        raise lxd_error("Failed to update %s %s" % (kind, name), exc)


def delete_host_object(client, kind, name):
    try:
        response = _host_endpoint(client, kind, name).delete()
        _wait_if_async(client, response)
    except LxdNotFound:
        return
    except Exception as exc:  # noqa: BLE001
        raise lxd_error("Failed to delete %s %s" % (kind, name), exc)


def _wait_if_async(client, response):
    try:
        data = response.json()
    except ValueError:
        return None
    if data.get("type") == "async" and data.get("operation"):
        return client.operations.wait_for_operation(data["operation"])
    return None


def used_by(obj):
    """What uses a host object, from its ``used_by`` URLs (``[]`` when nothing)."""
    return list((obj or {}).get("used_by") or [])


def config_changes(current, wanted):
    """The keys of ``wanted`` whose value differs from ``current`` (values compared as strings).

    LXD stores every config value as a string, so ``true``/``"true"`` and ``2``/``"2"``
    are the same setting.  Keys present only in ``current`` are left alone.
    """
    current = current or {}
    changes = {}
    for key, value in (wanted or {}).items():
        if value is None:
            if key in current:
                changes[key] = None
            continue
        if key not in current or str(current[key]) != lxd_value(value):
            changes[key] = lxd_value(value)
    return changes


def lxd_value(value):
    """A config value as LXD stores it: booleans as ``true``/``false``, the rest as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def normalize_devices(devices):
    """Devices with every property as LXD's string form, for comparison and upload."""
    return {
        name: {key: lxd_value(val) for key, val in (props or {}).items()}
        for name, props in (devices or {}).items()
    }


# Names and addresses of host objects -------------------------------------------------
_OBJECT_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9_.-]{0,61}[a-z0-9])?$")
_NETWORK_NAME_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,13}[a-z0-9])?$")


def object_name(value, field="name"):
    """A storage pool or profile name: 1-63 lowercase letters, digits, ``_ . -``."""
    if not isinstance(value, str) or not _OBJECT_NAME_RE.match(value):
        raise ValidationError(field, "must be 1-63 lowercase letters, digits, dots, underscores or hyphens, "
                                     "starting and ending with a letter or digit", value)
    return value


def network_name(value, field="name"):
    """A bridge name is a Linux interface name: at most 15 characters."""
    if not isinstance(value, str) or not _NETWORK_NAME_RE.match(value):
        raise ValidationError(field, "must be 1-15 lowercase letters, digits or hyphens, starting with a letter "
                                     "(it becomes the bridge's interface name)", value)
    return value


def bridge_ipv4(value, field="ipv4_address (platform_lxd_network_address)"):
    """The bridge's own IPv4 address with its prefix, e.g. ``10.77.0.1/24``; returned canonical."""
    rule = "must be the bridge's IPv4 address with a prefix of /8 to /30, such as 10.77.0.1/24"
    if not isinstance(value, str) or value.count("/") != 1:
        raise ValidationError(field, rule, value)
    try:
        iface = ipaddress.IPv4Interface(value.strip())
    except ValueError:
        raise ValidationError(field, rule, value)
    net = iface.network
    if not 8 <= net.prefixlen <= 30:
        raise ValidationError(field, rule, value)
    if iface.ip == net.network_address:
        raise ValidationError(field, "%s is the network address itself; give the bridge a host address in it, "
                                     "such as %s/%d" % (value, net.network_address + 1, net.prefixlen))
    if iface.ip == net.broadcast_address:
        raise ValidationError(field, "%s is the broadcast address; give the bridge a host address such as %s/%d"
                              % (value, net.network_address + 1, net.prefixlen))
    if iface.ip.is_loopback or iface.ip.is_multicast or iface.ip.is_link_local or iface.ip.is_unspecified:
        raise ValidationError(field, rule + " in a private range", value)
    return str(iface)


def bridge_ipv6(value, field="ipv6_address (platform_lxd_network_ipv6)"):
    """``none``, ``auto`` or the bridge's IPv6 address with its prefix."""
    if value in ("none", "auto"):
        return value
    rule = "must be none, auto, or the bridge's IPv6 address with a prefix such as fd42:77::1/64"
    if not isinstance(value, str) or value.count("/") != 1:
        raise ValidationError(field, rule, value)
    try:
        iface = ipaddress.IPv6Interface(value.strip())
    except ValueError:
        raise ValidationError(field, rule, value)
    if iface.ip == iface.network.network_address or not 8 <= iface.network.prefixlen <= 126:
        raise ValidationError(field, rule, value)
    return str(iface)


def _argspec(func):
    def check(value):
        return func(value)

    check.__name__ = func.__name__
    return check


argspec_object_name = _argspec(object_name)
argspec_network_name = _argspec(network_name)
argspec_bridge_ipv4 = _argspec(bridge_ipv4)
argspec_bridge_ipv6 = _argspec(bridge_ipv6)


# Images ------------------------------------------------------------------------------


def image_by_alias(client, alias):
    """``{"fingerprint", "size", "created_at", "properties", "aliases"}`` of ``alias``, or ``None``."""
    try:
        target = client.api.images.aliases[alias].get().json()["metadata"]["target"]
        meta = client.api.images[target].get().json()["metadata"]
    except LxdNotFound:
        return None
    except Exception as exc:  # noqa: BLE001
        raise lxd_error("Failed to get image %s" % alias, exc)
    return _image_dict(meta)


def list_images(client):
    try:
        return [_image_dict(meta) for meta in client.api.images.get(params={"recursion": "1"}).json()["metadata"]]
    except Exception as exc:  # noqa: BLE001
        raise lxd_error("Failed to list images", exc)


def _image_dict(meta):
    return {
        "fingerprint": meta.get("fingerprint"),
        "size": meta.get("size"),
        "created_at": meta.get("created_at"),
        "uploaded_at": meta.get("uploaded_at"),
        "properties": dict(meta.get("properties") or {}),
        "aliases": [item.get("name") for item in meta.get("aliases") or []],
    }


def import_image(client, metadata_path, rootfs_path, alias, description=""):
    """Upload a split image (metadata tarball + rootfs tarball), then point ``alias`` at it.

    An existing image under ``alias`` loses the alias and is deleted when nothing else
    names it; containers made from it keep their own copy.  Returns the new fingerprint.
    """
    require_pylxd()
    try:
        with open(metadata_path, "rb") as meta, open(rootfs_path, "rb") as rootfs:
            image = client.images.create(rootfs, metadata=meta, public=False)
    except Exception as exc:  # noqa: BLE001
        raise lxd_error("Failed to import image %s" % alias, exc)
    _move_alias(client, alias, image.fingerprint, description)
    return image.fingerprint


def copy_image_from_server(client, server, remote_alias, alias, description=""):
    """Copy ``remote_alias`` from a simplestreams image server and alias it locally."""
    body = {
        "public": False,
        "auto_update": False,
        "source": {"type": "image", "mode": "pull", "server": server, "protocol": "simplestreams",
                   "alias": remote_alias},
    }
    try:
        response = client.api.images.post(json=body)
        operation = _wait_if_async(client, response)
        fingerprint = operation.metadata["fingerprint"]
    except Exception as exc:  # noqa: BLE001
        raise lxd_error("Failed to copy image %s from %s" % (remote_alias, server), exc)
    _move_alias(client, alias, fingerprint, description)
    return fingerprint


def _move_alias(client, alias, fingerprint, description):
    old = image_by_alias(client, alias)
    try:
        if old is None:
            client.api.images.aliases.post(json={"name": alias, "target": fingerprint, "description": description})
        elif old["fingerprint"] != fingerprint:
            client.api.images.aliases[alias].put(json={"target": fingerprint, "description": description})
            if not [name for name in old["aliases"] if name != alias]:
                delete_image(client, old["fingerprint"])
    except LxdctlError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise lxd_error("Failed to set image alias %s" % alias, exc)


def delete_image(client, fingerprint):
    try:
        response = client.api.images[fingerprint].delete()
        _wait_if_async(client, response)
    except LxdNotFound:
        return
    except Exception as exc:  # noqa: BLE001
        raise lxd_error("Failed to delete image %s" % fingerprint, exc)
