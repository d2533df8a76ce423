#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: postgres_tenant
short_description: A PostgreSQL database and its owner role for one tenant
description:
  - Creates a database and a login role that owns it, with a SCRAM-SHA-256 password, a
    connection limit, and no privileges beyond its own database - C(NOSUPERUSER),
    C(NOCREATEDB), C(NOCREATEROLE), C(NOREPLICATION), C(NOBYPASSRLS).
  - C(CONNECT) and C(TEMPORARY) on the database are revoked from C(PUBLIC), so other
    tenants' roles cannot connect to it; the owner is granted C(CONNECT).
  - With O(state=absent), open sessions of the database and the role are ended, then the
    database and the role are dropped.
  - The password is sent as a SCRAM verifier computed by the module, never in clear text.
    An existing role's password is compared with the stored verifier (recomputed with its
    salt and iteration count), so the same password again reports no change.
version_added: "0.1.0"
author: lxdctl maintainers (!UNKNOWN)
options:
  name:
    description:
      - The database, a lowercase SQL identifier (for a project, C(p_<project with _>)).
    type: str
    required: true
    aliases: [database]
  owner:
    description: The owner role. Defaults to O(name).
    type: str
  password:
    description:
      - The owner's password. Required with O(state=present).
      - Used when the role is created; for an existing role only with O(rotate_password=true)
        or when the role has no password at all.
    type: str
  rotate_password:
    description:
      - Set O(password) on an existing role too. Reports a change only when the stored
        verifier does not match O(password).
    type: bool
    default: false
  connection_limit:
    description: The role's connection limit.
    type: int
    default: 20
  state:
    description: Whether the database and role exist.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - lxdctl.platform.postgres
  - lxdctl.platform.attributes.ALL
"""

EXAMPLES = r"""
- name: Database and role of project myapp
  lxdctl.platform.postgres_tenant:
    name: p_myapp
    password: "{{ myapp_db_password }}"
    connection_limit: 20
  register: db
  no_log: true

- name: Rotate its password
  lxdctl.platform.postgres_tenant:
    name: p_myapp
    password: "{{ new_password }}"
    rotate_password: true

- name: Remove both, ending open sessions
  lxdctl.platform.postgres_tenant:
    name: p_myapp
    state: absent
"""

RETURN = r"""
database:
  description: The database name.
  returned: always
  type: str
  sample: p_myapp
owner:
  description: The owner role.
  returned: always
  type: str
  sample: p_myapp
host:
  description: The address tenants connect to (C(postgres.tenant_host) of the platform configuration).
  returned: always
  type: str
  sample: 10.77.0.1
port:
  description: The server port.
  returned: always
  type: int
  sample: 5432
password_set:
  description: Whether the run set (or, in check mode, would set) the role's password.
  returned: always
  type: bool
queries:
  description: The SQL statements executed (or planned, in check mode), passwords masked.
  returned: always
  type: list
  elements: str
  sample: ["CREATE DATABASE \"p_myapp\" OWNER \"p_myapp\""]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError
from ansible_collections.lxdctl.platform.plugins.module_utils import _postgres, _service


def argument_spec():
    return _service.tenant_argument_spec(dict(
        name=dict(type=_postgres.argspec_identifier, required=True, aliases=["database"]),
        owner=dict(type=_postgres.argspec_identifier),
        connection_limit=dict(type="int", default=20),
    ), _postgres.CONNECTION_ARGSPEC)


def validate(params):
    if params["connection_limit"] < -1 or params["connection_limit"] == 0:
        raise LxdctlError("connection_limit: must be a positive number (or -1 for no limit)")
    _service.validate_tenant(params)


class TenantService(_service.SqlTenantService):
    def run(self):
        params = self.params
        database = params["name"]
        owner = params["owner"] or database
        limit = params["connection_limit"]
        role = self.client.get_role(owner)
        db = self.client.get_database(database, owner)
        before = _postgres.state_view(database, owner, role, db)
        after = _postgres.desired_view(database, owner, limit, params["state"])
        password_set = False
        if params["state"] == "present":
            statements, password_set = _postgres.plan_present(
                database, owner, params["password"], limit, params["rotate_password"], role, db)
        else:
            statements = _postgres.plan_absent(database, owner, role, db,
                                               force=self.client.server_version >= 130000)
        return self.finish(statements, bool(statements), before, after, password_set, bool(role),
                           database=database, owner=owner)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), required_if=_service.TENANT_REQUIRED_IF,
                           supports_check_mode=True)
    _service.run_service(module, _postgres.Postgres, TenantService, validate=validate)


if __name__ == "__main__":
    main()
