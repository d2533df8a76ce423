# -*- coding: utf-8 -*-
"""The LXD client wrapper (pylxd).  Every module that talks to LXD goes through here.

Sections below are owned by topic: connection (shared), instances, and host objects
(storage pools, networks, profiles, images).  Each function raises ``LxdctlError`` with
context; "not found" becomes ``None`` where the caller asks for a lookup.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

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
        return pylxd.Client(endpoint=url, cert=(cert, key), verify=verify)
    except LxdctlError:
        raise
    except Exception as exc:  # noqa: BLE001 - connection errors of every kind get the endpoint named
        raise LxdctlError("Failed to connect to LXD at %s: %s" % (url, exc))


def lxd_error(context, exc):
    """An ``LxdctlError`` for a failed LXD call, naming what was attempted."""
    return LxdctlError("%s: %s" % (context, exc))


# --- instances (lxd_instance, connection plugin, inventory plugin) ---------------------


# --- host objects: storage pools, networks, profiles, images ---------------------------
