#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: powerdns_record
short_description: Manage one rrset (name and type) in a PowerDNS zone
description:
  - Sets the complete record list of an rrset, or removes the rrset, through the PowerDNS HTTP API.
  - Idempotent on the exact set of records, whatever their order, and the TTL.
  - Every record is validated for its type before anything is sent, so record content
    cannot inject into zone data.
version_added: "0.1.0"
author: lxdctl maintainers (@lxdctl)
options:
  zone:
    description:
      - The zone that holds the rrset. It must exist (see M(lxdctl.platform.powerdns_zone)),
        unless O(create_zone) is set.
    type: str
    required: true
  name:
    description:
      - The record name. V(@) or the zone name means the zone apex; a name that ends with the
        zone is taken as it is; anything else is relative to the zone (V(www) is C(www.<zone>)).
    type: str
    default: "@"
  type:
    description: The record type.
    type: str
    required: true
    choices: [A, AAAA, CNAME, MX, TXT]
  records:
    description:
      - The contents of the rrset. An IPv4 address for A, an IPv6 address for AAAA, a host
        name for CNAME and MX, printable text (at most 255 characters, no quotes or
        backslashes) for TXT.
      - Required when O(state=present). A CNAME takes exactly one.
    type: list
    elements: str
  ttl:
    description: Time to live in seconds.
    type: int
    default: 3600
  priority:
    description:
      - The preference of MX records, 0-65535; V(10) when not given. Only valid for O(type=MX).
      - A record may also carry its own preference, as in C(20 mx2.example.com).
    type: int
  state:
    description: Whether the rrset exists.
    type: str
    choices: [present, absent]
    default: present
  create_zone:
    description:
      - Create the zone (kind C(Native), no NS records) when it is missing and a record is to be
        written, instead of failing. For zones that need a kind or nameservers, use
        M(lxdctl.platform.powerdns_zone) first.
    type: bool
    default: false
extends_documentation_fragment:
  - lxdctl.platform.pdns
  - lxdctl.platform.attributes.ALL
"""

EXAMPLES = r"""
- name: myapp.apps.example.com points at the platform host
  lxdctl.platform.powerdns_record:
    zone: apps.example.com
    name: myapp
    type: A
    records: [10.77.0.1]

- name: Mail
  lxdctl.platform.powerdns_record:
    zone: apps.example.com
    type: MX
    priority: 20
    records: [mx1.example.com, mx2.example.com]

- name: Remove the record
  lxdctl.platform.powerdns_record:
    zone: apps.example.com
    name: myapp
    type: A
    state: absent
"""

RETURN = r"""
rrset:
  description: The rrset after the run (empty when absent).
  returned: always
  type: dict
  sample: {"name": "myapp.apps.example.com.", "type": "A", "ttl": 3600, "records": ["10.77.0.1"]}
zone_created:
  description: Whether the zone was (or, in check mode, would be) created because O(create_zone) was set.
  returned: success
  type: bool
