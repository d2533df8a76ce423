#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: memcached_instance_info
short_description: List the memcached instances lxdctl runs for projects
description:
  - Lists the memcached instances of this host, each named by its project (as
    M(lxdctl.platform.memcached_instance) names them), with the project name it belongs to
    when its name is a valid project name.
  - An instance counts when the registry (C(<run_dir>/registry.json)) records it, when its
    pidfile names a live process, or (under systemd) when its unit file exists, so a process
    whose registry entry was lost is listed too.
  - Reconcile uses it to find instances that no project in the state owns.
  - Never changes anything.
version_added: "0.1.0"
author: lxdctl maintainers
options:
  run_dir:
    description:
      - The directory of the registry and the pidfiles. Defaults to C(memcached.run_dir) of the
        platform configuration, else C(/var/lib/lxdctl/memcached).
    type: path
extends_documentation_fragment:
  - lxdctl.platform.attributes.ALL
"""

EXAMPLES = r"""
- name: List the memcached instances
  lxdctl.platform.memcached_instance_info:
  register: _memcached
"""

RETURN = r"""
instances:
  description: The instances, ordered by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The instance name (the project name memcached_instance was given).
      type: str
    port:
      description: The recorded port, or null when the registry does not record the instance.
      type: int
    listen:
      description: The recorded address, or null.
      type: str
    memory_mb:
      description: The recorded cache size, or null.
      type: int
    running:
      description: Whether its process (or unit) runs.
      type: bool
    registered:
      description: Whether the registry records it.
      type: bool
    projects:
      description: The project the instance belongs to (one name), or empty.
      type: list
      elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError
from ansible_collections.lxdctl.platform.plugins.module_utils._names import project_name
from ansible_collections.lxdctl.platform.plugins.module_utils._service import Service, run_service
from ansible_collections.lxdctl.platform.plugins.module_utils import _memcached


def argument_spec():
    return dict(run_dir=dict(type="path"))


def projects_of(name):
    """The project an instance belongs to: memcached_instance is given the project name itself."""
    try:
        project_name(name)
    except LxdctlError:
        return []
    return [name]


def describe(instance):
    return dict(instance, projects=projects_of(instance["name"]))


class InstanceInfo(Service):
    """No client: the registry file, pidfiles and units are read directly."""

    def run(self):
        run_dir = _memcached.configured_run_dir(self.params)
        instances = [describe(item) for item in _memcached.list_instances(run_dir)]
        return dict(changed=False, instances=instances)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_service(module, None, InstanceInfo)


if __name__ == "__main__":
    main()
