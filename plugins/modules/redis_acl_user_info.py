#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: redis_acl_user_info
short_description: List the Redis ACL users of lxdctl's tenants
description:
  - Lists the ACL users whose names start with O(prefix) (projects' are C(p-<project>)),
    each with the project name it is derived from.
  - Reconcile uses it to find users that no project in the state owns.
  - Never changes anything.
version_added: "0.1.0"
author: lxdctl maintainers
options:
  prefix:
    description: Only users whose names start with this.
    type: str
    default: p-
extends_documentation_fragment:
  - lxdctl.platform.redis
  - lxdctl.platform.attributes.ALL
"""

EXAMPLES = r"""
- name: List the tenants' ACL users
  lxdctl.platform.redis_acl_user_info:
  register: _redis_users
"""

RETURN = r"""
users:
  description: The users, ordered by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The ACL user.
      type: str
    key_prefix:
      description: The key prefix a project's user has (C(<project>:)), or null when the name is no project's.
      type: str
    projects:
      description: The project the name is derived from (one name), or empty.
      type: list
      elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils._service import Service, run_service
from ansible_collections.lxdctl.platform.plugins.module_utils import _names, _redis


def argument_spec():
    spec = dict(prefix=dict(type="str", default="p-"))
    spec.update(_redis.CONNECTION_ARGSPEC)
    return spec


class AclUserInfo(Service):
    def run(self):
        prefix = self.params["prefix"] or ""
        users = []
        for name in _redis.list_users(self.client):
            if not name.startswith(prefix):
                continue
            projects = _names.projects_named_by("redis_user", name)
            users.append(dict(name=name, projects=projects,
                              key_prefix=_names.redis_prefix(projects[0]) if projects else None))
        return dict(changed=False, users=users)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_service(module, _redis.Redis, AclUserInfo)


if __name__ == "__main__":
    main()
