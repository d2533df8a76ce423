#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: lxd_profile
short_description: Manage an LXD profile (config and devices)
description:
  - Creates, changes or removes an LXD profile.
  - O(config) keys are merged. The keys you give are set (a V(null) value removes the key) and
    others are left alone.
  - O(devices), when given, is the profile's complete device set. Devices not listed are
    removed, so a hardened profile cannot keep a device someone added by hand.
  - Values are compared as LXD stores them (strings; V(true) is C("true")), so C(changed) is only
    reported on a real difference.
version_added: "0.1.0"
author: lxdctl maintainers (!UNKNOWN)
options:
  name:
    description: The profile name.
    type: str
    required: true
  config:
    description: Profile config keys such as C(limits.memory) or C(security.nesting).
    type: dict
    default: {}
  devices:
    description:
      - The complete set of devices, a mapping of device name to its properties (each with a C(type)).
      - Left alone when omitted.
    type: dict
  description:
    description: The profile description; left alone when omitted.
    type: str
  state:
    description: Whether the profile exists. An absent profile must not be in use.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - lxdctl.platform.lxd
  - lxdctl.platform.attributes.ALL
"""

EXAMPLES = r"""
- name: The hardened platform profile
  lxdctl.platform.lxd_profile:
    name: lxdctl
    description: lxdctl project containers
    config:
      security.privileged: "false"
      security.nesting: "false"
      limits.cpu: "2"
      limits.memory: 1GiB
      limits.processes: "2000"
    devices:
      root: {type: disk, path: /, pool: lxdctl}
      eth0: {type: nic, name: eth0, network: lxdctlbr0, security.port_isolation: "true"}
"""

RETURN = r"""
profile:
  description: The profile after the run (empty when absent).
  returned: always
  type: dict
  sample: {"name": "lxdctl", "description": "", "config": {"limits.cpu": "2"}, "devices": {"root": {"type": "disk", "path": "/", "pool": "lxdctl"}}}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError
from ansible_collections.lxdctl.platform.plugins.module_utils._lxd_host_object import HostObjectService
from ansible_collections.lxdctl.platform.plugins.module_utils._service import run_service
from ansible_collections.lxdctl.platform.plugins.module_utils import _lxd

KIND = "profile"


def argument_spec():
    spec = dict(
        name=dict(type=_lxd.argspec_object_name, required=True),
        config=dict(type="dict", default={}),
        devices=dict(type="dict"),
        description=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    spec.update(_lxd.CONNECTION_ARGSPEC)
    return spec


def view(obj):
    if not obj:
        return {}
    return {
        "name": obj.get("name"),
        "description": obj.get("description") or "",
        "config": dict(obj.get("config") or {}),
        "devices": _lxd.normalize_devices(obj.get("devices")),
    }


def desired(current, params):
    """``(after, changed)``: the profile as it should be, from the current one and the params."""
    base = current or {"name": params["name"], "description": "", "config": {}, "devices": {}}
    for dev_name, props in (params.get("devices") or {}).items():
        if not isinstance(props, dict) or "type" not in props:
            raise LxdctlError("devices.%s: must be a mapping of device properties with a type" % dev_name)
    changes = _lxd.config_changes(base["config"], params.get("config") or {})
    config = dict(base["config"])
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    devices = base["devices"] if params.get("devices") is None else _lxd.normalize_devices(params["devices"])
    description = base["description"] if params.get("description") is None else params["description"]
    after = {"name": base["name"], "description": description, "config": config, "devices": devices}
    return after, after != base or not current


class ProfileService(HostObjectService):
    kind = KIND
    result_key = "profile"
    view = staticmethod(view)

    def present(self, name, current):
        after, changed = desired(current, self.params)
        if not current:
            return self.create(name, after, after)
        body = {key: after[key] for key in ("description", "config", "devices")}
        # PUT, not PATCH: ``after`` is the whole profile as it should be, with the config keys
        # given as null already dropped and the devices replaced.
        return self.write(name, current, after, changed,
                          lambda: _lxd.put_host_object(self.client, KIND, name, body))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_service(module, _lxd.connect, ProfileService)


if __name__ == "__main__":
    main()
