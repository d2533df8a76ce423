#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: powerdns_zone
short_description: Manage an authoritative zone in PowerDNS
description:
  - Creates, changes or removes a zone through the PowerDNS HTTP API.
  - The zone kind and, when O(nameservers) is given, the apex NS rrset are managed.
    C(changed) is only reported when one of them really differs.
version_added: "0.1.0"
author: lxdctl maintainers (@lxdctl)
options:
  name:
    description: The zone, for example C(example.com). A trailing dot is optional.
    type: str
    required: true
    aliases: [zone]
  kind:
    description: The zone kind.
    type: str
    choices: [Native, Master]
    default: Native
  nameservers:
    description:
      - Host names for the zone's apex NS rrset.
      - When omitted, the NS rrset of an existing zone is left alone (a new zone gets none).
    type: list
    elements: str
  state:
    description: Whether the zone exists.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - lxdctl.platform.pdns
  - lxdctl.platform.attributes.ALL
"""

EXAMPLES = r"""
- name: A zone for the projects
  lxdctl.platform.powerdns_zone:
    name: apps.example.com
    kind: Native
    nameservers: [ns1.example.com]

- name: Remove it
  lxdctl.platform.powerdns_zone:
    name: apps.example.com
    state: absent
"""

RETURN = r"""
zone:
  description: The zone after the run (empty when absent).
  returned: always
  type: dict
  sample: {"name": "apps.example.com.", "kind": "Native", "nameservers": ["ns1.example.com."]}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError
from ansible_collections.lxdctl.platform.plugins.module_utils import _names
from ansible_collections.lxdctl.platform.plugins.module_utils._pdns import (
    CONNECTION_ARGSPEC,
    ZONE_KINDS,
    PowerDNS,
    find_rrset,
)


def argument_spec():
    spec = dict(
        name=dict(type=_names.argspec_zone, required=True, aliases=["zone"]),
        kind=dict(type="str", choices=list(ZONE_KINDS), default="Native"),
        nameservers=dict(type="list", elements=_names.argspec_domain),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    spec.update(CONNECTION_ARGSPEC)
    return spec


def zone_view(zone_data):
    """The managed view of a zone as PowerDNS returns it (``{}`` when absent)."""
    if not zone_data:
        return {}
    ns = find_rrset(zone_data, zone_data["name"].lower(), "NS")
    return {
        "name": zone_data["name"].lower(),
        "kind": zone_data.get("kind"),
        "nameservers": ns["records"] if ns else [],
    }


def desired_view(params, before):
    if params["state"] == "absent":
        return {}
    nameservers = params.get("nameservers")
    if nameservers is None:
        nameservers = before.get("nameservers", []) if before else []
    else:
        nameservers = sorted(set(ns + "." for ns in nameservers))
    return {"name": params["name"], "kind": params["kind"], "nameservers": nameservers}


class ZoneService(object):
    def __init__(self, module, client):
        self.module = module
        self.client = client
        self.params = module.params

    def run(self):
        zone = self.params["name"]
        before = zone_view(self.client.get_zone(zone))
        after = desired_view(self.params, before)
        changed = before != after
        result = dict(changed=changed, zone=after, diff=dict(before=before, after=after))
        if not changed or self.module.check_mode:
            return result
        if not after:
            self.client.delete_zone(zone)
        elif not before:
            self.client.create_zone(zone, after["kind"], after["nameservers"])
        else:
            if before["kind"] != after["kind"]:
                self.client.set_zone_kind(zone, after["kind"])
            if before["nameservers"] != after["nameservers"]:
                if after["nameservers"]:
                    self.client.replace_rrset(zone, zone, "NS", 3600, after["nameservers"])
                else:
                    self.client.delete_rrset(zone, zone, "NS")
        if after:
            result["zone"] = zone_view(self.client.get_zone(zone))
        return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result = ZoneService(module, PowerDNS(module.params)).run()
    except LxdctlError as err:
        module.fail_json(msg=err.msg)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
