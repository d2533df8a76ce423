#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: powerdns_record_info
short_description: List the records of PowerDNS zones
description:
  - Lists every rrset of the zones O(zones) except SOA and NS, each with the project name
    its name can be derived from (C(<project>.<zone>)).
  - Reconcile uses it to find project records that no project in the state owns.
  - A zone that does not exist is listed in RV(missing_zones), not an error.
  - Never changes anything.
version_added: "0.1.0"
author: lxdctl maintainers
options:
  zones:
    description:
      - The zones to read. Defaults to C(dns.managed_zones) of the platform configuration.
    type: list
    elements: str
extends_documentation_fragment:
  - lxdctl.platform.pdns
  - lxdctl.platform.attributes.ALL
"""

EXAMPLES = r"""
- name: List the records of the managed zones
  lxdctl.platform.powerdns_record_info:
  register: _records
"""

RETURN = r"""
records:
  description: The rrsets, ordered by zone, name and type.
  returned: always
  type: list
  elements: dict
  contains:
    zone:
      description: The zone, without the trailing dot.
      type: str
    name:
      description: The record name, without the trailing dot.
      type: str
    type:
      description: The record type.
      type: str
    ttl:
      description: The TTL.
      type: int
    records:
      description: The enabled contents, sorted.
      type: list
      elements: str
    projects:
      description: The project a C(<project>.<zone>) name is derived from (one name), or empty.
      type: list
      elements: str
missing_zones:
  description: The zones of O(zones) that PowerDNS does not have.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils._service import Service, run_service
from ansible_collections.lxdctl.platform.plugins.module_utils import _names, _pdns, _platform_config

SKIPPED_TYPES = ("SOA", "NS")


def argument_spec():
    spec = dict(zones=dict(type="list", elements="str"))
    spec.update(_pdns.CONNECTION_ARGSPEC)
    return spec


def zone_records(zone, zone_data):
    """The rrsets of one zone (``zone`` without the dot) as this module returns them."""
    found = []
    for rrset in (zone_data or {}).get("rrsets") or []:
        if rrset.get("type") in SKIPPED_TYPES:
            continue
        name = (rrset.get("name") or "").lower().rstrip(".")
        label_zone = name.split(".", 1)[1] if "." in name else ""
        found.append(dict(
            zone=zone,
            name=name,
            type=rrset.get("type"),
            ttl=rrset.get("ttl"),
            records=sorted(r["content"] for r in rrset.get("records") or [] if not r.get("disabled")),
            projects=_names.projects_named_by("dns", name) if label_zone == zone else [],
        ))
    return found


class RecordInfo(Service):
    def run(self):
        zones = self.params["zones"]
        if zones is None:
            zones = (_platform_config.section("dns") or {}).get("managed_zones") or []
        zones = [_names.zone_name(z, "zones") for z in zones]
        client = _pdns.PowerDNS(self.params)
        records, missing = [], []
        for zone in zones:
            data = client.get_zone(zone)
            if data is None:
                missing.append(zone.rstrip("."))
                continue
            records.extend(zone_records(zone.rstrip("."), data))
        records.sort(key=lambda r: (r["zone"], r["name"], r["type"]))
        return dict(changed=False, records=records, missing_zones=missing)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_service(module, None, RecordInfo)


if __name__ == "__main__":
    main()
