# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: projects
short_description: lxdctl project containers as hosts
description:
  - Every LXD instance carrying the label C(user.lxdctl.project=<name>) becomes a host named
    after its project, reached with the C(lxdctl.platform.lxd) connection plugin.
  - Each C(user.lxdctl.<key>) label becomes the host var C(lxdctl_<key>) (dots and hyphens
    become underscores), e.g. C(lxdctl_project) and C(lxdctl_runtime). Label values are
    marked unsafe, so they are never templated.
  - Groups C(lxdctl_projects) (all), C(runtime_<runtime>) and C(status_<status>)
    (e.g. C(status_running)).
  - The inventory file must be named C(*.lxdctl.yml) or C(*.lxdctl.yaml).
  - One host per project; when several instances carry the same project label, the first
    by instance name is used. Labels that are not valid project names are ignored.
author: lxdctl engineers
version_added: "0.1.0"
options:
  plugin:
    description: The name of this plugin.
    required: true
    choices: [lxdctl.platform.projects]
  lxd_url:
    description: Where LXD listens; defaults to the platform configuration, then the local socket.
    type: str
    env:
      - name: LXDCTL_LXD_URL
  lxd_client_cert:
    description: Client certificate for an https:// O(lxd_url).
    type: path
    env:
      - name: LXDCTL_LXD_CLIENT_CERT
  lxd_client_key:
    description: Private key of O(lxd_client_cert).
    type: path
    env:
      - name: LXDCTL_LXD_CLIENT_KEY
  lxd_verify:
    description: Verify the remote LXD's TLS certificate; V(true), V(false) or a CA bundle path.
    type: str
    env:
      - name: LXDCTL_LXD_VERIFY
  python_interpreter:
    description: C(ansible_python_interpreter) for the containers.
    type: str
    default: /usr/bin/python3
extends_documentation_fragment:
  - constructed
"""

EXAMPLES = r"""
# inventories/local/projects.lxdctl.yml
plugin: lxdctl.platform.projects
# then: ansible -i inventories/local/projects.lxdctl.yml myapp -m command -a uptime
"""

import re

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Constructable
from ansible.utils.unsafe_proxy import wrap_var

from ansible_collections.lxdctl.platform.plugins.module_utils import _lxd
from ansible_collections.lxdctl.platform.plugins.module_utils import _names
from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError

LABEL_PREFIX = "user.lxdctl."
PROJECT_LABEL = LABEL_PREFIX + "project"


def _var_name(label):
    return "lxdctl_" + re.sub(r"[^a-z0-9_]", "_", label[len(LABEL_PREFIX):].lower())


def hosts_from_instances(records):
    """Pure: ``[(host, vars)]`` for the instance records that carry a valid project label."""
    hosts, seen = [], set()
    for record in sorted(records, key=lambda r: r.get("name") or ""):
        config = record.get("config") or {}
        project = config.get(PROJECT_LABEL)
        try:
            _names.project_name(project, field=PROJECT_LABEL)
        except LxdctlError:
            continue
        if project in seen:  # one host per project: the first instance by name
            continue
        seen.add(project)
        hostvars = dict((_var_name(k), v) for k, v in sorted(config.items()) if k.startswith(LABEL_PREFIX))
        hostvars.update(
            lxdctl_container=record.get("name"),
            lxdctl_status=(record.get("status") or "unknown").lower(),
        )
        hosts.append((project, hostvars))
    return hosts


class InventoryModule(BaseInventoryPlugin, Constructable):
    NAME = "lxdctl.platform.projects"

    def verify_file(self, path):
        return super(InventoryModule, self).verify_file(path) and path.endswith((".lxdctl.yml", ".lxdctl.yaml"))

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache)
        self._read_config_data(path)
        params = dict(
            lxd_url=self.get_option("lxd_url"),
            lxd_client_cert=self.get_option("lxd_client_cert"),
            lxd_client_key=self.get_option("lxd_client_key"),
            lxd_verify=self.get_option("lxd_verify"),
        )
        try:
            client = _lxd.connect(params)
            records = _lxd.list_instances(client)
        except LxdctlError as err:
            raise AnsibleParserError("lxdctl.platform.projects: %s" % err.msg)

        self.inventory.add_group("lxdctl_projects")
        strict = self.get_option("strict")
        for host, hostvars in hosts_from_instances(records):
            self.inventory.add_host(host, group="lxdctl_projects")
            for key, value in hostvars.items():
                self.inventory.set_variable(host, key, wrap_var(value))
            self.inventory.set_variable(host, "ansible_connection", "lxdctl.platform.lxd")
            self.inventory.set_variable(host, "ansible_host", wrap_var(hostvars["lxdctl_container"]))
            self.inventory.set_variable(host, "ansible_python_interpreter", self.get_option("python_interpreter"))
            for option, value in params.items():  # the connection plugin reaches the same LXD
                if value:
                    self.inventory.set_variable(host, "lxdctl_" + option, value)
            runtime = hostvars.get("lxdctl_runtime")
            if runtime and re.fullmatch(r"[a-z0-9_]{1,32}", runtime):
                self.inventory.add_group("runtime_" + runtime)
                self.inventory.add_host(host, group="runtime_" + runtime)
            status_group = "status_" + re.sub(r"[^a-z0-9_]", "_", hostvars["lxdctl_status"])
            self.inventory.add_group(status_group)
            self.inventory.add_host(host, group=status_group)
            allvars = self.inventory.get_host(host).get_vars()
            self._set_composite_vars(self.get_option("compose"), allvars, host, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), allvars, host, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), allvars, host, strict=strict)
