# -*- coding: utf-8 -*-
"""The platform configuration file that ``lxdctl init`` (role ``platform``) writes.

It is JSON, root-only (0600), at ``/etc/lxdctl/platform.json`` unless ``LXDCTL_CONFIG``
names another path.  It records every endpoint and generated credential of the host
platform, so modules can run on the platform host with no connection options at all.

Connection options resolve in this order: the module parameter, its environment variable
(through the argspec's ``env_fallback``), then this file.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError

DEFAULT_PATH = "/etc/lxdctl/platform.json"


def config_path():
    return os.environ.get("LXDCTL_CONFIG") or DEFAULT_PATH


def load(path=None, required=False):
    """Return the platform configuration as a dict; ``{}`` when absent and not required."""
    path = path or config_path()
    try:
        with open(path) as handle:
            return json.load(handle)
    except (IOError, OSError) as exc:
        if required or os.path.exists(path):
            raise LxdctlError(
                "Cannot read the platform configuration %s: %s. Run `lxdctl init` first." % (path, exc.strerror)
            )
        return {}
    except ValueError as exc:
        raise LxdctlError("The platform configuration %s is not valid JSON: %s" % (path, exc))


def section(name, path=None):
    return load(path).get(name) or {}


def resolve(params, section_name, mapping, path=None):
    """Fill connection settings from the config where the module left them unset.

    ``mapping`` maps a module parameter name to the key in the config section.
    Returns a new dict; ``params`` is not modified.
    """
    resolved = dict(params)
    needed = [param for param in mapping if resolved.get(param) in (None, "")]
    if needed:
        values = section(section_name, path)
        for param in needed:
            if values.get(mapping[param]) not in (None, ""):
                resolved[param] = values[mapping[param]]
    return resolved
