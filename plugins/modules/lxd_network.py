#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: lxd_network
short_description: Manage an LXD managed bridge network
description:
  - Creates, changes or removes a managed LXD bridge with an explicit IPv4 subnet (LXD's
    automatic subnet detection is not relied on), NAT on or off, and optional IPv6.
  - Only the settings you give are compared and changed; C(changed) is only reported on a real
    difference. Other config keys of an existing bridge are left alone.
  - O(ipv4_address) must be the bridge's own address with a prefix, such as C(10.77.0.1/24);
    the network address (C(10.77.0.0/24)) or anything else is refused with a message naming the
    option and the role variable C(platform_lxd_network_address).
version_added: "0.1.0"
author: lxdctl maintainers (!UNKNOWN)
options:
  name:
    description: The bridge name (also its interface name, so at most 15 characters).
    type: str
    required: true
  ipv4_address:
    description: The bridge's IPv4 address and prefix; containers get DHCP leases in this subnet. Required to create.
    type: str
  ipv4_nat:
    description: Masquerade outbound container traffic. Left alone when omitted.
    type: bool
  ipv6_address:
    description: V(none), V(auto), or the bridge's IPv6 address and prefix. Left alone when omitted.
    type: str
  config:
    description: Further bridge config keys (for example C(ipv4.dhcp.ranges)).
    type: dict
    default: {}
  description:
    description: The network description; left alone when omitted.
    type: str
  state:
    description: Whether the bridge exists. An absent bridge must not be in use.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - lxdctl.platform.lxd
  - lxdctl.platform.attributes.ALL
"""

EXAMPLES = r"""
- name: The project bridge, no NAT, no IPv6
  lxdctl.platform.lxd_network:
    name: lxdctlbr0
    ipv4_address: 10.77.0.1/24
    ipv4_nat: false
    ipv6_address: none

- name: Remove a bridge
  lxdctl.platform.lxd_network:
    name: testbr0
    state: absent
"""

RETURN = r"""
network:
  description: The network after the run (empty when absent).
  returned: always
  type: dict
  sample: {"name": "lxdctlbr0", "type": "bridge", "description": "", "config": {"ipv4.address": "10.77.0.1/24", "ipv4.nat": "false", "ipv6.address": "none"}}
subnet:
  description: The IPv4 subnet of the bridge, e.g. C(10.77.0.0/24).
  returned: when present
  type: str
bridge_address:
  description: The host's address on the bridge, e.g. C(10.77.0.1).
  returned: when present
  type: str
"""

import ipaddress

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError
from ansible_collections.lxdctl.platform.plugins.module_utils._lxd_host_object import HostObjectService
from ansible_collections.lxdctl.platform.plugins.module_utils._service import run_service
from ansible_collections.lxdctl.platform.plugins.module_utils import _lxd

KIND = "network"


def argument_spec():
    spec = dict(
        name=dict(type=_lxd.argspec_network_name, required=True),
        ipv4_address=dict(type=_lxd.argspec_bridge_ipv4),
        ipv4_nat=dict(type="bool"),
        ipv6_address=dict(type=_lxd.argspec_bridge_ipv6),
        config=dict(type="dict", default={}),
        description=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    spec.update(_lxd.CONNECTION_ARGSPEC)
    return spec


def wanted_config(params):
    """The config keys this run manages, as LXD strings."""
    config = {key: _lxd.lxd_value(value) for key, value in (params.get("config") or {}).items()}
    if "ipv4.address" in config:
        config["ipv4.address"] = _lxd.bridge_ipv4(config["ipv4.address"], "config.ipv4.address")
    if params.get("ipv4_address"):
        config["ipv4.address"] = params["ipv4_address"]
    if params.get("ipv4_nat") is not None:
        config["ipv4.nat"] = _lxd.lxd_value(params["ipv4_nat"])
    if params.get("ipv6_address"):
        config["ipv6.address"] = params["ipv6_address"]
    return config


def view(obj):
    if not obj:
        return {}
    return {
        "name": obj.get("name"),
        "type": obj.get("type"),
        "managed": obj.get("managed"),
        "description": obj.get("description") or "",
        "config": dict(obj.get("config") or {}),
    }


def addresses(network):
    address = (network.get("config") or {}).get("ipv4.address")
    if not address or address in ("none", "auto"):
        return {}
    iface = ipaddress.IPv4Interface(address)
    return {"subnet": str(iface.network), "bridge_address": str(iface.ip)}


class NetworkService(HostObjectService):
    kind = KIND
    result_key = "network"
    view = staticmethod(view)

    def present(self, name, current):
        wanted = wanted_config(self.params)
        if current:
            if current["type"] != "bridge" or not current["managed"]:
                raise LxdctlError("Network %s exists but is not a managed bridge (type %s)" % (name, current["type"]))
            result = self.patch(name, current, wanted)
        else:
            if "ipv4.address" not in wanted:
                raise LxdctlError(
                    "ipv4_address (platform_lxd_network_address) is required to create network %s: give the "
                    "bridge an explicit address such as 10.77.0.1/24" % name
                )
            body = {"name": name, "type": "bridge", "description": self.params["description"] or "", "config": wanted}
            result = self.create(name, body, dict(view(body), managed=True))
        result.update(addresses(result["network"]))
        return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_service(module, _lxd.connect, NetworkService)


if __name__ == "__main__":
    main()
