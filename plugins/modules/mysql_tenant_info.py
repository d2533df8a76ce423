#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: mysql_tenant_info
short_description: List the MariaDB databases and accounts of lxdctl's tenants
description:
  - Lists the databases and the accounts whose user names start with O(prefix) (projects' are
    C(p_<project with _>)), each with the project name it is derived from.
  - Reconcile uses it to find databases and accounts that no project in the state owns.
  - Never changes anything.
version_added: "0.1.0"
author: lxdctl maintainers
options:
  prefix:
    description: Only names that start with this.
    type: str
    default: p_
extends_documentation_fragment:
  - lxdctl.platform.mysql
  - lxdctl.platform.attributes.ALL
"""

EXAMPLES = r"""
- name: List the tenants' databases and accounts
  lxdctl.platform.mysql_tenant_info:
  register: _my
"""

RETURN = r"""
databases:
  description: The databases, ordered by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The database.
      type: str
    projects:
      description: The project the name is derived from (one name), or empty.
      type: list
      elements: str
users:
  description: The accounts, ordered by user and host.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The user name.
      type: str
    host:
      description: The account's host pattern.
      type: str
    projects:
      description: The project the user name is derived from (one name), or empty.
      type: list
      elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils._service import Service, run_service
from ansible_collections.lxdctl.platform.plugins.module_utils import _names, _mysql


def argument_spec():
    spec = dict(prefix=dict(type="str", default="p_"))
    spec.update(_mysql.CONNECTION_ARGSPEC)
    return spec


class TenantInfo(Service):
    def run(self):
        databases, users = _mysql.list_names(self.client, self.params["prefix"] or "")
        return dict(
            changed=False,
            databases=[dict(name=db, projects=_names.projects_named_by("sql", db)) for db in databases],
            users=[dict(user, projects=_names.projects_named_by("sql", user["name"])) for user in users],
        )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_service(module, _mysql.MariaDB, TenantInfo)


if __name__ == "__main__":
    main()
