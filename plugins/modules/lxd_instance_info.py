#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: lxd_instance_info
short_description: List LXD instances and the lxdctl projects they can belong to
description:
  - Lists the instances whose names start with O(prefix), with their status and, for each,
    the project names its name can be derived from (C(lxdctl-<project>), its blue-green
    C(-green) twin, a pipeline's C(lxdctl-ci-<project>-<n>)) plus the project label
    C(user.lxdctl.project) when the instance carries one.
  - Reconcile uses it to find containers that no project in the state owns.
  - Never changes anything.
version_added: "0.1.0"
author: lxdctl maintainers
options:
  prefix:
    description: Only instances whose names start with this.
    type: str
    default: lxdctl-
extends_documentation_fragment:
  - lxdctl.platform.lxd
  - lxdctl.platform.attributes.ALL
"""

EXAMPLES = r"""
- name: List the platform's containers
  lxdctl.platform.lxd_instance_info:
  register: _containers
"""

RETURN = r"""
instances:
  description: The instances, ordered by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The instance name.
      type: str
    status:
      description: LXD's status, e.g. C(Running) or C(Stopped).
      type: str
    project_label:
      description: The value of C(user.lxdctl.project), or null.
      type: str
    projects:
      description: The project names the instance can belong to (label first); empty when lxdctl did not name it.
      type: list
      elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils._service import Service, run_service
from ansible_collections.lxdctl.platform.plugins.module_utils import _lxd, _names


def argument_spec():
    spec = dict(prefix=dict(type="str", default="lxdctl-"))
    spec.update(_lxd.CONNECTION_ARGSPEC)
    return spec


def describe(record):
    """One instance as this module returns it."""
    name = record.get("name") or ""
    label = (record.get("config") or {}).get("user.lxdctl.project") or None
    projects = _names.projects_named_by("container", name)
    if label and label not in projects:
        projects = [label] + projects
    elif label:
        projects = [label] + [p for p in projects if p != label]
    return dict(name=name, status=record.get("status"), project_label=label, projects=projects)


class InstanceInfo(Service):
    def run(self):
        prefix = self.params["prefix"] or ""
        records = [r for r in _lxd.list_instances(self.client) if (r.get("name") or "").startswith(prefix)]
        return dict(changed=False, instances=sorted((describe(r) for r in records), key=lambda i: i["name"]))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_service(module, _lxd.connect, InstanceInfo)


if __name__ == "__main__":
    main()
