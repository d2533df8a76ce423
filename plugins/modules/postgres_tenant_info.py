#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: postgres_tenant_info
short_description: List the PostgreSQL databases and roles of lxdctl's tenants
description:
  - Lists the databases and the roles whose names start with O(prefix) (projects' are
    C(p_<project with _>)), each with the project name it is derived from.
  - Reconcile uses it to find databases and roles that no project in the state owns.
  - Never changes anything.
version_added: "0.1.0"
author: lxdctl maintainers
options:
  prefix:
    description: Only names that start with this.
    type: str
    default: p_
extends_documentation_fragment:
  - lxdctl.platform.postgres
  - lxdctl.platform.attributes.ALL
"""

EXAMPLES = r"""
- name: List the tenants' databases and roles
  lxdctl.platform.postgres_tenant_info:
  register: _pg
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
    owner:
      description: Its owner role.
      type: str
    projects:
      description: The project the name is derived from (one name), or empty.
      type: list
      elements: str
roles:
  description: The roles, ordered by name, each with C(name) and C(projects) as above.
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils._service import Service, run_service
from ansible_collections.lxdctl.platform.plugins.module_utils import _names, _postgres


def argument_spec():
    spec = dict(prefix=dict(type="str", default="p_"))
    spec.update(_postgres.CONNECTION_ARGSPEC)
    return spec


class TenantInfo(Service):
    def run(self):
        databases, roles = _postgres.list_names(self.client, self.params["prefix"] or "")
        return dict(
            changed=False,
            databases=[dict(db, projects=_names.projects_named_by("sql", db["name"])) for db in databases],
            roles=[dict(name=role, projects=_names.projects_named_by("sql", role)) for role in roles],
        )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_service(module, _postgres.Postgres, TenantInfo)


if __name__ == "__main__":
    main()