"""

import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError, ValidationError
from ansible_collections.lxdctl.platform.plugins.module_utils import _names
from ansible_collections.lxdctl.platform.plugins.module_utils._pdns import CONNECTION_ARGSPEC, PowerDNS, find_rrset

_MX_WITH_PRIORITY = re.compile(r"^([0-9]{1,5}) +(\S+)$")


def argument_spec():
    spec = dict(
        zone=dict(type=_names.argspec_zone, required=True),
        name=dict(type="str", default="@"),
        type=dict(type="str", required=True, choices=list(_names.RECORD_TYPES)),
        records=dict(type="list", elements="str"),
        ttl=dict(type="int", default=3600),
        priority=dict(type="int"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        create_zone=dict(type="bool", default=False),
    )
    spec.update(CONNECTION_ARGSPEC)
    return spec


def rrset_name(name, zone):
    """The canonical (trailing dot) owner name of ``name`` in ``zone`` (canonical too)."""
    apex = zone[:-1]
    if name is None or name.strip() in ("", "@"):
        return zone
    if not isinstance(name, str) or any(ch in name for ch in "\r\n\x00{};\"'\\ \t"):
        raise ValidationError("name", "must be a host name relative to the zone, the zone itself or @", name)
    text = name.lower()
    if text.endswith("."):
        text = text[:-1]
    fqdn = text if text == apex or text.endswith("." + apex) else text + "." + apex
    return _names.domain(fqdn, "name") + "."


def desired_rrset(params):
    """Validate the requested rrset; ``{}`` for absent.  Raises ``ValidationError``."""
    zone = params["zone"]
    rtype = params["type"]
    name = rrset_name(params.get("name"), zone)
    if params.get("priority") is not None and rtype != "MX":
        raise ValidationError("priority", "only applies to MX records")
    if params["state"] == "absent":
        return {"name": name, "type": rtype}
    ttl = params.get("ttl")
    if ttl is None or not 1 <= int(ttl) <= 2147483647:
        raise ValidationError("ttl", "must be from 1 to 2147483647", ttl)
    records = params.get("records") or []
    if not records:
        raise ValidationError("records", "at least one record is needed when state=present")
    contents = set()
    for value in records:
        contents.add(record_content(rtype, value, params.get("priority")))
    if rtype == "CNAME" and len(contents) != 1:
        raise ValidationError("records", "a CNAME takes exactly one record")
    return {"name": name, "type": rtype, "ttl": int(ttl), "records": sorted(contents)}


def record_content(rtype, value, priority=None):
    """The PowerDNS content of one record; MX gets its priority in front."""
    if rtype != "MX":
        return _names.record_content(rtype, value, "records")
    if not isinstance(value, str):
        raise ValidationError("records", "an MX record needs a host name", value)
    match = _MX_WITH_PRIORITY.match(value.strip())
    if match:
        pref, host = int(match.group(1)), match.group(2)
        if priority is not None and priority != pref:
            raise ValidationError("records", "the record's priority differs from priority=%d" % priority, value)
    else:
        pref, host = (10 if priority is None else priority), value
    if not 0 <= pref <= 65535:
        raise ValidationError("priority", "must be from 0 to 65535", pref)
    return "%d %s" % (pref, _names.record_content("MX", host, "records"))


def rrset_view(zone_data, name, rtype):
    found = find_rrset(zone_data, name, rtype)
    if not found:
        return {}
    return {"name": name, "type": rtype, "ttl": found["ttl"], "records": found["records"]}


class RecordService(object):
    def __init__(self, module, client_factory):
        self.module = module
        self.client_factory = client_factory
        self.params = module.params

    def run(self):
        wanted = desired_rrset(self.params)  # validation first: nothing is sent for bad input
        client = self.client_factory(self.params)
        zone = self.params["zone"]
        zone_data = client.get_zone(zone)
        if zone_data is None:
            if self.params["state"] == "absent":
                return dict(changed=False, rrset={}, diff=dict(before={}, after={}))
            if not self.module.check_mode and not self.params.get("create_zone"):
                raise LxdctlError("Zone %s does not exist in PowerDNS: create it first (powerdns_zone)" % zone)
            if not self.params.get("create_zone"):
                # Check mode: an earlier task of the same run may be the one that creates the zone.
                self.module.warn("Zone %s does not exist (yet); the record would be created in it" % zone)
        before = rrset_view(zone_data, wanted["name"], wanted["type"])
        after = wanted if "records" in wanted else {}
        zone_created = zone_data is None and bool(after)
        changed = before != after
        result = dict(changed=changed, rrset=after, zone_created=zone_created, diff=dict(before=before, after=after))
        if not changed or self.module.check_mode:
            return result
        if zone_created:
            # One task instead of powerdns_zone + powerdns_record on a hot path (project create);
            # a Native zone without NS records, as powerdns_zone makes by default.
            client.create_zone(zone, "Native", [])
        if after:
            client.replace_rrset(zone, after["name"], after["type"], after["ttl"], after["records"])
            result["rrset"] = rrset_view(client.get_zone(zone), after["name"], after["type"]) or after
        else:
            client.delete_rrset(zone, wanted["name"], wanted["type"])
        return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result = RecordService(module, PowerDNS).run()
    except LxdctlError as err:
        module.fail_json(msg=err.msg)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
